variable "product" {
  type = string
}

variable "lake_root" {
  type = string
}
