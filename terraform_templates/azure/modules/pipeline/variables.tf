variable "product" {
  type        = string
  description = "The product's slug."
}

variable "storage_account_id" {
  type        = string
  description = "The product's storage account, which hosts the repository."
}

variable "container_name" {
  type        = string
  description = "Name of the repository's container."
}

variable "template_version" {
  type        = string
  description = "Version of the pipeline scaffold the repository starts from."
}

variable "wid_url" {
  type        = string
  description = "The product's WID page."
}

variable "reader_principal_id" {
  type        = string
  description = "The product's identity, which may read (not change) its pipeline."
}

variable "publisher_principal_id" {
  type        = string
  description = "The principal that publishes bundles (the portal's), or null."
}
