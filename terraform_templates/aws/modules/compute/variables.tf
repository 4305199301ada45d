variable "product" {
  type        = string
  description = "The product's slug (descriptions and the runs' environment)."
}

variable "role_name" {
  type        = string
  description = "Name of the product's IAM role."
}

variable "execution_role_name" {
  type        = string
  description = "Name of the role ECS uses to pull the image and ship logs."
}

variable "security_group_name" {
  type        = string
  description = "Name of the runs' security group."
}

variable "compute_environment_name" {
  type        = string
  description = "Name of the product's Batch compute environment."
}

variable "job_queue_name" {
  type        = string
  description = "Name of the product's Batch job queue."
}

variable "job_definition_name" {
  type        = string
  description = "Name of the job definition of the product's runs."
}

variable "bucket_name" {
  type        = string
  description = "The product's bucket, passed to its runs."
}

variable "concurrency" {
  type        = number
  description = "Tasks of the product's runs that may run at once."
}

variable "memory_mb" {
  type        = number
  description = "Memory of one task, in MB (a Fargate size)."

  validation {
    condition     = contains([512, 1024, 2048], var.memory_mb) || (var.memory_mb % 1024 == 0 && var.memory_mb <= 30720)
    error_message = "The memory must be a Fargate size: 512, 1024, 2048 or a multiple of 1024 up to 30720."
  }
}

variable "pipeline_image" {
  type        = string
  description = "Container image of the product's runs."
}

variable "run_timeout_seconds" {
  type        = number
  description = "Longest a run may take."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the runs; null for the default VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the runs; empty for all of the VPC's."
}

variable "assign_public_ip" {
  type        = bool
  description = "Whether runs get a public IP."
}

variable "permissions_boundary_arn" {
  type        = string
  description = "Permissions boundary of the product's roles, or null."
}
