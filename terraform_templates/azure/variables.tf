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
  description = "Producers whose published area (`curated/` of their data container) this product may read: one read-only grant each."

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
  description = "Personal warehouse logins on the published schema (local target only; unused here: this target has no warehouse, and the portal knows no person's Entra ID principal)."
}

variable "suspended" {
  type        = bool
  description = "Access switched off, data kept (the WID's `suspended: true`). Local target only for now; unused here: the consumers' role assignments live in their own states (docs/adr/0024)."
}

variable "password_generation" {
  type        = number
  description = "Generation of the product's warehouse password (local target only; unused here: the product's identity is a managed identity, with no secret to rotate)."
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

variable "subscription_id" {
  type        = string
  description = "Azure subscription of the product's resources; null takes ARM_SUBSCRIPTION_ID."
  default     = null
}

variable "location" {
  type        = string
  description = "Azure region of the product's resources."
  default     = "westeurope"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every name this installation creates (2-6 lowercase letters or digits)."
  default     = "dp"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,5}$", var.name_prefix))
    error_message = "The name prefix must match ^[a-z][a-z0-9]{1,5}$."
  }
}

variable "replication_type" {
  type        = string
  description = "Replication of the product's storage account (LRS, ZRS, GRS, ...)."
  default     = "ZRS"
}

variable "container_app_environment_id" {
  type        = string
  description = "A shared Container Apps environment (with workload profiles) for the runs; null gives each product its own."
  default     = null
}

variable "workload_profile_name" {
  type        = string
  description = "Workload profile of the runs in that environment."
  default     = "Consumption"
}

variable "pipeline_image" {
  type        = string
  description = "Container image the product's runs start from until its CI publishes its own."
  default     = "mcr.microsoft.com/k8se/quickstart-jobs:latest"
}

variable "run_timeout_seconds" {
  type        = number
  description = "Longest a replica of a run may take."
  default     = 3600
}

variable "pipeline_publisher_principal_id" {
  type        = string
  description = "Object ID of the principal that publishes pipeline bundles (the portal's); null for none."
  default     = null
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a replaced or deleted blob version is kept."
  default     = 90
}
