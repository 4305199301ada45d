variable "bucket_name" {
  type        = string
  description = "The producer's bucket, named by ../names from the producer's slug."
}

variable "reader_email" {
  type        = string
  description = "This product's service account, which may read (never write) the producer's published area."
}
