# The gcp target: one data product's isolated storage, compute and pipeline repository.
#
# Every value comes from variables: the product's from terraform.tfvars.json (written by
# provisioning.rendering), the installation's cloud settings from the defaults in variables.tf
# (override them with TF_VAR_* or an *.auto.tfvars.json dropped beside this file). No user text is
# ever part of this source. State lives in the portal's PostgreSQL (`-backend-config=conn_str=...`).
terraform {
  required_version = ">= 1.0.3"

  backend "pg" {}

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
  }
}

provider "google" {
  # null: taken from GOOGLE_PROJECT / the credentials.
  project        = var.project
  region         = var.region
  default_labels = local.labels
}

data "google_client_config" "current" {}

locals {
  # GCP label values take lowercase letters, digits, "_" and "-" only.
  labels = {
    product            = var.product
    domain             = var.domain
    team               = var.team
    classification     = var.classification
    pii                = tostring(var.pii)
    "compute-tier"     = var.compute_tier
    "template-version" = replace(var.template_version, ".", "_")
    "managed-by"       = "data-portal"
  }
}

# Every identifier, derived from the slug alone (plus the installation's prefix and project).
module "names" {
  source = "./modules/names"

  product = var.product
  prefix  = var.name_prefix
  project = data.google_client_config.current.project
}

# The product's identity (a service account) and its Cloud Run job, whose parallelism and memory
# limit are the product's quota.
module "compute" {
  source = "./modules/compute"

  product             = var.product
  service_account_id  = module.names.service_account
  job_name            = module.names.job
  region              = var.region
  bucket_name         = module.names.bucket
  concurrency         = var.concurrency
  memory_mb           = var.memory_mb
  pipeline_image      = var.pipeline_image
  run_timeout_seconds = var.run_timeout_seconds
  labels              = local.labels
}

# The product's bucket: only the service account above may write to it.
module "storage" {
  source = "./modules/storage"

  bucket_name                        = module.names.bucket
  location                           = var.region
  writer_email                       = module.compute.service_account_email
  labels                             = local.labels
  kms_key_name                       = var.kms_key_name
  force_destroy                      = var.force_destroy
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
}

# The product's pipeline repository, and the image repository that carries its WID and version.
module "pipeline" {
  source = "./modules/pipeline"

  product          = var.product
  repository_name  = module.names.repository
  image_repository = module.names.image_repository
  region           = var.region
  template_version = var.template_version
  wid_url          = var.wid_url
  reader_email     = module.compute.service_account_email
  labels           = local.labels
}

# Each producer's names, by the same rule as this product's own (see reads.tf for which).
module "producer_names" {
  source   = "./modules/names"
  for_each = local.producers

  product = each.key
  prefix  = var.name_prefix
  project = data.google_client_config.current.project
}

# Read-only access to each producer's published area (its managed folder `curated/`) for this
# product's service account, one IAM member per producer, in this product's state.
module "reads" {
  source   = "./modules/reads"
  for_each = local.producers

  bucket_name  = module.producer_names[each.key].bucket
  reader_email = module.compute.service_account_email
}
