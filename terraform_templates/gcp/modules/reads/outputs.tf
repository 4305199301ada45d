output "location" {
  description = "The producer's published area this product may read."
  value       = local.grant.location
}

output "member_id" {
  description = "The managed folder's IAM member that grants it."
  value       = google_storage_managed_folder_iam_member.read.id
}
