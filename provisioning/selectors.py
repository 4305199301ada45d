"""Reads of provisioning for other parts of the portal (the WID site, the dashboards)."""
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from provisioning import archives, health
from provisioning.models import Archive, Job, PortRead, Provisioning
from provisioning.services import REDACTED


def status_summaries() -> dict[int, dict]:
    """{product id: what the public WID site may show of its infrastructure}: no secrets."""
    summaries = {}
    for state in Provisioning.objects.select_related("last_job"):
        last = state.last_job
        summaries[state.product_id] = {
            "provisioned": state.provisioned, "retired": state.retired,
            "provisioned_at": state.provisioned_at, "template_version": state.template_version,
            "drifted": state.drifted, "drift_checked_at": state.drift_checked_at,
            "outputs": {k: v for k, v in sorted(state.outputs.items()) if v != REDACTED},
            "last_job": {"id": last.pk, "action": last.action, "status": last.status,
                         "finished_at": last.finished_at} if last else None,
        }
    for product_id, summary in health.summaries().items():
        if product_id in summaries:
            summaries[product_id]["health"] = summary
    active = Job.objects.filter(status__in=Job.ACTIVE).values_list("product_id", "id", "action", "status")
    for product_id, job_id, action, status in active:
        summaries.setdefault(product_id, {"provisioned": False, "retired": False, "outputs": {}, "last_job": None})
        summaries[product_id]["active_job"] = {"id": job_id, "action": action, "status": status}
    return summaries


def usage_summaries() -> dict[int, dict[str, dict]]:
    """{product id: {port: {products, runs, people, last_read}}} for the public WID site: the readers'
    products and runs with the day they last read, people only counted, never named."""
    summaries: dict[int, dict[str, dict]] = defaultdict(dict)
    for row in PortRead.objects.filter(reads__gt=0).order_by("product_id", "port", "reader_kind", "reader"):
        port = summaries[row.product_id].setdefault(row.port, {"products": [], "runs": [], "people": 0,
                                                               "last_read": None})
        day = row.last_read_at.date()
        if row.reader_kind == PortRead.ReaderKind.PERSON:
            port["people"] += 1
        else:
            port["products" if row.reader_kind == PortRead.ReaderKind.PRODUCT else "runs"].append((row.reader, day))
        port["last_read"] = max(filter(None, (port["last_read"], day)))
    return dict(summaries)


def unused_products(days: int | None = None, *, now: datetime | None = None) -> list[dict]:
    """Retirement candidates: provisioned products with a table or feed port (in the index) first
    provisioned at least `days` (UNUSED_AFTER_DAYS) ago that nobody read, nor tried to read, since.
    A refused read counts as a try: someone still wants the data. Oldest last read first, never first."""
    days = settings.UNUSED_AFTER_DAYS if days is None else days
    since = (now or timezone.now()) - timedelta(days=days)
    first_apply = (Job.objects.filter(product=OuterRef("product"), action=Job.Action.APPLY,
                                      status=Job.Status.SUCCEEDED).order_by("finished_at").values("finished_at")[:1])
    last_read = (PortRead.objects.filter(product=OuterRef("product"), last_read_at__isnull=False)
                 .order_by("-last_read_at").values("last_read_at")[:1])
    last_try = (PortRead.objects.filter(product=OuterRef("product"), last_failed_at__isnull=False)
                .order_by("-last_failed_at").values("last_failed_at")[:1])
    measurable = Q(product__outputs__contains=[{"kind": "table"}]) | Q(product__outputs__contains=[{"kind": "feed"}])
    states = (Provisioning.objects.filter(measurable, provisioned=True, retired=False)
              .annotate(first_provisioned=Subquery(first_apply), last_read=Subquery(last_read),
                        last_try=Subquery(last_try))
              .filter(first_provisioned__lte=since)
              .filter(Q(last_read__isnull=True) | Q(last_read__lt=since))
              .filter(Q(last_try__isnull=True) | Q(last_try__lt=since))
              .select_related("product", "product__team")
              .only("product__slug", "product__name", "product__team__slug", "product__status")
              .order_by(F("last_read").asc(nulls_first=True), "product__slug"))
    return [{"slug": s.product.slug, "name": s.product.name, "team": s.product.team.slug,
             "status": s.product.status, "first_provisioned": s.first_provisioned, "last_read_at": s.last_read}
            for s in states]


def due_for_destroy(*, today=None) -> list[dict]:
    """Deprecated products whose sunset date has come, still provisioned: the platform destroys them
    (suspended by the portal at the sunset, docs/adr/0024), each with the live products that still
    depend on it (its destroy answers 409 with them, unless forced). Oldest sunset first."""
    from provisioning.services import live_dependants

    today = today or timezone.localdate()
    states = (Provisioning.objects.filter(provisioned=True, retired=False, product__status="deprecated",
                                          product__sunset__lte=today)
              .select_related("product", "product__team").order_by("product__sunset", "product__slug"))
    return [{"slug": s.product.slug, "name": s.product.name, "team": s.product.team.slug,
             "sunset": s.product.sunset, "suspended": s.product.suspended, "dependants": live_dependants(s.product)}
            for s in states]


def archive_summary(product) -> dict | None:
    """What a retired product's tombstone says of its destroy: when, by whom, whether forced and why,
    which live products depended on it then, and where its archive is until when (`archive`: the
    newest one still kept, None when there is none; `archives`: every one, a destroy that needed a
    retry may have two). None when the product was never destroyed."""
    job = (Job.objects.filter(product=product, action=Job.Action.DESTROY, status=Job.Status.SUCCEEDED)
           .select_related("requested_by", "confirmed_by").order_by("-finished_at", "-id").first())
    if job is None:
        return None
    kept = [archives.describe(a) for a in Archive.objects.filter(product=product).order_by("-created_at", "-id")]
    return {
        "job": job.pk, "destroyed_at": job.finished_at,
        "requested_by": job.requested_by.username if job.requested_by else None,
        "confirmed_by": job.confirmed_by.username if job.confirmed_by else None,
        "force": job.force, "reason": job.destroy_reason, "dependants": list(job.dependants),
        "archived": job.archive,
        "archive": next((a for a in kept if a["deleted_at"] is None), None),
        "archives": kept,
    }
