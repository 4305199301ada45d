variable "producer" {
  type        = string
  description = "The producer's slug (the assignment's description)."
}

variable "subscription_id" {
  type        = string
  description = "The subscription of the producer's storage (the installation's)."
}

variable "resource_group_name" {
  type        = string
  description = "The producer's resource group, named by ../names from the producer's slug."
}

variable "storage_account_name" {
  type        = string
  description = "The producer's storage account, named the same way."
}

variable "container_name" {
  type        = string
  description = "The producer's data container, named the same way."
}

variable "reader_principal_id" {
  type        = string
  description = "Object ID of this product's identity, which may read (never write) the producer's published area."
}
