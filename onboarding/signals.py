"""Domain events of onboarding. Other apps (provisioning) listen; onboarding knows none of them.

Sent inside the transaction that records the change, after the WID is committed to git:
a receiver can write rows atomically with it and should enqueue work with
`transaction.on_commit`. The decisions and retirement (`wid_submitted` ... `wid_withdrawn`) send
`product` (an `onboarding.models.Product`) and `actor` (the deciding user, or None when the policy
decided).

The product-life events send plain values only, so that a receiver cannot reach into onboarding's
tables by accident (it reads through `onboarding.selectors`): `slug`, `version` (of the WID after
the change), `actor` (the username), `comment`; `wid_deprecated` also `sunset` (a `datetime.date`).

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
wid_deprecated = Signal()
wid_suspended = Signal()
wid_resumed = Signal()
wid_saved = Signal()
