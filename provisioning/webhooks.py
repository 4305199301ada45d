"""The outgoing webhook: submit, decisions, finished jobs and drift, POSTed as signed JSON.

Each event becomes a `WebhookDelivery` row in the transaction that records the change (an
outbox), and a task on the worker delivers it once that transaction commits. A receiver that is
down, slow or answering 5xx, 408 or 429 is tried again with exponential back-off; beat's sweep
re-enqueues any due delivery whose task was lost. Any other answer outside 2xx is permanent.

What a receiver gets (README, "Outgoing webhook"):

    POST NOTIFY_WEBHOOK_URL
    Content-Type: application/json
    X-Portal-Event: wid.submitted
    X-Portal-Delivery: 5f0c...            (the same on every attempt: deduplicate on it)
    X-Portal-Timestamp: 1795000000        (Unix seconds of this attempt)
    X-Portal-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>

    {"id": "5f0c...", "event": "wid.submitted", "occurred_at": "...", "data": {...}}

No secret ever goes into a payload: jobs' outputs (credentials among them) are left out.
"""
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from onboarding import signals as wid_signals
from provisioning import signals
from provisioning.models import WebhookDelivery

logger = logging.getLogger(__name__)

EVENTS = ("wid.submitted", "wid.approved", "wid.rejected", "wid.changes_requested", "wid.retired",
          "job.finished", "product.drifted")
USER_AGENT = "onboarding-portal-webhook/1"
RETRYABLE_STATUS = {408, 425, 429}
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept a timestamp for (replays after that fail)


# --- Signing ---------------------------------------------------------------------------------

def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, *, timestamp: str, body: bytes, header: str, now: float | None = None,
           tolerance: int = SIGNATURE_TOLERANCE) -> bool:
    """What a receiver written in Python does with a request (the README shows it)."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, stamp, body), header or "")


def body_of(delivery: WebhookDelivery) -> bytes:
    """The exact bytes POSTed (and signed): the same on every attempt."""
    document = {"id": str(delivery.delivery_id), "event": delivery.event,
                "occurred_at": delivery.created_at.isoformat(), "data": delivery.payload}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# --- Recording events ------------------------------------------------------------------------

def enabled() -> bool:
    return bool(settings.NOTIFY_WEBHOOK_URL)


def record(event: str, data: dict) -> WebhookDelivery | None:
    """Write the event's delivery row in the current transaction; deliver once it commits."""
    if not enabled():
        return None
    assert event in EVENTS, event
    delivery = WebhookDelivery.objects.create(event=event, url=settings.NOTIFY_WEBHOOK_URL, payload=data)
    transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def _enqueue(delivery_id: int, countdown: float = 0) -> None:
    from provisioning.tasks import deliver_webhook

    deliver_webhook.apply_async((delivery_id,), countdown=countdown)


def _product(product) -> dict:
    return {"slug": product.slug, "name": product.name, "domain": product.domain, "team": product.team.slug,
            "status": product.status, "version": product.version, "classification": product.classification,
            "url": f"{settings.PORTAL_BASE_URL}/products/{product.slug}/"}


def _review(product, actor) -> dict:
    last = product.review_events.order_by("-position").first()
    return {"product": _product(product), "actor": actor.username if actor else None,
            "by_policy": actor is None, "comment": last.comment if last else ""}


@receiver(wid_signals.wid_submitted, dispatch_uid="webhook-wid-submitted")
def _submitted(sender, product, actor, **kwargs):
    record("wid.submitted", _review(product, actor))


@receiver(wid_signals.wid_approved, dispatch_uid="webhook-wid-approved")
def _approved(sender, product, actor, **kwargs):
    record("wid.approved", _review(product, actor))


@receiver(wid_signals.wid_rejected, dispatch_uid="webhook-wid-rejected")
def _rejected(sender, product, actor, **kwargs):
    record("wid.rejected", _review(product, actor))


@receiver(wid_signals.wid_changes_requested, dispatch_uid="webhook-wid-changes-requested")
def _changes_requested(sender, product, actor, **kwargs):
    record("wid.changes_requested", _review(product, actor))


@receiver(wid_signals.wid_retired, dispatch_uid="webhook-wid-retired")
def _retired(sender, product, actor, **kwargs):
    record("wid.retired", _review(product, actor))


@receiver(signals.job_finished, dispatch_uid="webhook-job-finished")
def _job_finished(sender, job, **kwargs):
    record("job.finished", {
        "job": {"id": job.pk, "action": job.action, "status": job.status, "reason": job.reason,
                "requested_by": job.requested_by.username if job.requested_by_id else None,
                "error": job.error.strip().split("\n", 1)[0] if job.error else "",
                "plan_summary": job.plan_summary,
                "created_at": job.created_at.isoformat() if job.created_at else None,
                "finished_at": job.finished_at.isoformat() if job.finished_at else None,
                "url": f"{settings.PORTAL_BASE_URL}/jobs/{job.pk}/"},
        "product": _product(job.product),
    })


@receiver(signals.drift_detected, dispatch_uid="webhook-product-drifted")
def _drifted(sender, product, details, **kwargs):
    record("product.drifted", {"product": _product(product), "details": list(details)})


# --- Delivering ------------------------------------------------------------------------------

