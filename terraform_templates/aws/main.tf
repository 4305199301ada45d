# The aws target: one data product's isolated storage, compute and pipeline repository.
#
# Every value comes from variables: the product's from terraform.tfvars.json (written by
# provisioning.rendering), the installation's cloud settings from the defaults in variables.tf
# (override them with TF_VAR_* or an *.auto.tfvars.json dropped beside this file). No user text is
# ever part of this source. State lives in the portal's PostgreSQL (`-backend-config=conn_str=...`).
terraform {
  required_version = ">= 1.0.3"

  backend "pg" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  tags = {
    product            = var.product
    domain             = var.domain
    team               = var.team
    classification     = var.classification
    pii                = tostring(var.pii)
    "compute-tier"     = var.compute_tier
    "template-version" = var.template_version
    "managed-by"       = "data-portal"
  }
}

# Every identifier, derived from the slug alone (plus the installation's prefix and account).
module "names" {
  source = "./modules/names"

  product    = var.product
  prefix     = var.name_prefix
  account_id = data.aws_caller_identity.current.account_id
}

# The product's identity (an IAM role its runs assume) and its Batch queue with a vCPU quota.
module "compute" {
  source = "./modules/compute"

  product                  = var.product
  role_name                = module.names.role
  execution_role_name      = module.names.execution_role
  security_group_name      = module.names.security_group
  compute_environment_name = module.names.compute_environment
  job_queue_name           = module.names.job_queue
  job_definition_name      = module.names.job_definition
  bucket_name              = module.names.bucket
  concurrency              = var.concurrency
  memory_mb                = var.memory_mb
  pipeline_image           = var.pipeline_image
  run_timeout_seconds      = var.run_timeout_seconds
  vpc_id                   = var.vpc_id
  subnet_ids               = var.subnet_ids
  assign_public_ip         = var.assign_public_ip
  permissions_boundary_arn = var.permissions_boundary_arn
}

# The product's bucket: only the role above may write to it.
module "storage" {
  source = "./modules/storage"

  bucket_name                        = module.names.bucket
  kms_alias                          = module.names.kms_alias
  writer_role_arn                    = module.compute.role_arn
  writer_role_name                   = module.compute.role_name
  tags                               = local.tags
  force_destroy                      = var.force_destroy
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
}

# The product's pipeline repository, tagged with the scaffold version and the WID.
module "pipeline" {
  source = "./modules/pipeline"

  product          = var.product
  repository_name  = module.names.repository
  template_version = var.template_version
  wid_url          = var.wid_url
  reader_role_name = module.compute.role_name
}

# Each producer's names, by the same rule as this product's own (see reads.tf for which).
module "producer_names" {
  source   = "./modules/names"
  for_each = local.producers

  product    = each.key
  prefix     = var.name_prefix
  account_id = data.aws_caller_identity.current.account_id
}

# Read-only access to each producer's published area (`curated/` of its bucket) for this
# product's role, one inline policy per producer, in this product's state.
module "reads" {
  source   = "./modules/reads"
  for_each = local.producers

  producer         = each.key
  bucket_name      = module.producer_names[each.key].bucket
  kms_alias        = module.producer_names[each.key].kms_alias
  reader_role_name = module.compute.role_name
  partition        = data.aws_partition.current.partition
  dns_suffix       = data.aws_partition.current.dns_suffix
  region           = var.region
  account_id       = data.aws_caller_identity.current.account_id
}
