output "container_name" {
  description = "The container holding the product's pipeline bundles."
  value       = azurerm_storage_container.repository.name
}
