output "identity_id" {
  description = "Resource ID of the product's identity."
  value       = azurerm_user_assigned_identity.product.id
}

output "identity_principal_id" {
  description = "Object ID of the product's identity (what role assignments name)."
  value       = azurerm_user_assigned_identity.product.principal_id
}

output "identity_client_id" {
  description = "Client ID of the product's identity."
  value       = azurerm_user_assigned_identity.product.client_id
}

output "job_name" {
  description = "The Container Apps job of the product's runs."
  value       = azurerm_container_app_job.runs.name
}
