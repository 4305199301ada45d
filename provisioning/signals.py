"""Domain events of provisioning, for whoever wants to react (site rebuilds, webhooks).

Sent after the change is saved. `job_finished` sends `job` (a finished `provisioning.models.Job`);
`drift_detected` sends `product` and `details` (the resources that moved) when a check finds a
product drifted that was not flagged before; `usage_changed` sends `slugs` (producers with a new
reader, a new refused read, or a new day of last read). `health_changed` sends `product`, `previous` and
`state` (ok, stale, failing), `reasons` (lines) and `run` (the last run's values, or None) when a
product's health changes, inside the transaction that records the change: receivers write to the
outbox there, so each change is told once. Receivers enqueue work with `transaction.on_commit`.
"""
from django.dispatch import Signal

job_finished = Signal()
drift_detected = Signal()
usage_changed = Signal()
health_changed = Signal()