def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempt + 1`: doubling from NOTIFY_WEBHOOK_RETRY_BASE, at most an hour."""
    wait = min(settings.NOTIFY_WEBHOOK_RETRY_BASE * 2 ** (attempt - 1), 3600.0)
    if retry_after is not None:
        wait = max(wait, min(retry_after, 3600.0))
    return wait


def _claim(delivery_id: int) -> WebhookDelivery | None:
    """Take a due delivery for one attempt; a lease keeps a second task (or the sweep) off it."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(skip_locked=True)
                    .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
                    .first())
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=settings.NOTIFY_WEBHOOK_TIMEOUT + 60)
        delivery.save(update_fields=["attempts", "next_attempt_at"])
    return delivery


def _post(delivery: WebhookDelivery) -> tuple[int | None, str, float | None]:
    """(HTTP status or None, error text, Retry-After seconds) of one POST."""
    body = body_of(delivery)
    stamp = int(time.time())
    request = urllib.request.Request(delivery.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        "X-Portal-Event": delivery.event, "X-Portal-Delivery": str(delivery.delivery_id),
        "X-Portal-Timestamp": str(stamp),
        "X-Portal-Signature": signature(settings.NOTIFY_WEBHOOK_SECRET, stamp, body),
    })
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=settings.NOTIFY_WEBHOOK_TIMEOUT) as response:
            return response.status, "", None
    except urllib.error.HTTPError as exc:
        text = exc.read(300).decode(errors="replace").strip()
        retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
        seconds = float(retry_after) if retry_after.strip().isdigit() else None
        return exc.code, f"HTTP {exc.code} {exc.reason}" + (f": {text}" if text else ""), seconds
    except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out, TLS
        reason = getattr(exc, "reason", exc)
        return None, f"{type(reason).__name__}: {reason}", None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a hop: a signed POST is never replayed elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def deliver(delivery_id: int) -> str:
    """One attempt at a delivery, if it is due; schedules the next one when worth retrying."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return "not due"
    if not settings.NOTIFY_WEBHOOK_SECRET:  # never send unsigned (the system check says so too)
        status, error, retry_after = None, "NOTIFY_WEBHOOK_SECRET is not set: not sending unsigned", None
        permanent = True
    else:
        status, error, retry_after = _post(delivery)
        permanent = status is not None and not (200 <= status < 300) and status < 500 \
            and status not in RETRYABLE_STATUS
    now = timezone.now()
    fields = {"last_status_code": status, "last_error": error[:2000]}
    if status is not None and 200 <= status < 300:
        fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now, last_error="")
        outcome = "delivered"
    elif permanent or delivery.attempts >= settings.NOTIFY_WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=WebhookDelivery.Status.FAILED)
        outcome = "failed"
        logger.error("webhook %s %s gave up after %d attempts: %s", delivery.event, delivery.delivery_id,
                     delivery.attempts, error)
    else:
        wait = backoff(delivery.attempts, retry_after)
        fields.update(next_attempt_at=now + timedelta(seconds=wait))
        outcome = f"retry in {wait:g} s"
        logger.warning("webhook %s %s attempt %d failed (%s); %s", delivery.event, delivery.delivery_id,
                       delivery.attempts, error, outcome)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    if outcome.startswith("retry"):
        _enqueue(delivery.pk, countdown=wait)
    return outcome


def sweep(*, keep_days: int = 30) -> int:
    """Re-enqueue due deliveries (their task was lost) and forget old delivered ones."""
    due = list(WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING,
                                              next_attempt_at__lte=timezone.now())
               .order_by("next_attempt_at").values_list("pk", flat=True)[:500])
    for pk in due:
        _enqueue(pk)
    WebhookDelivery.objects.filter(status=WebhookDelivery.Status.DELIVERED,
                                   delivered_at__lt=timezone.now() - timedelta(days=keep_days)).delete()
    return len(due)


def health() -> dict:
    """For the platform dashboard: what is waiting, what failed lately, the last error."""
    if not enabled() and not WebhookDelivery.objects.exists():
        return {"enabled": False}
    since = timezone.now() - timedelta(days=7)
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    failed = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.FAILED, created_at__gte=since)
    last = (WebhookDelivery.objects.exclude(last_error="").exclude(status=WebhookDelivery.Status.DELIVERED)
            .order_by("-next_attempt_at").values("event", "last_error", "attempts", "status").first())
    # Only the host: a receiver's URL often carries a token in its path.
    host = urlsplit(settings.NOTIFY_WEBHOOK_URL).netloc.rpartition("@")[2]
    return {"enabled": enabled(), "host": host, "pending": pending.count(),
            "failed": failed.count(), "last_problem": last}


@register()
def check_webhook_settings(app_configs=None, **kwargs):
    errors = []
    url = settings.NOTIFY_WEBHOOK_URL
    if url and not url.startswith(("http://", "https://")):
        errors.append(Error("NOTIFY_WEBHOOK_URL must start with http:// or https://.",
                            hint=f"It is {url!r}.", id="provisioning.E001"))
    if url and len(settings.NOTIFY_WEBHOOK_SECRET) < 16:
        errors.append(Error("NOTIFY_WEBHOOK_URL is set, so NOTIFY_WEBHOOK_SECRET must be too (16 characters or more).",
                            hint="Share it with the receiver, which checks X-Portal-Signature with it.",
                            id="provisioning.E002"))
    return errors
