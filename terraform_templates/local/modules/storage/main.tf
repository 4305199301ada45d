# The product's schema, owned by its own login role, and its lake folder (raw, staging, curated).
terraform {
  required_providers {
    localplatform = {
      source  = "portal.local/platform/localplatform"
      version = "0.1.0"
    }
  }
}

resource "localplatform_storage" "this" {
  product   = var.product
  lake_root = var.lake_root
}
