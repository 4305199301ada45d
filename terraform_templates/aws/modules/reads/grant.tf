# What one read grant allows: list and get the producer's published objects (`curated/` of its
# bucket) and decrypt them with its key, through S3 only. Nothing that writes, deletes or
# administers. Pure (no provider, no resource): the tests evaluate it with `terraform console`.

locals {
  published_prefix = "curated/"
  bucket_arn       = "arn:${var.partition}:s3:::${var.bucket_name}"

  grant = {
    location = "s3://${var.bucket_name}/${local.published_prefix}"
    policy = {
      Version = "2012-10-17"
      Statement = [
        {
          Sid       = "ListPublished"
          Effect    = "Allow"
          Action    = ["s3:ListBucket"]
          Resource  = [local.bucket_arn]
          Condition = { StringLike = { "s3:prefix" = ["${local.published_prefix}*"] } }
        },
        {
          Sid      = "ReadPublished"
          Effect   = "Allow"
          Action   = ["s3:GetObject"]
          Resource = ["${local.bucket_arn}/${local.published_prefix}*"]
        },
        # The producer's key is known here by its alias only (its ID is in the producer's state);
        # the key's default policy lets IAM policies grant it.
        {
          Sid      = "DecryptPublished"
          Effect   = "Allow"
          Action   = ["kms:Decrypt"]
          Resource = ["arn:${var.partition}:kms:${var.region}:${var.account_id}:key/*"]
          Condition = {
            "ForAnyValue:StringEquals" = { "kms:ResourceAliases" = [var.kms_alias] }
            StringEquals               = { "kms:ViaService" = ["s3.${var.region}.${var.dns_suffix}"] }
          }
        },
      ]
    }
  }
}
