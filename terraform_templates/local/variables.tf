# Exactly the keys provisioning.rendering.tfvars() writes.

variable "product" {
  type        = string
  description = "The product's slug."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.product))
    error_message = "The product must be a slug: ^[a-z][a-z0-9-]{1,40}[a-z0-9]$."
  }
}

variable "domain" {
  type        = string
  description = "The product's domain (not used by the local platform)."
}

variable "team" {
  type        = string
  description = "The owning team's slug (not used by the local platform)."
}

variable "classification" {
  type        = string
  description = "public, internal, confidential or restricted."

  validation {
    condition     = contains(["public", "internal", "confidential", "restricted"], var.classification)
    error_message = "The classification must be public, internal, confidential or restricted."
  }
}

variable "pii" {
  type        = bool
  description = "Whether the product holds personal data."
}

variable "compute_tier" {
  type        = string
  description = "small, medium or large; the quotas below are the tier's."

  validation {
    condition     = contains(["small", "medium", "large"], var.compute_tier)
    error_message = "The compute tier must be small, medium or large."
  }
}

variable "concurrency" {
  type        = number
  description = "Runs of the product's pipeline at a time."
}

variable "memory_mb" {
  type        = number
  description = "Memory quota of one run, in MB."
}

variable "connection_limit" {
  type        = number
  description = "Connection limit of the product's warehouse role."
}

variable "statement_timeout_ms" {
  type        = number
  description = "Statement timeout of the product's warehouse role, in milliseconds."
}

variable "wid_url" {
  type        = string
  description = "The product's WID page, linked from its pipeline repository."
}

variable "template_version" {
  type        = string
  description = "Version of the pipeline scaffold."
}

variable "lake_root" {
  type        = string
  description = "Absolute path of the lake; the product's folder is lake_root/product."
}

variable "pipelines_root" {
  type        = string
  description = "Absolute path under which pipeline repositories live."
}

variable "scaffold_dir" {
  type        = string
  description = "The pipeline scaffold of template_version."
}
