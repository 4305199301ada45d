output "location" {
  description = "The producer's published area this product may read."
  value       = local.grant.location
}

output "policy_name" {
  description = "The inline policy on this product's role that grants it."
  value       = aws_iam_role_policy.read.name
}
