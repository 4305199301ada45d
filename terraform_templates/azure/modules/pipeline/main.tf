# The product's pipeline repository. azurerm has no git hosting (Azure Repos lives in the separate
# Azure DevOps provider and organisation), so the repository is a private container in the
# product's own storage account holding git bundles: `<commit>.bundle` files plus `HEAD.bundle`,
# pushed by the publisher (the portal, starting with the scaffold of `template_version`) and
# cloned by anyone with read access (`git clone HEAD.bundle`). Account-wide blob versioning and
# soft delete keep every pushed bundle; the container's metadata records the scaffold version
# and the WID.

resource "azurerm_storage_container" "repository" {
  name                  = var.container_name
  storage_account_id    = var.storage_account_id
  container_access_type = "private"

  metadata = {
    product          = var.product
    template_version = var.template_version
    wid_url          = var.wid_url
    layout           = "git-bundle"
  }
}

# Runs read their pipeline but cannot change it.
resource "azurerm_role_assignment" "reader" {
  scope                = azurerm_storage_container.repository.resource_manager_id
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = var.reader_principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "publisher" {
  count = var.publisher_principal_id == null ? 0 : 1

  scope                = azurerm_storage_container.repository.resource_manager_id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = var.publisher_principal_id
}
