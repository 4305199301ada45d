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

variable "account_id" {
  type        = string
  description = "The AWS account: bucket names are global, so they carry it."

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "The account ID must be 12 digits."
  }
}
