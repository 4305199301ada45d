# The product's compute: its identity (a user-assigned managed identity, the only principal with a
# data role on its container) and a manually triggered Container Apps job running as it. Each run
# starts `concurrency` replicas at most, each with memory_mb and the vCPUs that go with it, so one
# product cannot starve another.

resource "azurerm_user_assigned_identity" "product" {
  name                = var.identity_name
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

# Without a shared environment the product gets its own (consumption-only workload profile: no
# cost while idle). Environments are a per-subscription quota, so larger installations share one.
resource "azurerm_container_app_environment" "own" {
  count = var.container_app_environment_id == null ? 1 : 0

  name                = var.environment_name
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags

  workload_profile {
    name                  = "Consumption"
    workload_profile_type = "Consumption"
  }
}

locals {
  environment_id = coalesce(var.container_app_environment_id, one(azurerm_container_app_environment.own[*].id))
  # Consumption sizes pair 0.25 vCPU with every 0.5 GiB.
  cpu    = var.memory_mb / 2048
  memory = format("%gGi", var.memory_mb / 1024)
}

resource "azurerm_container_app_job" "runs" {
  name                         = var.job_name
  resource_group_name          = var.resource_group_name
  location                     = var.location
  container_app_environment_id = local.environment_id
  workload_profile_name        = var.workload_profile_name
  replica_timeout_in_seconds   = var.run_timeout_seconds
  replica_retry_limit          = 0
  tags                         = var.tags

  manual_trigger_config {
    parallelism              = var.concurrency
    replica_completion_count = var.concurrency
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.product.id]
  }

  template {
    container {
      name   = "pipeline"
      image  = var.pipeline_image
      cpu    = local.cpu
      memory = local.memory

      env {
        name  = "PRODUCT"
        value = var.product
      }

      env {
        name  = "STORAGE_ACCOUNT"
        value = var.storage_account_name
      }

      env {
        name  = "CONTAINER"
        value = var.container_name
      }

      # DefaultAzureCredential picks the product's identity with this.
      env {
        name  = "AZURE_CLIENT_ID"
        value = azurerm_user_assigned_identity.product.client_id
      }
    }
  }
}
