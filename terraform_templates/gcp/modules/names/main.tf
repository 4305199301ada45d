# Every identifier of one product's GCP resources, derived from its slug alone (plus the
# installation's prefix, and the project where a name must be globally unique).
# Pure functions, no provider: the tests evaluate it with `terraform console`.

locals {
  base      = "${var.prefix}-${var.product}" # at most 6 + 1 + 42 = 49 characters
  collapsed = replace(var.product, "/-+/", "-")

  names = {
    # <= 58 of 63; the hash is hex, so it cannot spell "google".
    bucket = "${local.base}-${substr(sha1(var.project), 0, 8)}"
    # Service account IDs take 6-30 characters: a longer name keeps 22 and a hash of the slug, so
    # it is exactly 30 long and cannot equal a shorter one.
    service_account = length(local.base) <= 29 ? local.base : "${substr(local.base, 0, 22)}-${substr(sha1(var.product), 0, 7)}"
    # Cloud Run: kept under 50 characters and free of "--", the safe side of its naming rules;
    # the hash of the slug keeps "a--b" and "a-b" apart.
    job              = "${var.prefix}-${trimsuffix(substr(local.collapsed, 0, 30), "-")}-${substr(sha1(var.product), 0, 8)}"
    repository       = local.base # Source Repositories
    image_repository = local.base # Artifact Registry: <= 63
  }
}
