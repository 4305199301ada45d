# The product's storage: a private, versioned, encrypted bucket whose IAM policy is set whole
# (authoritatively). That drops the default project-owner/editor "convenience" bindings, so the
# product's service account is the only member with an object role on it; consumers read its
# published managed folder through that folder's own policy (below). Project-level grants of
# storage object roles would still apply; the platform keeps those empty.

resource "google_storage_bucket" "this" {
  name                        = var.bucket_name
  location                    = var.location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Encrypted at rest always; with a key of the installation's (CMEK) when one is given.
  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]

    content {
      default_kms_key_name = encryption.value
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_expiration_days
    }

    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 7
    }

    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
}

data "google_iam_policy" "bucket" {
  binding {
    role    = "roles/storage.objectAdmin"
    members = ["serviceAccount:${var.writer_email}"]
  }
}

resource "google_storage_bucket_iam_policy" "this" {
  bucket      = google_storage_bucket.this.name
  policy_data = data.google_iam_policy.bucket.policy_data
}

# The published area, `curated/`, as a managed folder: consumers grant themselves read on it in
# their own states (their modules/reads), through its IAM policy, apart from the bucket's.
resource "google_storage_managed_folder" "published" {
  bucket        = google_storage_bucket.this.name
  name          = "curated/"
  force_destroy = var.force_destroy
}
