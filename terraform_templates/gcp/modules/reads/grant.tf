# What one read grant allows: "Storage Object Viewer" (get and list objects, nothing that writes,
# deletes or sets IAM) on the producer's managed folder `curated/`, so on the objects under that
# prefix only. Pure (no provider, no resource): the tests evaluate it with `terraform console`.

locals {
  grant = {
    bucket         = var.bucket_name
    managed_folder = "curated/" # the producer creates it (../storage)
    role           = "roles/storage.objectViewer"
    member         = "serviceAccount:${var.reader_email}"
    location       = "gs://${var.bucket_name}/curated/"
  }
}
