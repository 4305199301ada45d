# Every identifier of one product's Azure resources, derived from its slug alone (plus the
# installation's prefix, and the subscription where a name must be globally unique).
# Pure functions, no provider: the tests evaluate it with `terraform console`.
#
# Azure's rules are tighter than the slug's: storage accounts take 3-24 lowercase letters and
# digits, Container Apps names at most 32 characters and neither take "--". Where a name has to be
# shortened or lose its hyphens, a hash of the slug keeps two products' names apart.

locals {
  base      = "${var.prefix}-${var.product}"
  collapsed = replace(var.product, "/-+/", "-") # no "--"
  hash      = sha1("${var.subscription_id}/${var.product}")

  names = {
    resource_group = "rg-${local.base}" # <= 90
    identity       = "id-${local.base}" # <= 128
    # 14 readable characters and 10 of the hash: 24, the most Azure allows.
    storage_account    = "${substr("${var.prefix}${replace(var.product, "-", "")}", 0, 14)}${substr(local.hash, 0, 10)}"
    container          = local.collapsed               # 3-63, in the product's own account
    pipeline_container = "${local.collapsed}-pipeline" # <= 51
    # Container Apps: <= 32, starts with a letter, ends with a letter or digit, no "--".
    job         = "${trimsuffix(substr(local.collapsed, 0, 23), "-")}-${substr(sha1(var.product), 0, 8)}"
    environment = "cae-${var.prefix}-${trimsuffix(substr(local.collapsed, 0, 40), "-")}-${substr(sha1(var.product), 0, 8)}" # <= 60
  }
}
