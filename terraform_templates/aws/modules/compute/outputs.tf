output "role_arn" {
  description = "ARN of the product's identity."
  value       = aws_iam_role.product.arn
}

output "role_name" {
  description = "Name of the product's identity."
  value       = aws_iam_role.product.name
}

output "job_queue_arn" {
  description = "The product's Batch job queue."
  value       = aws_batch_job_queue.this.arn
}

output "job_definition_arn" {
  description = "The job definition of the product's runs."
  value       = aws_batch_job_definition.this.arn
}

output "max_vcpus" {
  description = "The product's vCPU quota."
  value       = local.max_vcpus
}
