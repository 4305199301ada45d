output "bucket_name" {
  description = "The product's bucket."
  value       = google_storage_bucket.this.name
}

output "bucket_url" {
  description = "gs:// URL of the product's bucket."
  value       = google_storage_bucket.this.url
}
