output "product" {
  value = localplatform_storage.this.product
}

output "role" {
  value = localplatform_storage.this.role
}

output "password" {
  value     = localplatform_storage.this.password
  sensitive = true
}

output "schema" {
  value = localplatform_storage.this.schema
}

output "host" {
  value = localplatform_storage.this.host
}

output "port" {
  value = localplatform_storage.this.port
}

output "database" {
  value = localplatform_storage.this.database
}

output "lake_path" {
  value = localplatform_storage.this.lake_path
}

output "published_schema" {
  value = localplatform_storage.this.published_schema
}

output "readers_role" {
  value = localplatform_storage.this.readers_role
}
