variable "producer" {
  type        = string
  description = "The producer's slug (the policy's name)."
}

variable "bucket_name" {
  type        = string
  description = "The producer's bucket, named by ../names from the producer's slug."
}

variable "kms_alias" {
  type        = string
  description = "Alias of the key that encrypts the producer's bucket."
}

variable "reader_role_name" {
  type        = string
  description = "This product's identity, which may read (never write) the producer's published area."
}

variable "partition" {
  type        = string
  description = "The AWS partition (aws, aws-cn, ...)."
}

variable "dns_suffix" {
  type        = string
  description = "The partition's DNS suffix, for the S3 endpoint the key may be used through."
}

variable "region" {
  type        = string
  description = "The region of the producer's key (the installation's)."
}

variable "account_id" {
  type        = string
  description = "The account of the producer's key (the installation's)."
}
