# The product's execution queue and quotas, and its warehouse role's limits.
terraform {
  required_providers {
    localplatform = {
      source  = "portal.local/platform/localplatform"
      version = "0.1.0"
    }
  }
}

resource "localplatform_compute" "this" {
  product              = var.product
  role                 = var.role
  concurrency          = var.concurrency
  memory_mb            = var.memory_mb
  connection_limit     = var.connection_limit
  statement_timeout_ms = var.statement_timeout_ms
}
