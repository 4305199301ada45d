# Read access of this product to one producer's published area, held in this product's state:
# it shows in this product's plans, is drift-checked with it, and goes when the producer leaves
# `reads`. A managed folder has an IAM policy of its own: the producer sets its bucket's policy
# whole (../storage), which would remove a binding added to it here at its next apply; the
# folder's policy it leaves alone, and this member is added to it without replacing others'.

resource "google_storage_managed_folder_iam_member" "read" {
  bucket         = local.grant.bucket
  managed_folder = local.grant.managed_folder
  role           = local.grant.role
  member         = local.grant.member
}
