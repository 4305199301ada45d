"""Reads behind the teams' "My products" page and the platform dashboard.

Every function issues a fixed number of queries whatever the number of products or jobs
(lists are limited or paginated, related rows are fetched in bulk), which tests assert.
"""
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Min, Prefetch
from django.utils import timezone

from onboarding import selectors as onboarding
from onboarding.models import ReviewEvent
from onboarding.services import policy_verdict
from provisioning.models import Job, Provisioning

DECISIONS = ("approved", "rejected", "changes_requested")


# --- My products --------------------------------------------------------------------------------
@dataclass
class Step:
    label: str
    at: datetime | None = None
    detail: str = ""
    state: str = "done"  # done, current, waiting, failed


@dataclass
class ProductView:
    product: object
    timeline: list[Step] = field(default_factory=list)
    next_step: str = ""
    next_url: str = ""
    job: Job | None = None
    provisioned: bool = False


def my_products(user):
    """The products of the user's teams, with their review events, jobs and provisioning state."""
    jobs = Job.objects.order_by("-created_at", "-id").only(
        "id", "product_id", "action", "status", "step", "created_at", "started_at", "finished_at", "error")
    return (onboarding.product_list().filter(team__memberships__user=user)
            .select_related("provisioning").order_by("-updated_at", "slug")
            .prefetch_related("review_events", Prefetch("jobs", queryset=jobs, to_attr="job_list")))


def product_view(product) -> ProductView:
    view = ProductView(product)
    events = list(product.review_events.all())
    state = getattr(product, "provisioning", None)  # a missing one-to-one raises an AttributeError
    view.provisioned = bool(state and state.provisioned)
    view.timeline.append(Step("Described", product.created_at, f"version {product.version} now"))
    submitted = next((e for e in reversed(events) if e.action == "submitted"), None)
    decided = next((e for e in reversed(events) if e.action in DECISIONS), None)
    if decided and submitted and decided.position < submitted.position:
        decided = None  # resubmitted since: that decision was about an earlier version
    if submitted:
        view.timeline.append(Step("Submitted", submitted.at, f"by {submitted.actor_name or submitted.actor}"))
    if decided:
        who = "the approval policy" if decided.by_policy else decided.actor_name or decided.actor
        view.timeline.append(Step(decided.get_action_display().capitalize(), decided.at, f"by {who}",
                                  "done" if decided.action == "approved" else "failed"))
    elif product.status == "submitted":
        view.timeline.append(Step("Decision", None, "waiting for the platform team", "current"))
    jobs = [j for j in product.job_list if j.action == Job.Action.APPLY]
    job = jobs[0] if jobs and (not decided or jobs[0].created_at >= decided.at - timedelta(seconds=1)) else None
    view.job = product.job_list[0] if product.job_list else None
    if job and product.status in ("approved", "deprecated", "retired"):
        view.timeline.append(Step("Provisioning queued", job.created_at, f"job #{job.pk}"))
        if job.started_at:
            view.timeline.append(Step("Provisioning started", job.started_at,
                                      f"step {job.step}" if job.is_active and job.step else ""))
        if job.status == Job.Status.FAILED:
            view.timeline.append(Step("Provisioning failed", job.finished_at, _first_line(job.error), "failed"))
        elif job.status == Job.Status.PLANNED:
            view.timeline.append(Step("Plan waits for confirmation", None, "by the platform team", "current"))
        elif job.is_active:
            view.timeline[-1].state = "current"
    if view.provisioned:
        view.timeline.append(Step("Provisioned", state.provisioned_at, f"template {state.template_version}"))
    view.next_step, view.next_url = _next_step(product, view, state)
    return view


