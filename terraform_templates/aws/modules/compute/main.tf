# The product's compute: its identity (an IAM role that only its own runs can assume) and a
# Fargate Batch queue of its own whose compute environment caps its vCPUs, so one product cannot
# starve another.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_vpc" "this" {
  id      = var.vpc_id
  default = var.vpc_id == null
}

data "aws_subnets" "this" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.this.id]
  }
}

locals {
  # The smallest Fargate vCPU size that accepts a task of memory_mb.
  vcpu = (
    var.memory_mb <= 2048 ? 0.25 :
    var.memory_mb <= 4096 ? 0.5 :
    var.memory_mb <= 8192 ? 1 :
    var.memory_mb <= 16384 ? 2 : 4
  )
  # The quota: `concurrency` tasks of that size (Batch counts whole vCPUs).
  max_vcpus  = ceil(var.concurrency * local.vcpu)
  subnet_ids = length(var.subnet_ids) > 0 ? var.subnet_ids : data.aws_subnets.this.ids
}

# Only ECS tasks of this account (the product's Batch jobs) may assume the product's roles.
data "aws_iam_policy_document" "assume_role" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# The product's identity: its runs act as this role, the only principal that may write to its
# bucket (see ../storage). It starts with no permissions; storage and pipeline grant their own.
resource "aws_iam_role" "product" {
  name                 = var.role_name
  description          = "Identity of data product ${var.product}: its runs, sole writer of its bucket."
  assume_role_policy   = data.aws_iam_policy_document.assume_role.json
  permissions_boundary = var.permissions_boundary_arn
  max_session_duration = 3600
}

# What ECS itself needs to start a task (pull the image, ship logs); not visible to the run.
resource "aws_iam_role" "execution" {
  name                 = var.execution_role_name
  description          = "Starts the runs of data product ${var.product} (image pull, logs)."
  assume_role_policy   = data.aws_iam_policy_document.assume_role.json
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# Runs accept no inbound traffic.
resource "aws_security_group" "runs" {
  name        = var.security_group_name
  description = "Runs of data product ${var.product}: no inbound traffic"
  vpc_id      = data.aws_vpc.this.id

  egress {
    description = "Outbound to AWS APIs and the image registry"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_batch_compute_environment" "this" {
  name = var.compute_environment_name
  type = "MANAGED"

  compute_resources {
    type               = "FARGATE"
    max_vcpus          = local.max_vcpus
    subnets            = local.subnet_ids
    security_group_ids = [aws_security_group.runs.id]
  }
}

resource "aws_batch_job_queue" "this" {
  name     = var.job_queue_name
  priority = 1
  state    = "ENABLED"

  compute_environment_order {
    order               = 0
    compute_environment = aws_batch_compute_environment.this.arn
  }
}

resource "aws_batch_job_definition" "this" {
  name                  = var.job_definition_name
  type                  = "container"
  platform_capabilities = ["FARGATE"]
  propagate_tags        = true

  retry_strategy {
    attempts = 1
  }

  timeout {
    attempt_duration_seconds = var.run_timeout_seconds
  }

  container_properties = jsonencode({
    image            = var.pipeline_image
    jobRoleArn       = aws_iam_role.product.arn
    executionRoleArn = aws_iam_role.execution.arn
    resourceRequirements = [
      { type = "VCPU", value = format("%g", local.vcpu) },
      { type = "MEMORY", value = format("%d", var.memory_mb) },
    ]
    fargatePlatformConfiguration = { platformVersion = "LATEST" }
    networkConfiguration         = { assignPublicIp = var.assign_public_ip ? "ENABLED" : "DISABLED" }
    environment = [
      { name = "PRODUCT", value = var.product },
      { name = "BUCKET", value = var.bucket_name },
    ]
  })
}
