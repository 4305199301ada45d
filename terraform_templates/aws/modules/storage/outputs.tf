output "bucket_name" {
  description = "The product's bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the product's bucket."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "The key that encrypts the bucket."
  value       = aws_kms_key.this.arn
}
