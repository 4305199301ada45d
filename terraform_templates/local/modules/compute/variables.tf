variable "product" {
  type = string
}

variable "role" {
  type = string
}

variable "concurrency" {
  type = number
}

variable "memory_mb" {
  type = number
}

variable "connection_limit" {
  type = number
}

variable "statement_timeout_ms" {
  type = number
}
