output "resource_group_name" {
  description = "The product's resource group."
  value       = azurerm_resource_group.product.name
}

output "storage_account_name" {
  description = "The product's storage account."
  value       = module.storage.account_name
}

output "container_name" {
  description = "The product's data container."
  value       = module.storage.container_name
}

output "identity_client_id" {
  description = "Client ID of the product's identity: the only principal that may write its data."
  value       = module.compute.identity_client_id
}

output "identity_principal_id" {
  description = "Object ID of the product's identity."
  value       = module.compute.identity_principal_id
}

output "job_name" {
  description = "The Container Apps job of the product's runs."
  value       = module.compute.job_name
}

output "pipeline_container_name" {
  description = "The container holding the product's pipeline bundles."
  value       = module.pipeline.container_name
}

output "reads" {
  description = "Each producer this product may read, with its published area."
  value       = { for slug, grant in module.reads : slug => grant.location }
}
