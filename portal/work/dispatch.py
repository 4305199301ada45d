"""Sending Celery tasks after the transaction commits, in one place, never failing the caller.

A task sent here is only a wake-up call for work that is already a row (a queued job, a pending
delivery...), so a send that fails (Redis down, restarting) is logged and left to the reconciler,
which sends it again from the row. The request that made the change has committed by then, and
answers as if the send had worked.
"""
import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def send(task_name: str, *args, countdown: float | None = None, queue: str | None = None) -> bool:
    """Send a task now; False (logged) if the broker cannot take it."""
    options = {"countdown": countdown} if countdown else {}
    if queue:
        options["queue"] = queue
    try:
        current_app.send_task(task_name, args=args, retry=False, **options)
        return True
    except Exception as exc:  # the broker's errors come from kombu, redis and the socket layer alike
        logger.warning("could not send %s%s (%s: %s); the reconciler will send it again",
                       task_name, args, type(exc).__name__, exc)
        return False


def after_commit(task_name: str, *args) -> None:
    """Send a task once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send(task_name, *args))


def broker_identity() -> str:
    """Which Redis the broker is: its run id changes on every restart, and a restarted Redis
    that kept nothing has lost every message sent to its predecessor. Empty when unreachable."""
    try:
        import redis
        from django.conf import settings

        info = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1,
                                    socket_timeout=1).info("server")
        return str(info.get("run_id", ""))
    except Exception:
        return ""

