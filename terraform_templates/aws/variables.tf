# The product's values: exactly the keys provisioning.rendering.tfvars() writes to
# terraform.tfvars.json. Nothing here has a default, so a missing value fails the plan.

variable "product" {
  type        = string
  description = "The product's slug; every identifier below is derived from it."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.product))
    error_message = "The product must be a slug: ^[a-z][a-z0-9-]{1,40}[a-z0-9]$."
  }
}

variable "domain" {
  type        = string
  description = "The product's domain (a slug); a tag."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.domain))
    error_message = "The domain must be a slug: ^[a-z][a-z0-9-]{1,40}[a-z0-9]$."
  }
}

variable "team" {
  type        = string
  description = "The owning team's slug; a tag."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.team))
    error_message = "The team must be a slug: ^[a-z][a-z0-9-]{1,40}[a-z0-9]$."
  }
}

variable "classification" {
  type        = string
  description = "public, internal, confidential or restricted; a tag."

  validation {
    condition     = contains(["public", "internal", "confidential", "restricted"], var.classification)
    error_message = "The classification must be public, internal, confidential or restricted."
  }
}

variable "pii" {
  type        = bool
  description = "Whether the product holds personal data; a tag."
}

variable "compute_tier" {
  type        = string
  description = "small, medium or large; concurrency and memory_mb are the tier's quotas."

  validation {
    condition     = contains(["small", "medium", "large"], var.compute_tier)
    error_message = "The compute tier must be small, medium or large."
  }
}

variable "concurrency" {
  type        = number
  description = "Tasks of the product's runs that may run at once."

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 16 && floor(var.concurrency) == var.concurrency
    error_message = "The concurrency must be a whole number from 1 to 16."
  }
}

variable "memory_mb" {
  type        = number
  description = "Memory of one task, in MB."

  validation {
    condition     = var.memory_mb >= 512 && var.memory_mb % 512 == 0
    error_message = "The memory must be a multiple of 512 MB, at least 512."
  }
}

variable "connection_limit" {
  type        = number
  description = "Warehouse connection limit (local target only; unused here)."
}

variable "statement_timeout_ms" {
  type        = number
  description = "Warehouse statement timeout (local target only; unused here)."
}

variable "wid_url" {
  type        = string
  description = "The product's WID page; recorded on its pipeline repository."

  validation {
    condition     = can(regex("^https?://[^[:space:]]+$", var.wid_url))
    error_message = "The WID URL must be an http(s) URL without spaces."
  }
}

variable "template_version" {
  type        = string
  description = "Version of the pipeline scaffold; recorded on the pipeline repository."

  validation {
    condition     = can(regex("^[0-9a-z][0-9a-z._-]{0,30}$", var.template_version))
    error_message = "The template version must be short and label-safe: ^[0-9a-z][0-9a-z._-]{0,30}$."
  }
}

variable "reads" {
  type        = list(string)
  description = "Producers whose published area (`curated/` of their bucket) this product may read: one read-only grant each."

  validation {
    condition     = alltrue([for slug in var.reads : can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", slug))]) && length(distinct(var.reads)) == length(var.reads)
    error_message = "Every producer in reads must be a slug (^[a-z][a-z0-9-]{1,40}[a-z0-9]$), each once."
  }

  # IAM caps a role's inline policies at 10,240 characters in all: the role's own two take about
  # 1,000, a read grant at most 770 (longest names; see the tests).
  validation {
    condition     = length(var.reads) <= 12
    error_message = "On aws a product may read at most 12 producers (IAM's inline policy size per role)."
  }
}

variable "readers" {
  type = list(object({
    name        = string
    valid_until = string
  }))
  description = "Personal warehouse logins on the published schema (local target only; unused here: this target has no warehouse, and the portal knows no person's AWS principal)."
}

variable "suspended" {
  type        = bool
  description = "Access switched off, data kept (the WID's `suspended: true`). Local target only for now; unused here: the consumers' read policies live in their own states (docs/adr/0024)."
}

variable "password_generation" {
  type        = number
  description = "Generation of the product's warehouse password (local target only; unused here: the product's identity is a role, with no secret to rotate)."
}

variable "lake_root" {
  type        = string
  description = "Local target's lake (unused here)."
}

variable "pipelines_root" {
  type        = string
  description = "Local target's pipeline repositories (unused here)."
}

variable "scaffold_dir" {
  type        = string
  description = "Local target's pipeline scaffold (unused here)."
}

variable "pipeline_variant" {
  type        = string
  description = "Local target's pipeline variant, the WID's ingestion pattern (unused here)."
}

# The installation's cloud settings: defaults that work in an account with a default VPC.

variable "region" {
  type        = string
  description = "AWS region of the product's resources."
  default     = "eu-west-1"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every name this installation creates (2-6 lowercase letters or digits)."
  default     = "dp"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,5}$", var.name_prefix)) && !contains(["sthree", "amzn"], var.name_prefix)
    error_message = "The name prefix must match ^[a-z][a-z0-9]{1,5}$ and not be an S3-reserved prefix."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the product's runs; null means the account's default VPC."
  default     = null
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the product's runs; empty means every subnet of the VPC."
  default     = []
}

variable "assign_public_ip" {
  type        = bool
  description = "Give runs a public IP (needed in public subnets without a NAT gateway to pull images)."
  default     = true
}

variable "pipeline_image" {
  type        = string
  description = "Container image the product's runs start from until its CI publishes its own."
  default     = "public.ecr.aws/docker/library/python:3.11-slim"
}

variable "run_timeout_seconds" {
  type        = number
  description = "Longest a run may take before Batch stops it."
  default     = 3600
}

variable "permissions_boundary_arn" {
  type        = string
  description = "Permissions boundary attached to the product's roles; null for none."
  default     = null
}

variable "force_destroy" {
  type        = bool
  description = "Let destroying a product delete its bucket with its data; off so data survives a destroy."
  default     = false
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a replaced or deleted object version is kept."
  default     = 90
}
