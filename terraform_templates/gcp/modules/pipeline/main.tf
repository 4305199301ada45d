# The product's pipeline: its source repository, created empty (the portal pushes the scaffold
# of `template_version` after the apply), and the Artifact Registry repository its CI publishes
# the pipeline's images to. Source Repositories take neither labels nor a description, so the
# scaffold version and the WID are recorded on the image repository (labels cannot hold a URL;
# its description does).

resource "google_sourcerepo_repository" "this" {
  name = var.repository_name
}

resource "google_sourcerepo_repository_iam_member" "reader" {
  repository = google_sourcerepo_repository.this.name
  role       = "roles/source.reader"
  member     = "serviceAccount:${var.reader_email}"
}

resource "google_artifact_registry_repository" "images" {
  repository_id = var.image_repository
  location      = var.region
  format        = "DOCKER"
  description   = "Pipeline images of data product ${var.product} (scaffold v${var.template_version}). WID: ${var.wid_url}"
  labels        = var.labels
}

resource "google_artifact_registry_repository_iam_member" "reader" {
  repository = google_artifact_registry_repository.images.name
  location   = google_artifact_registry_repository.images.location
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${var.reader_email}"
}
