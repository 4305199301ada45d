# The product's pipeline repository, scaffolded from scaffold_dir and committed.
terraform {
  required_providers {
    localplatform = {
      source  = "portal.local/platform/localplatform"
      version = "0.1.0"
    }
  }
}

resource "localplatform_pipeline" "this" {
  product          = var.product
  pipelines_root   = var.pipelines_root
  scaffold_dir     = var.scaffold_dir
  template_version = var.template_version
  wid_url          = var.wid_url
  lake_path        = var.lake_path
  schema           = var.schema
  role             = var.role
}
