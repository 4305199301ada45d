variable "product" {
  type        = string
  description = "The product's slug (the runs' environment)."
}

variable "resource_group_name" {
  type        = string
  description = "The product's resource group."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "identity_name" {
  type        = string
  description = "Name of the product's managed identity."
}

variable "job_name" {
  type        = string
  description = "Name of the Container Apps job of the product's runs."
}

variable "environment_name" {
  type        = string
  description = "Name of the product's own Container Apps environment, when it gets one."
}

variable "container_app_environment_id" {
  type        = string
  description = "A shared Container Apps environment, or null for one of the product's own."
}

variable "workload_profile_name" {
  type        = string
  description = "Workload profile of the runs."
}

variable "storage_account_name" {
  type        = string
  description = "The product's storage account, passed to its runs."
}

variable "container_name" {
  type        = string
  description = "The product's data container, passed to its runs."
}

variable "concurrency" {
  type        = number
  description = "Replicas of a run that may run at once."
}

variable "memory_mb" {
  type        = number
  description = "Memory of one replica, in MB; its vCPUs follow (0.25 per 512 MB)."

  validation {
    condition     = var.memory_mb >= 512 && var.memory_mb <= 8192 && var.memory_mb % 512 == 0
    error_message = "Container Apps replicas take 512 to 8192 MB, in steps of 512."
  }
}

variable "pipeline_image" {
  type        = string
  description = "Container image of the product's runs."
}

variable "run_timeout_seconds" {
  type        = number
  description = "Longest a replica may take."
}

variable "tags" {
  type        = map(string)
  description = "Tags of every resource."
}
