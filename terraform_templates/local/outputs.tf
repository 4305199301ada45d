output "storage_role" {
  value = module.storage.role
}

output "storage_password" {
  value     = module.storage.password
  sensitive = true
}

output "storage_schema" {
  value = module.storage.schema
}

output "published_schema" {
  value = module.storage.published_schema
}

output "warehouse_host" {
  value = module.storage.host
}

output "warehouse_port" {
  value = module.storage.port
}

output "warehouse_database" {
  value = module.storage.database
}

output "lake_path" {
  value = module.storage.lake_path
}

output "queue" {
  value = module.compute.queue
}

output "concurrency" {
  value = module.compute.concurrency
}

output "memory_mb" {
  value = module.compute.memory_mb
}

output "pipeline_repo" {
  value = module.pipeline.path
}

output "pipeline_commit" {
  value = module.pipeline.commit
}

output "template_version" {
  value = module.pipeline.template_version
}

output "reads" {
  description = "Producer slug => where this product reads it: its published schema and curated/ folder."
  value = {
    for producer, grant in localplatform_grant.reads :
    producer => { schema = grant.schema, curated_path = grant.curated_path }
  }
}

output "reader_passwords" {
  description = "Reader login => its password."
  value       = { for name, reader in localplatform_reader.readers : name => reader.password }
  sensitive   = true
}
