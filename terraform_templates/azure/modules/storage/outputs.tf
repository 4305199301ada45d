output "account_id" {
  description = "Resource ID of the product's storage account."
  value       = azurerm_storage_account.this.id
}

output "account_name" {
  description = "The product's storage account."
  value       = azurerm_storage_account.this.name
}

output "container_name" {
  description = "The product's data container."
  value       = azurerm_storage_container.data.name
}
