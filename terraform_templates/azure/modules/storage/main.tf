# The product's storage: a storage account of its own (private, versioned, encrypted twice,
# shared keys off) holding its data container. With shared keys off, writing a blob takes an
# Entra ID data role, which neither Owner nor Contributor include; the only one this template
# grants is "Storage Blob Data Contributor" on the container, to the product's identity.

resource "azurerm_storage_account" "this" {
  name                              = var.account_name
  resource_group_name               = var.resource_group_name
  location                          = var.location
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.replication_type
  https_traffic_only_enabled        = true
  min_tls_version                   = "TLS1_2"
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  cross_tenant_replication_enabled  = false
  infrastructure_encryption_enabled = true
  tags                              = var.tags

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = 30
    }

    container_delete_retention_policy {
      days = 30
    }
  }
}

resource "azurerm_storage_container" "data" {
  name                  = var.container_name
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
  metadata              = var.metadata
}

resource "azurerm_role_assignment" "writer" {
  scope                = azurerm_storage_container.data.resource_manager_id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = var.writer_principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_storage_management_policy" "this" {
  storage_account_id = azurerm_storage_account.this.id

  rule {
    name    = "expire-old-versions"
    enabled = true

    filters {
      blob_types = ["blockBlob"]
    }

    actions {
      version {
        delete_after_days_since_creation = var.noncurrent_version_expiration_days
      }
    }
  }
}
