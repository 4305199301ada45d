# Read access of this product to one producer's published area, held in this product's state:
# it shows in this product's plans, is drift-checked with it, and goes when the producer leaves
# `reads`. An inline policy on the product's own role: the producer's bucket policy denies
# object writes by anyone but the producer, and grants nothing, so same-account IAM decides reads.

resource "aws_iam_role_policy" "read" {
  name   = "read-${var.producer}"
  role   = var.reader_role_name
  policy = jsonencode(local.grant.policy)
}
