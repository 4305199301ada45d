# The product's pipeline repository, recording the scaffold version and the product's WID.
# Created empty: the portal pushes the scaffold of `template_version` after the apply.

resource "aws_codecommit_repository" "this" {
  repository_name = var.repository_name
  description     = "Pipeline of data product ${var.product} (scaffold v${var.template_version}). WID: ${var.wid_url}"

  tags = {
    "template-version" = var.template_version
    "wid-url"          = var.wid_url
  }
}

# Runs may fetch their own pipeline's code; pushing stays with the team and the portal.
data "aws_iam_policy_document" "reader" {
  statement {
    sid       = "PullItsPipeline"
    actions   = ["codecommit:GitPull"]
    resources = [aws_codecommit_repository.this.arn]
  }
}

resource "aws_iam_role_policy" "reader" {
  name   = "pipeline-repository"
  role   = var.reader_role_name
  policy = data.aws_iam_policy_document.reader.json
}