def _next_step(product, view: ProductView, state) -> tuple[str, str]:
    slug, job = product.slug, view.job
    if product.status == "draft":
        return "Complete the WID and submit it for review.", f"/products/{slug}/"
    if product.status == "changes_requested":
        return "The platform asked for changes: read the review log, edit and submit again.", f"/products/{slug}/edit/"
    if product.status == "rejected":
        return "Rejected: read why in the review log; edit and submit again if it still makes sense.", \
            f"/products/{slug}/"
    if product.status == "submitted":
        return f"Waiting for the platform team: policy says it {policy_verdict(vars(product))[1]}.", ""
    if product.status == "retired":
        return "Decommissioned: nothing to do.", ""
    if job and job.status == Job.Status.PLANNED:
        return f"Job #{job.pk} waits for a platform member to confirm its plan.", f"/jobs/{job.pk}/"
    if job and job.is_active:
        return f"Provisioning: follow job #{job.pk} live.", f"/jobs/{job.pk}/"
    if product.status == "deprecated":
        return (f"Deprecated: it goes after its sunset ({product.sunset}); its readers were told.",
                f"/products/{slug}/")
    if state and state.drifted:
        return "Drift: the infrastructure was changed outside the portal; the platform repairs it.", f"/products/{slug}/"
    if view.provisioned:
        return "Ready: get your connection details and run your pipeline.", f"/products/{slug}/credentials/"
    if job and job.status == Job.Status.FAILED:
        return f"Provisioning failed (job #{job.pk}); the platform team retries it.", f"/jobs/{job.pk}/"
    if product.target not in settings.PROVISION_ON_APPROVAL_TARGETS:
        return f"Approved: the platform team provisions it on {product.target}.", ""
    return "Approved: provisioning starts in a moment.", f"/products/{slug}/"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0][:200] if lines else ""


# --- the platform dashboard ---------------------------------------------------------------------
# A product's documents (sections, contacts, outputs) are most of its row and none of the
# dashboard's: left unread, they are not decoded 200 times a request.
HEAVY = ("sections", "contacts", "data_custodian", "outputs", "depends_on", "source")
HEAVY_RELATED = tuple(f"product__{f}" for f in HEAVY)


def approval_queue(limit: int = 50):
    products = onboarding.product_list(status="submitted").defer(*HEAVY).order_by("submitted_at", "slug")
    return [(p, policy_verdict(vars(p))[1]) for p in products[:limit]], products.count()


def active_jobs(limit: int = 50):
    jobs = (Job.objects.filter(status__in=Job.ACTIVE).select_related("product", "product__team", "requested_by")
            .defer(*HEAVY_RELATED))
    return list(jobs.order_by("created_at")[:limit]), jobs.count()


def recent_failures(*, days: int = 7, limit: int = 50):
    since = timezone.now() - timedelta(days=days)
    jobs = (Job.objects.filter(status=Job.Status.FAILED, finished_at__gte=since)
            .select_related("product", "product__team").defer(*HEAVY_RELATED).order_by("-finished_at"))
    return [(j, _first_line(j.error)) for j in jobs[:limit]], jobs.count()


def drifted(limit: int = 50):
    states = (Provisioning.objects.filter(drifted=True, retired=False).select_related("product", "product__team")
              .defer(*HEAVY_RELATED))
    return list(states.order_by("product__slug")[:limit]), states.count()


def job_search(*, product: str = "", team: str = "", status: str = "", action: str = "",
               since=None, until=None):
    jobs = Job.objects.select_related("product", "product__team", "requested_by")
    if product:
        jobs = jobs.filter(product__slug__icontains=product.strip())
    if team:
        jobs = jobs.filter(product__team__slug=team)
    if status:
        jobs = jobs.filter(status=status)
    if action:
        jobs = jobs.filter(action=action)
    if since:
        jobs = jobs.filter(created_at__date__gte=since)
    if until:
        jobs = jobs.filter(created_at__date__lte=until)
    return jobs.order_by("-created_at", "-id")


