# The local target: a product's storage, compute and pipeline on the portal's own platform.
# Values come only from terraform.tfvars.json; the state backend's conn_str from -backend-config.
terraform {
  required_version = ">= 1.0.3"

  backend "pg" {}

  required_providers {
    localplatform = {
      source  = "portal.local/platform/localplatform"
      version = "0.1.0"
    }
  }
}

# The provider reads the warehouse admin DSN from LOCALPLATFORM_WAREHOUSE_DSN.
provider "localplatform" {}

module "storage" {
  source = "./modules/storage"

  product             = var.product
  lake_root           = var.lake_root
  password_generation = var.password_generation
  suspended           = var.suspended
}

module "compute" {
  source = "./modules/compute"

  product              = var.product
  role                 = module.storage.role
  concurrency          = var.concurrency
  memory_mb            = var.memory_mb
  connection_limit     = var.connection_limit
  statement_timeout_ms = var.statement_timeout_ms
}

# `none` keeps the base scaffold (scaffold/pipeline/v<N>); an ingestion pattern's variant sits beside it,
# scaffold/<pattern>/v<N>, and extends it. The variable is validated: it is one of four names.
locals {
  scaffold_dir = var.pipeline_variant == "none" ? var.scaffold_dir : "${dirname(dirname(var.scaffold_dir))}/${var.pipeline_variant}/${basename(var.scaffold_dir)}"
}

module "pipeline" {
  source = "./modules/pipeline"

  product          = var.product
  pipelines_root   = var.pipelines_root
  scaffold_dir     = local.scaffold_dir
  template_version = var.template_version
  wid_url          = var.wid_url
  lake_path        = module.storage.lake_path
  schema           = module.storage.schema
  role             = module.storage.role
}

# Read access to each producer this product depends on: its role joins the producer's readers role.
# The consumer comes from the storage module, so the grant waits for the product's role.
resource "localplatform_grant" "reads" {
  for_each = toset(var.reads)

  consumer  = module.storage.product
  producer  = each.value
  lake_root = var.lake_root
}

# People's own logins on this product's published schema, each valid until its date; like the
# grants, they wait for the storage module, which makes the readers role they join.
resource "localplatform_reader" "readers" {
  for_each = { for reader in var.readers : reader.name => reader }

  product     = module.storage.product
  name        = each.key
  valid_until = each.value.valid_until
}
