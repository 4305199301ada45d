variable "product" {
  type = string
}

variable "lake_root" {
  type = string
}

variable "password_generation" {
  type = number
}

variable "suspended" {
  type = bool
}
