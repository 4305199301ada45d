# The producers this product may read: one read-only grant each (modules/reads). A product
# already reads its own bucket as its writer, so it never gets a grant on itself. Pure (no
# provider): the tests evaluate it with `terraform console`.

locals {
  producers = toset([for slug in var.reads : slug if slug != var.product])
}
