# Read access of this product to one producer's published area, held in this product's state:
# it shows in this product's plans, is drift-checked with it, and goes when the producer leaves
# `reads`. The producer's own assignment (its writer) is a separate resource in its state, so
# the two never fight.

resource "azurerm_role_assignment" "read" {
  scope                = local.grant.scope
  role_definition_name = local.grant.role
  principal_id         = var.reader_principal_id
  principal_type       = "ServicePrincipal"
  condition            = local.grant.condition
  condition_version    = local.grant.condition_version
  description          = "Reads the published area (curated/) of data product ${var.producer}."
}
