output "service_account_email" {
  description = "Email of the product's identity."
  value       = google_service_account.product.email
}

output "job_name" {
  description = "The Cloud Run job of the product's runs."
  value       = google_cloud_run_v2_job.runs.name
}
