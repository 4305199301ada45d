output "bucket_name" {
  description = "The product's bucket."
  value       = module.storage.bucket_name
}

output "bucket_url" {
  description = "gs:// URL of the product's bucket."
  value       = module.storage.bucket_url
}

output "service_account_email" {
  description = "The product's identity: the only principal that may write to its bucket."
  value       = module.compute.service_account_email
}

output "job_name" {
  description = "The Cloud Run job of the product's runs."
  value       = module.compute.job_name
}

output "repository_url" {
  description = "Clone URL of the product's pipeline repository."
  value       = module.pipeline.repository_url
}

output "image_repository" {
  description = "Artifact Registry repository of the product's pipeline images."
  value       = module.pipeline.image_repository
}

output "reads" {
  description = "Each producer this product may read, with its published area."
  value       = { for slug, grant in module.reads : slug => grant.location }
}
