# The product's values: exactly the keys provisioning.rendering.tfvars() writes to
# terraform.tfvars.json. Nothing here has a default, so a missing value fails the plan.

variable "product" {
  type        = string
  description = "The product's slug; every identifier below is derived from it."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.product))
    error_message = "The product must be a slug: ^[a-z][a-z0-9-]{1,40}[a-z0-9]$."
  }

  # Cloud Storage refuses bucket names that contain "google" or a close misspelling of it.
  validation {
    condition     = !can(regex("g[o0][o0]g[l1][e3]", var.product))
    error_message = "On gcp the product's bucket name cannot contain \"google\" or a look-alike."
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
  description = "Producers whose published area (the managed folder `curated/` of their bucket) this product may read: one read-only grant each."

  validation {
    condition     = alltrue([for slug in var.reads : can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", slug))]) && length(distinct(var.reads)) == length(var.reads)
    error_message = "Every producer in reads must be a slug (^[a-z][a-z0-9-]{1,40}[a-z0-9]$), each once."
  }
}

variable "readers" {
  type = list(object({
    name        = string
    valid_until = string
  }))
  description = "Personal warehouse logins on the published schema (local target only; unused here: this target has no warehouse, and the portal knows no person's Google account)."
}

variable "suspended" {
  type        = bool
  description = "Access switched off, data kept (the WID's `suspended: true`). Local target only for now; unused here: the consumers' IAM bindings live in their own states (docs/adr/0024)."
}

variable "password_generation" {
  type        = number
  description = "Generation of the product's warehouse password (local target only; unused here: the product's identity is a service account without keys, with no secret to rotate)."
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

# The installation's cloud settings.

variable "project" {
  type        = string
  description = "GCP project of the product's resources; null takes the provider's default."
  default     = null
}

variable "region" {
  type        = string
  description = "GCP region of the product's resources (its bucket included)."
  default     = "europe-west1"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every name this installation creates (2-6 lowercase letters or digits)."
  default     = "dp"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,5}$", var.name_prefix)) && !can(regex("^goog", var.name_prefix))
    error_message = "The name prefix must match ^[a-z][a-z0-9]{1,5}$ and not start with \"goog\"."
  }
}

variable "kms_key_name" {
  type        = string
  description = "A Cloud KMS key for the product's bucket (CMEK); null for Google-managed encryption."
  default     = null
}

variable "pipeline_image" {
  type        = string
  description = "Container image the product's runs start from until its CI publishes its own."
  default     = "us-docker.pkg.dev/cloudrun/container/job:latest"
}

variable "run_timeout_seconds" {
  type        = number
  description = "Longest a task of a run may take."
  default     = 3600
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
