# The azure target: one data product's isolated storage, compute and pipeline repository, in a
# resource group of its own.
#
# Every value comes from variables: the product's from terraform.tfvars.json (written by
# provisioning.rendering), the installation's cloud settings from the defaults in variables.tf
# (override them with TF_VAR_* or an *.auto.tfvars.json dropped beside this file). No user text is
# ever part of this source. State lives in the portal's PostgreSQL (`-backend-config=conn_str=...`).
terraform {
  required_version = ">= 1.0.3"

  backend "pg" {}

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.9"
    }
  }
}

provider "azurerm" {
  features {}

  # null: taken from ARM_SUBSCRIPTION_ID.
  subscription_id = var.subscription_id
  # The product's storage account refuses shared keys, so the provider talks Entra ID to it too.
  storage_use_azuread = true
}

data "azurerm_client_config" "current" {}

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

# Every identifier, derived from the slug alone (plus the installation's prefix and subscription).
module "names" {
  source = "./modules/names"

  product         = var.product
  prefix          = var.name_prefix
  subscription_id = data.azurerm_client_config.current.subscription_id
}

resource "azurerm_resource_group" "product" {
  name     = module.names.resource_group
  location = var.location
  tags     = local.tags
}

# The product's identity (a user-assigned managed identity) and its Container Apps job, whose
# parallelism and per-replica memory are the product's quota.
module "compute" {
  source = "./modules/compute"

  product                      = var.product
  resource_group_name          = azurerm_resource_group.product.name
  location                     = azurerm_resource_group.product.location
  identity_name                = module.names.identity
  job_name                     = module.names.job
  environment_name             = module.names.environment
  container_app_environment_id = var.container_app_environment_id
  workload_profile_name        = var.workload_profile_name
  storage_account_name         = module.names.storage_account
  container_name               = module.names.container
  concurrency                  = var.concurrency
  memory_mb                    = var.memory_mb
  pipeline_image               = var.pipeline_image
  run_timeout_seconds          = var.run_timeout_seconds
  tags                         = local.tags
}

# The product's storage account and data container: only the identity above may write to it.
module "storage" {
  source = "./modules/storage"

  resource_group_name                = azurerm_resource_group.product.name
  location                           = azurerm_resource_group.product.location
  account_name                       = module.names.storage_account
  container_name                     = module.names.container
  replication_type                   = var.replication_type
  writer_principal_id                = module.compute.identity_principal_id
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  tags                               = local.tags

  metadata = {
    product        = var.product
    team           = var.team
    classification = var.classification
  }
}

# The product's pipeline repository: a private container of git bundles in its storage account
# (azurerm has no git repositories; see README.md), tagged with the scaffold version and the WID.
module "pipeline" {
  source = "./modules/pipeline"

  product                = var.product
  storage_account_id     = module.storage.account_id
  container_name         = module.names.pipeline_container
  template_version       = var.template_version
  wid_url                = var.wid_url
  reader_principal_id    = module.compute.identity_principal_id
  publisher_principal_id = var.pipeline_publisher_principal_id
}

# Each producer's names, by the same rule as this product's own (see reads.tf for which).
module "producer_names" {
  source   = "./modules/names"
  for_each = local.producers

  product         = each.key
  prefix          = var.name_prefix
  subscription_id = data.azurerm_client_config.current.subscription_id
}

# Read-only access to each producer's published area (`curated/` of its data container) for
# this product's identity, one role assignment per producer, in this product's state.
module "reads" {
  source   = "./modules/reads"
  for_each = local.producers

  producer             = each.key
  subscription_id      = data.azurerm_client_config.current.subscription_id
  resource_group_name  = module.producer_names[each.key].resource_group
  storage_account_name = module.producer_names[each.key].storage_account
  container_name       = module.producer_names[each.key].container
  reader_principal_id  = module.compute.identity_principal_id
}
