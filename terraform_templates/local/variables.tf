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

variable "reads" {
  type        = list(string)
  description = "Slugs of the producers whose published ports this product may read."

  validation {
    condition     = alltrue([for slug in var.reads : can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", slug))])
    error_message = "Each of reads must be a product slug: ^[a-z][a-z0-9-]{1,40}[a-z0-9]$."
  }
}

variable "readers" {
  type = list(object({
    name        = string
    valid_until = string
  }))
  description = "People's login roles on this product's published schema (a_<digits>), each valid until a UTC time."

  validation {
    condition = alltrue([
      for reader in var.readers :
      can(regex("^a_[0-9]{1,12}$", reader.name)) && can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$", reader.valid_until))
    ])
    error_message = "Each reader needs a name a_<digits> and a valid_until YYYY-MM-DDTHH:MM:SSZ."
  }
}

variable "suspended" {
  type        = bool
  description = "Access to the product's data switched off, the data kept (the WID's `suspended: true`): its login cannot log in, nobody reads its published schema."
}

variable "password_generation" {
  type        = number
  description = "Generation of the product's password: one more rotates it."
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

variable "pipeline_variant" {
  type        = string
  description = "The WID's ingestion pattern, whose variant of the scaffold the pipeline starts from (none: the base)."

  validation {
    condition     = contains(["none", "file_drop", "database_extract", "spreadsheet"], var.pipeline_variant)
    error_message = "The pipeline variant must be none, file_drop, database_extract or spreadsheet."
  }
}
