"""Beat's tasks for all long work."""
from celery import shared_task

from portal.work import kernel


@shared_task(ignore_result=True)
def reconcile() -> dict:
    return kernel.reconcile()


@shared_task(ignore_result=True)
def prune_logs() -> int:
    from portal.work import deliveries

    return kernel.prune_logs() + deliveries.forget_delivered()


@shared_task(ignore_result=True, acks_late=True)
def deliver(delivery_id: int) -> str:
    # Safe to run twice: an attempt first claims the row, and only a due, pending one.
    from portal.work import deliveries

    return deliveries.deliver(delivery_id)
