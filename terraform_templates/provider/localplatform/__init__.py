"""The local data platform's Terraform provider (portal.local/platform/localplatform 0.1.0)."""
