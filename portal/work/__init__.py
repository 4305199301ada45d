"""The kernel for long work: jobs, pipeline runs, site builds and deliveries.

Every piece of long work is a PostgreSQL row (`models.Work`): queued, claimed by a conditional
UPDATE, kept alive by a heartbeat, bounded by a deadline, with an append-only, capped log. Celery
and Redis only carry the wake-up call: `dispatch` sends it after the transaction commits, and the
reconciler (beat) sends it again when Redis lost it, and fails what a dead worker left behind.
"""
