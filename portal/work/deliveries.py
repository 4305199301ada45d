"""The outbox: every message to the outside (webhook POSTs, e-mails) is a `Delivery` row.

A row is written in the transaction that records the change it reports (`record`), so it exists
exactly when the change does. A worker makes one attempt per task (`deliver`): it claims the row
with a lease, calls the channel's adapter, and records the outcome in the row and its log. What
fails for a reason that may pass (the receiver down, 5xx, 408/429, an SMTP hiccup, an answer that
is not HTTP at all) is tried again with doubling waits until the channel's last attempt; anything
else is final. The reconciler sends the task again for any due row, so nothing depends on Redis.
"""
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.work import kernel
from portal.work.models import Delivery, DeliveryLogLine

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """What one try at a delivery came to."""

    ok: bool
    error: str = ""
    status_code: int | None = None
    permanent: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class Channel:
    send: Callable[[Delivery], Attempt]
    max_attempts: Callable[[], int]
    retry_base: Callable[[], float]


CHANNELS: dict[str, Channel] = {}

DELIVERIES = kernel.register(kernel.Kind(
    name="delivery", model=Delivery, task="portal.work.tasks.deliver",
    waiting=Q(status=Delivery.Status.PENDING), running=None, log_model=DeliveryLogLine, log_fk="delivery",
))


def record(channel: str, event: str, payload: dict, *, url: str = "", recipients: list[str] | None = None) -> Delivery:
    """Write the delivery in the current transaction; it is sent once that commits."""
    delivery = Delivery.objects.create(channel=channel, event=event, payload=payload, url=url,
                                       recipients=list(recipients or []))
    kernel.dispatch(delivery)
    return delivery


def record_email(event: str, *, recipients: list[str], subject: str, body: str) -> Delivery | None:
    recipients = list(dict.fromkeys(r for r in recipients if r))
    if not recipients:
        return None
    return record(Delivery.Channel.EMAIL, event, {"subject": subject, "body": body}, recipients=recipients)


def backoff(attempt: int, *, base: float, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempt + 1`: doubling from `base`, at most an hour."""
    wait = min(base * 2 ** (attempt - 1), 3600.0)
    if retry_after is not None:
        wait = max(wait, min(retry_after, 3600.0))
    return wait


def _claim(delivery_id: int, lease: float) -> Delivery | None:
    """Take a due delivery for one attempt; the lease keeps a second task (or the reconciler) off it.

    It waits for a row lock rather than skipping a locked row: the dispatch that woke it marks the
    row dispatched just after sending (the task can arrive first), and a skip then left the delivery
    unsent until the reconciler's next send, minutes later. A second claim waits, then sees the lease."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update()
                    .filter(pk=delivery_id, status=Delivery.Status.PENDING, available_at__lte=now).first())
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.available_at = now + timedelta(seconds=lease)
        delivery.started_at = delivery.started_at or now
        delivery.save(update_fields=["attempts", "available_at", "started_at"])
    return delivery


def deliver(delivery_id: int) -> str:
    """One attempt at a delivery, if it is due; the outcome: delivered, failed, retry in N s, not due."""
    delivery = _claim(delivery_id, lease=settings.NOTIFY_WEBHOOK_TIMEOUT + 60)
    if delivery is None:
        return "not due"
    channel = CHANNELS.get(delivery.channel)
    try:
        attempt = channel.send(delivery) if channel else Attempt(False, f"no channel {delivery.channel!r}",
                                                                  permanent=True)
    except Exception as exc:  # an adapter's bug must not leave the row retrying for ever
        logger.exception("delivery %s: the %s adapter raised", delivery.pk, delivery.channel)
        attempt = Attempt(False, f"{type(exc).__name__}: {exc}")
    attempt = dataclasses.replace(attempt, error=kernel.storable(attempt.error))
    now = timezone.now()
    fields = {"last_status_code": attempt.status_code, "last_error": attempt.error[:2000]}
    if attempt.ok:
        fields.update(status=Delivery.Status.DELIVERED, delivered_at=now, finished_at=now, last_error="")
        outcome = "delivered"
    elif attempt.permanent or delivery.attempts >= channel.max_attempts():
        fields.update(status=Delivery.Status.FAILED, finished_at=now, error=attempt.error[:2000])
        outcome = "failed"
        logger.error("%s %s %s gave up after %d attempts: %s", delivery.channel, delivery.event,
                     delivery.delivery_id, delivery.attempts, attempt.error)
    else:
        wait = backoff(delivery.attempts, base=channel.retry_base(), retry_after=attempt.retry_after)
        fields.update(available_at=now + timedelta(seconds=wait))
        outcome = f"retry in {wait:g} s"
        logger.warning("%s %s %s attempt %d failed (%s); %s", delivery.channel, delivery.event,
                       delivery.delivery_id, delivery.attempts, attempt.error, outcome)
    Delivery.objects.filter(pk=delivery.pk).update(**fields)
    if outcome.startswith("retry"):
        kernel.dispatch_later(delivery, wait)
    kernel.append(delivery, f"attempt {delivery.attempts}: {outcome}" + (f" ({attempt.error})" if attempt.error else ""))
    return outcome


def forget_delivered(*, keep_days: int = 30) -> int:
    return Delivery.objects.filter(status=Delivery.Status.DELIVERED,
                                   delivered_at__lt=timezone.now() - timedelta(days=keep_days)).delete()[0]


# --- e-mail -----------------------------------------------------------------------------------
def _send_email(delivery: Delivery) -> Attempt:
    import smtplib

    try:
        send_mail(delivery.payload["subject"], delivery.payload["body"], None, delivery.recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        return Attempt(False, f"recipients refused: {', '.join(exc.recipients)}", permanent=True)
    except (smtplib.SMTPException, OSError) as exc:
        return Attempt(False, f"{type(exc).__name__}: {exc}")
    return Attempt(True)


CHANNELS[Delivery.Channel.EMAIL] = Channel(
    send=_send_email, max_attempts=lambda: settings.EMAIL_MAX_ATTEMPTS, retry_base=lambda: settings.EMAIL_RETRY_BASE)
