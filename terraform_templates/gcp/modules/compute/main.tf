# The product's compute: its identity (a service account with no project roles; storage and
# pipeline grant it what it needs on its own resources) and a Cloud Run job running as it. A run
# executes `concurrency` tasks at most at once, each limited to memory_mb and the vCPUs Cloud Run
# requires for it, so one product cannot starve another.

resource "google_service_account" "product" {
  account_id   = var.service_account_id
  display_name = "Data product ${var.product}"
  description  = "Identity of data product ${var.product}: its runs, sole writer of its bucket."
}

locals {
  # Cloud Run's minimum vCPUs for a memory limit.
  cpu = (
    var.memory_mb <= 4096 ? 1 :
    var.memory_mb <= 8192 ? 2 :
    var.memory_mb <= 16384 ? 4 : 8
  )
}

resource "google_cloud_run_v2_job" "runs" {
  name                = var.job_name
  location            = var.region
  deletion_protection = false
  labels              = var.labels

  template {
    task_count  = var.concurrency
    parallelism = var.concurrency
    labels      = var.labels

    template {
      service_account = google_service_account.product.email
      timeout         = "${var.run_timeout_seconds}s"
      max_retries     = 0

      containers {
        image = var.pipeline_image

        resources {
          limits = {
            cpu    = tostring(local.cpu)
            memory = "${var.memory_mb}Mi"
          }
        }

        env {
          name  = "PRODUCT"
          value = var.product
        }

        env {
          name  = "BUCKET"
          value = var.bucket_name
        }
      }
    }
  }
}
