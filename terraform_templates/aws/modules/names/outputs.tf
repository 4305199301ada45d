output "bucket" {
  value = local.names.bucket
}

output "kms_alias" {
  value = local.names.kms_alias
}

output "role" {
  value = local.names.role
}

output "execution_role" {
  value = local.names.execution_role
}

output "security_group" {
  value = local.names.security_group
}

output "compute_environment" {
  value = local.names.compute_environment
}

output "job_queue" {
  value = local.names.job_queue
}

output "job_definition" {
  value = local.names.job_definition
}

output "repository" {
  value = local.names.repository
}
