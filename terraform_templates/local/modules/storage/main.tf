# The product's private and published schemas, owned by its own login role, the readers role of
# the published one, and its lake folder (raw, staging, curated).
terraform {
  required_providers {
    localplatform = {
      source  = "portal.local/platform/localplatform"
      version = "0.1.0"
    }
  }
}

resource "localplatform_storage" "this" {
  product             = var.product
  lake_root           = var.lake_root
  password_generation = var.password_generation
  suspended           = var.suspended
}
