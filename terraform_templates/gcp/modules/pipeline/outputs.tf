output "repository_url" {
  description = "Clone URL of the product's source repository."
  value       = google_sourcerepo_repository.this.url
}

output "image_repository" {
  description = "ID of the product's Artifact Registry repository."
  value       = google_artifact_registry_repository.images.id
}
