output "repository_name" {
  description = "The product's pipeline repository."
  value       = aws_codecommit_repository.this.repository_name
}

output "repository_arn" {
  description = "ARN of the product's pipeline repository."
  value       = aws_codecommit_repository.this.arn
}

output "clone_url_http" {
  description = "HTTPS clone URL of the repository."
  value       = aws_codecommit_repository.this.clone_url_http
}
