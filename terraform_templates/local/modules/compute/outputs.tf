output "queue" {
  value = localplatform_compute.this.queue
}

output "concurrency" {
  value = localplatform_compute.this.concurrency
}

output "memory_mb" {
  value = localplatform_compute.this.memory_mb
}
