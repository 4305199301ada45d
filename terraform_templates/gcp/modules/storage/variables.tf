variable "bucket_name" {
  type        = string
  description = "Name of the product's bucket."
}

variable "location" {
  type        = string
  description = "Location of the bucket."
}

variable "writer_email" {
  type        = string
  description = "Email of the product's service account: the only member with an object role."
}

variable "labels" {
  type        = map(string)
  description = "Labels of the bucket (product, team, classification, ...)."
}

variable "kms_key_name" {
  type        = string
  description = "A Cloud KMS key for the bucket, or null for Google-managed encryption."
}

variable "force_destroy" {
  type        = bool
  description = "Whether destroying the bucket may delete its objects."
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a replaced or deleted object version is kept."
}
