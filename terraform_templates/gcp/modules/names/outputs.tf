output "bucket" {
  value = local.names.bucket
}

output "service_account" {
  value = local.names.service_account
}

output "job" {
  value = local.names.job
}

output "repository" {
  value = local.names.repository
}

output "image_repository" {
  value = local.names.image_repository
}
