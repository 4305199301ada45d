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

  product   = var.product
  lake_root = var.lake_root
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

module "pipeline" {
  source = "./modules/pipeline"

  product          = var.product
  pipelines_root   = var.pipelines_root
  scaffold_dir     = var.scaffold_dir
  template_version = var.template_version
  wid_url          = var.wid_url
  lake_path        = module.storage.lake_path
  schema           = module.storage.schema
  role             = module.storage.role
}
