"""The outgoing webhook: submit, decisions, a product's life, finished jobs and drift, POSTed as signed JSON.

Each event becomes a `Delivery` row of the outbox (portal/work/deliveries.py) in the transaction
that records the change, and a task on the worker delivers it once that transaction commits. A
receiver that is down, slow, answering 5xx, 408 or 429, or answering something that is not HTTP is
tried again with exponential back-off, at most NOTIFY_WEBHOOK_MAX_ATTEMPTS times; the reconciler
sends again any due delivery whose task was lost. Any other answer outside 2xx is permanent.

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
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register
from django.dispatch import receiver
from django.utils import timezone

from onboarding import selectors as wid_selectors
from onboarding import signals as wid_signals
from portal.work import deliveries
from portal.work.models import Delivery
from provisioning import signals

logger = logging.getLogger(__name__)

EVENTS = ("wid.submitted", "wid.approved", "wid.rejected", "wid.changes_requested", "wid.retired",
          "wid.deprecated", "wid.suspended", "wid.resumed", "job.finished", "product.drifted")
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


def body_of(delivery: Delivery) -> bytes:
    """The exact bytes POSTed (and signed): the same on every attempt."""
    document = {"id": str(delivery.delivery_id), "event": delivery.event,
                "occurred_at": delivery.created_at.isoformat(), "data": delivery.payload}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# --- Recording events ------------------------------------------------------------------------

def enabled() -> bool:
    return bool(settings.NOTIFY_WEBHOOK_URL)


def record(event: str, data: dict) -> Delivery | None:
    """Write the event's delivery row in the current transaction; deliver once it commits."""
    if not enabled():
        return None
    assert event in EVENTS, event
    return deliveries.record(Delivery.Channel.WEBHOOK, event, data, url=settings.NOTIFY_WEBHOOK_URL)


def _product(product) -> dict:
    return {"slug": product.slug, "name": product.name, "domain": product.domain, "team": product.team.slug,
            "status": product.status, "version": product.version, "classification": product.classification,
            "suspended": product.suspended, "sunset": product.sunset.isoformat() if product.sunset else None,
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


def _life(slug: str, actor: str | None, comment: str, **extra) -> dict:
    """A product-life event: the product, who and why, and the teams whose products read it (each
    with those products), so that a receiver can tell each consuming team."""
    product = wid_selectors.product_get(slug)
    consumers: dict[str, list[str]] = {}
    for consumer in wid_selectors.product_dependants(slug):
        consumers.setdefault(consumer.team.slug, []).append(consumer.slug)
    return {"product": _product(product), "actor": actor, "by_policy": False, "comment": comment, **extra,
            "consumers": [{"team": team, "products": products} for team, products in sorted(consumers.items())]}


@receiver(wid_signals.wid_deprecated, dispatch_uid="webhook-wid-deprecated")
def _deprecated(sender, slug, actor, comment, sunset, **kwargs):
    record("wid.deprecated", _life(slug, actor, comment, sunset=sunset.isoformat()))


@receiver(wid_signals.wid_suspended, dispatch_uid="webhook-wid-suspended")
def _suspended(sender, slug, actor, comment, **kwargs):
    record("wid.suspended", _life(slug, actor, comment))


@receiver(wid_signals.wid_resumed, dispatch_uid="webhook-wid-resumed")
def _resumed(sender, slug, actor, comment, **kwargs):
    record("wid.resumed", _life(slug, actor, comment))


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

def _post(delivery: Delivery) -> deliveries.Attempt:
    """One signed POST; never signs or sends without a secret (the system check says so too)."""
    if not settings.NOTIFY_WEBHOOK_SECRET:
        return deliveries.Attempt(False, "NOTIFY_WEBHOOK_SECRET is not set: not sending unsigned", permanent=True)
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
            return deliveries.Attempt(True, status_code=response.status)
    except urllib.error.HTTPError as exc:
        text = exc.read(300).decode(errors="replace").strip()
        retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
        seconds = float(retry_after) if retry_after.strip().isdigit() else None
        permanent = exc.code < 500 and exc.code not in RETRYABLE_STATUS
        return deliveries.Attempt(False, f"HTTP {exc.code} {exc.reason}" + (f": {text}" if text else ""),
                                  status_code=exc.code, permanent=permanent, retry_after=seconds)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        # Refused, unreachable, timed out, TLS, or an answer that is not HTTP: worth another try.
        reason = getattr(exc, "reason", exc)
        return deliveries.Attempt(False, f"{type(reason).__name__}: {reason}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a hop: a signed POST is never replayed elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


deliveries.CHANNELS[Delivery.Channel.WEBHOOK] = deliveries.Channel(
    send=_post, max_attempts=lambda: settings.NOTIFY_WEBHOOK_MAX_ATTEMPTS,
    retry_base=lambda: settings.NOTIFY_WEBHOOK_RETRY_BASE)


def backoff(attempt: int, retry_after: float | None = None) -> float:
    return deliveries.backoff(attempt, base=settings.NOTIFY_WEBHOOK_RETRY_BASE, retry_after=retry_after)


def health() -> dict:
    """For the platform dashboard: what is waiting, what failed lately, the last error."""
    webhook = Delivery.objects.filter(channel=Delivery.Channel.WEBHOOK)
    if not enabled() and not webhook.exists():
        return {"enabled": False}
    since = timezone.now() - timedelta(days=7)
    pending = webhook.filter(status=Delivery.Status.PENDING)
    failed = webhook.filter(status=Delivery.Status.FAILED, created_at__gte=since)
    last = (webhook.exclude(last_error="").exclude(status=Delivery.Status.DELIVERED)
            .order_by("-available_at").values("event", "last_error", "attempts", "status").first())
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
