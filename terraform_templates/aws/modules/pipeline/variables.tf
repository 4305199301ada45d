variable "product" {
  type        = string
  description = "The product's slug (the repository's description)."
}

variable "repository_name" {
  type        = string
  description = "Name of the product's pipeline repository."
}

variable "template_version" {
  type        = string
  description = "Version of the pipeline scaffold the repository starts from."
}

variable "wid_url" {
  type        = string
  description = "The product's WID page."
}

variable "reader_role_name" {
  type        = string
  description = "The product's identity, which may pull (not push) its pipeline's code."
}
