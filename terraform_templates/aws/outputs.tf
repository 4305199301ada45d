output "bucket_name" {
  description = "The product's bucket."
  value       = module.storage.bucket_name
}

output "bucket_arn" {
  description = "ARN of the product's bucket."
  value       = module.storage.bucket_arn
}

output "kms_key_arn" {
  description = "The key that encrypts the product's bucket."
  value       = module.storage.kms_key_arn
}

output "role_arn" {
  description = "The product's identity: the only principal that may write to its bucket."
  value       = module.compute.role_arn
}

output "job_queue_arn" {
  description = "The product's Batch job queue."
  value       = module.compute.job_queue_arn
}

output "job_definition_arn" {
  description = "The job definition of the product's runs."
  value       = module.compute.job_definition_arn
}

output "max_vcpus" {
  description = "The product's vCPU quota."
  value       = module.compute.max_vcpus
}

output "repository_name" {
  description = "The product's pipeline repository."
  value       = module.pipeline.repository_name
}

output "repository_clone_url_http" {
  description = "HTTPS clone URL of the product's pipeline repository."
  value       = module.pipeline.clone_url_http
}

output "reads" {
  description = "Each producer this product may read, with its published area."
  value       = { for slug, grant in module.reads : slug => grant.location }
}
