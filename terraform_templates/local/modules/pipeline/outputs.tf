output "path" {
  value = localplatform_pipeline.this.path
}

output "commit" {
  value = localplatform_pipeline.this.commit
}

output "template_version" {
  value = localplatform_pipeline.this.template_version
}
