# What one read grant allows: "Storage Blob Data Reader" (read and list blobs, no write, delete
# or permission action) on the producer's data container, narrowed by a condition to blobs
# under `curated/` (reads by path, listings by prefix). Azure RBAC scopes go no lower than a
# container; the condition is what keeps the producer's other folders out. Pure (no provider,
# no resource): the tests evaluate it with `terraform console`.

locals {
  published_prefix = "curated/"
  containers       = "Microsoft.Storage/storageAccounts/blobServices/containers"
  in_container     = "@Resource[${local.containers}:name] StringEquals '${var.container_name}'"

  grant = {
    scope             = "/subscriptions/${var.subscription_id}/resourceGroups/${var.resource_group_name}/providers/Microsoft.Storage/storageAccounts/${var.storage_account_name}/blobServices/default/containers/${var.container_name}"
    role              = "Storage Blob Data Reader"
    condition_version = "2.0"
    condition = join(" ", [
      "((!(ActionMatches{'${local.containers}/blobs/read'} AND NOT SubOperationMatches{'Blob.List'}))",
      "OR (${local.in_container} AND @Resource[${local.containers}/blobs:path] StringStartsWith '${local.published_prefix}'))",
      "AND",
      "((!(ActionMatches{'${local.containers}/blobs/read'} AND SubOperationMatches{'Blob.List'}))",
      "OR (${local.in_container} AND @Request[${local.containers}/blobs:prefix] StringStartsWith '${local.published_prefix}'))",
    ])
    location = "https://${var.storage_account_name}.blob.core.windows.net/${var.container_name}/${local.published_prefix}"
  }
}
