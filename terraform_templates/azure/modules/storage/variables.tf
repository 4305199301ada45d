variable "resource_group_name" {
  type        = string
  description = "The product's resource group."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "account_name" {
  type        = string
  description = "Name of the product's storage account."
}

variable "container_name" {
  type        = string
  description = "Name of the product's data container."
}

variable "replication_type" {
  type        = string
  description = "Replication of the storage account."
}

variable "writer_principal_id" {
  type        = string
  description = "Object ID of the product's identity: the only principal given a write role."
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a replaced or deleted blob version is kept."
}

variable "tags" {
  type        = map(string)
  description = "Tags of the storage account (product, team, classification, ...)."
}

variable "metadata" {
  type        = map(string)
  description = "Metadata of the data container (lowercase keys)."
}
