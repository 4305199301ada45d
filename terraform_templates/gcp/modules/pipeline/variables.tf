variable "product" {
  type        = string
  description = "The product's slug."
}

variable "repository_name" {
  type        = string
  description = "Name of the product's source repository."
}

variable "image_repository" {
  type        = string
  description = "ID of the product's Artifact Registry repository."
}

variable "region" {
  type        = string
  description = "GCP region of the image repository."
}

variable "template_version" {
  type        = string
  description = "Version of the pipeline scaffold the repository starts from."
}

variable "wid_url" {
  type        = string
  description = "The product's WID page."
}

variable "reader_email" {
  type        = string
  description = "The product's service account, which may read (not push) its pipeline."
}

variable "labels" {
  type        = map(string)
  description = "Labels of the image repository."
}
