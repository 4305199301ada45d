variable "product" {
  type        = string
  description = "The product's slug."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.product))
    error_message = "The product must be a slug: ^[a-z][a-z0-9-]{1,40}[a-z0-9]$."
  }
}

variable "prefix" {
  type        = string
  description = "The installation's name prefix."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,5}$", var.prefix))
    error_message = "The prefix must match ^[a-z][a-z0-9]{1,5}$."
  }
}

variable "project" {
  type        = string
  description = "The project: bucket names are global, so they carry a hash of it."
}
