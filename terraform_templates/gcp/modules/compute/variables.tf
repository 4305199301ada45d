variable "product" {
  type        = string
  description = "The product's slug (descriptions and the runs' environment)."
}

variable "service_account_id" {
  type        = string
  description = "Account ID of the product's service account."
}

variable "job_name" {
  type        = string
  description = "Name of the Cloud Run job of the product's runs."
}

variable "region" {
  type        = string
  description = "GCP region of the job."
}

variable "bucket_name" {
  type        = string
  description = "The product's bucket, passed to its runs."
}

variable "concurrency" {
  type        = number
  description = "Tasks of a run that may run at once."
}

variable "memory_mb" {
  type        = number
  description = "Memory limit of one task, in MB."

  validation {
    condition     = var.memory_mb >= 512 && var.memory_mb <= 32768
    error_message = "Cloud Run tasks take 512 to 32768 MB."
  }
}

variable "pipeline_image" {
  type        = string
  description = "Container image of the product's runs."
}

variable "run_timeout_seconds" {
  type        = number
  description = "Longest a task may take."
}

variable "labels" {
  type        = map(string)
  description = "Labels of the job."
}
