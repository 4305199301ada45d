variable "product" {
  type = string
}

variable "pipelines_root" {
  type = string
}

variable "scaffold_dir" {
  type = string
}

variable "template_version" {
  type = string
}

variable "wid_url" {
  type = string
}

variable "lake_path" {
  type = string
}

variable "schema" {
  type = string
}

variable "role" {
  type = string
}
