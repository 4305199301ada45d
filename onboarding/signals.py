"""Domain events of onboarding. Other apps (provisioning) listen; onboarding knows none of them.

Sent inside the transaction that records the change, after the WID is committed to git:
a receiver can write rows atomically with it and should enqueue work with
`transaction.on_commit`. Each sends `product` (an `onboarding.models.Product`) and `actor`
(the deciding user, or None when the policy decided).

`wid_saved` is sent for every commit of a WID (create, update and each transition), with
`product` and `created` (True for the commit that created the file).
"""
from django.dispatch import Signal

wid_submitted = Signal()
wid_approved = Signal()
wid_rejected = Signal()
wid_changes_requested = Signal()
wid_retired = Signal()
wid_withdrawn = Signal()
wid_saved = Signal()
