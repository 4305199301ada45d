variable "bucket_name" {
  type        = string
  description = "Name of the product's bucket."
}

variable "kms_alias" {
  type        = string
  description = "Alias of the key that encrypts the bucket."
}

variable "writer_role_arn" {
  type        = string
  description = "ARN of the product's identity: the only principal allowed to write."
}

variable "writer_role_name" {
  type        = string
  description = "Name of the same role, to attach its storage permissions to."
}

variable "tags" {
  type        = map(string)
  description = "Tags of the bucket (product, team, classification, ...)."
}

variable "force_destroy" {
  type        = bool
  description = "Whether destroying the bucket may delete its objects."
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a replaced or deleted object version is kept."
}
