output "location" {
  description = "The producer's published area this product may read."
  value       = local.grant.location
}

output "assignment_id" {
  description = "The role assignment that grants it."
  value       = azurerm_role_assignment.read.id
}
