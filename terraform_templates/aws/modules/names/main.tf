# Every identifier of one product's AWS resources, derived from its slug alone (plus the
# installation's prefix, and the account ID where a name must be globally unique).
# Pure functions, no provider: the tests evaluate it with `terraform console`.

locals {
  base = "${var.prefix}-${var.product}" # at most 6 + 1 + 42 = 49 characters

  names = {
    bucket              = "${local.base}-${var.account_id}" # <= 62 of S3's 63; ends in a digit
    kms_alias           = "alias/${local.base}"
    role                = local.base # IAM role names: <= 64
    execution_role      = "${local.base}-exec"
    security_group      = local.base
    compute_environment = local.base # Batch names: <= 128
    job_queue           = local.base
    job_definition      = local.base
    repository          = local.base # CodeCommit: <= 100
  }
}
