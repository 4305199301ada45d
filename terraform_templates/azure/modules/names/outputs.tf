output "resource_group" {
  value = local.names.resource_group
}

output "identity" {
  value = local.names.identity
}

output "storage_account" {
  value = local.names.storage_account
}

output "container" {
  value = local.names.container
}

output "pipeline_container" {
  value = local.names.pipeline_container
}

output "job" {
  value = local.names.job
}

output "environment" {
  value = local.names.environment
}
