"""Rendered fragments and API pages reused while the data under them is unchanged.

The busiest reads (the product list, the product API, the platform dashboard) spend most of their
time rendering rows, not querying. Each computes a *fingerprint* of its data with one or two
aggregate queries; the rendered result is cached (Django's cache: Redis) under that fingerprint,
so any change (a commit bumps a product's version, a job starts or finishes) makes a new key and
nobody sees stale rows. `PAGE_CACHE_SECONDS` bounds how long an entry lives; 0 turns it off.

Forms inside a cached fragment carry a placeholder for the CSRF token, replaced per request
(`with_csrf`): a token is tied to its user's secret and must never be served to someone else.
"""
from django.conf import settings
from django.db.models import Count, Max, Sum
from django.middleware.csrf import get_token

CSRF_PLACEHOLDER = "__portal_csrf_token_placeholder__"


def enabled() -> bool:
    return settings.PAGE_CACHE_SECONDS > 0


def product_fingerprint() -> str:
    """Changes with every commit of any WID (its version goes up) and with every product added
    or removed from the index."""
    from onboarding.models import Product

    row = Product.objects.aggregate(n=Count("id"), versions=Sum("version"), last=Max("updated_at"))
    return f"{row['n']}.{row['versions']}.{row['last'].timestamp() if row['last'] else 0}"


def job_fingerprint() -> str:
    """Changes when a job is created, starts, moves on a step or finishes, and when drift or a
    provisioning state changes (jobs refresh `heartbeat_at` on every step)."""
    from provisioning.models import Job, Provisioning

    jobs = Job.objects.aggregate(n=Count("id"), last=Max("id"), beat=Max("heartbeat_at"),
                                 finished=Max("finished_at"), started=Max("started_at"))
    states = Provisioning.objects.aggregate(n=Count("id"), checked=Max("drift_checked_at"),
                                            provisioned=Max("provisioned_at"))
    stamp = [jobs["n"], jobs["last"], jobs["beat"], jobs["finished"], jobs["started"], states["n"],
             states["checked"], states["provisioned"]]
    return ".".join(str(v.timestamp()) if hasattr(v, "timestamp") else str(v) for v in stamp)


def csrf_context() -> dict:
    """Context for a template whose cached fragments hold forms: see `with_csrf`."""
    return {"csrf_token": CSRF_PLACEHOLDER}


def with_csrf(request, response):
    """Put this request's CSRF token where the placeholder is (cached or freshly rendered)."""
    if CSRF_PLACEHOLDER.encode() in response.content:
        response.content = response.content.replace(CSRF_PLACEHOLDER.encode(), get_token(request).encode())
    return response