@dataclass(frozen=True)
class WeekLeadTime:
    week: datetime
    decided: int
    decision_median: float | None
    decision_p90: float | None
    provisioned: int
    provisioned_median: float | None
    provisioned_p90: float | None


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value at or above the q-th share of the values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def lead_times(*, weeks: int = 12, now: datetime | None = None) -> list[WeekLeadTime]:
    """Per week of submission: submit -> decision and submit -> provisioned, in seconds."""
    now = now or timezone.now()
    key = f"dashboard:lead-times:{weeks}:{now:%Y%m%d%H%M}"
    cached = cache.get(key) if settings.DASHBOARD_CACHE_SECONDS else None
    if cached is not None:
        return cached
    start = (now - timedelta(weeks=weeks - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=start.weekday())
    events = (ReviewEvent.objects.filter(at__gte=start, action__in=("submitted", *DECISIONS))
              .order_by("product_id", "position").values_list("product_id", "action", "at"))
    provisioned = dict(Job.objects.filter(action=Job.Action.APPLY, status=Job.Status.SUCCEEDED, finished_at__gte=start)
                       .values("product_id").annotate(first=Min("finished_at")).values_list("product_id", "first"))
    decision, ready = defaultdict(list), defaultdict(list)
    submitted_at: dict[int, datetime] = {}
    for product_id, action, at in events:
        if action == "submitted":
            submitted_at[product_id] = at
            continue
        submit = submitted_at.pop(product_id, None)
        if submit is None:
            continue
        week = (submit - timedelta(days=submit.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        decision[week].append((at - submit).total_seconds())
        done = provisioned.get(product_id)
        if action == "approved" and done and done >= at:
            ready[week].append((done - submit).total_seconds())
    result = []
    for n in range(weeks):
        week = start + timedelta(weeks=n)
        d, r = decision.get(week, []), ready.get(week, [])
        result.append(WeekLeadTime(week, len(d), _percentile(d, 0.5), _percentile(d, 0.9),
                                   len(r), _percentile(r, 0.5), _percentile(r, 0.9)))
    if settings.DASHBOARD_CACHE_SECONDS:
        cache.set(key, result, settings.DASHBOARD_CACHE_SECONDS)
    return result


def lead_time_chart(weeks: list[WeekLeadTime]) -> dict:
    """Geometry of the lead-time chart: per week two bars (medians) and their 90th percentiles."""
    values = [v for w in weeks for v in (w.decision_p90, w.provisioned_p90) if v]
    top = max(values, default=0)
    unit, scale = ("minutes", 60) if top < 2 * 3600 else ("hours", 3600) if top < 72 * 3600 else ("days", 86400)
    ceiling = max(1, math.ceil(top / scale)) * scale
    height, bar, gap, left = 160, 14, 30, 48

    def y(value):
        return height - (value / ceiling) * height if value else height

    bars = []
    for i, w in enumerate(weeks):
        x = left + i * (2 * bar + gap)
        for n, (median, p90, kind) in enumerate(((w.decision_median, w.decision_p90, "decision"),
                                                  (w.provisioned_median, w.provisioned_p90, "provisioned"))):
            if median is None:
                continue
            bars.append({"x": x + n * bar, "y": y(median), "h": height - y(median), "p90": y(p90), "kind": kind,
                         "label": f"week of {w.week:%Y-%m-%d}: {kind} median {median / scale:.1f} {unit}, "
                                  f"90th percentile {p90 / scale:.1f} {unit}"})
    ticks = [{"y": y(ceiling * f), "label": f"{ceiling * f / scale:g}"} for f in (0.25, 0.5, 0.75, 1)]
    labels = [{"x": left + i * (2 * bar + gap) + bar, "text": f"{w.week:%d %b}"} for i, w in enumerate(weeks)]
    return {"bars": bars, "ticks": ticks, "labels": labels, "unit": unit, "scale": scale, "height": height,
            "width": left + len(weeks) * (2 * bar + gap), "left": left}
