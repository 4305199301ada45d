"""Pages of provisioning: the product's provisioning panel, the job page with its live log, and
access: a product's ports and access, the platform's access report, the custodian's link."""
import csv

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from onboarding import selectors as onboarding
from portal import pagecache
from portal.errors import InvalidInput, NotAllowed, NotFound, PortalError, or_404
from portal.work import kernel
from provisioning import access, archives, dashboards, health, ports, selectors, services, triggers, usage, webhooks
from provisioning.forms import AccessFilterForm, DashboardForm, JobFilterForm
from provisioning.models import AccessEvent, AccessRequest, Archive, CredentialRead, Job, Provisioning, Run


def product_panel(request, product) -> str:
    """The provisioning part of a product's page (listed in settings.PRODUCT_PAGE_PANELS)."""
    jobs = list(Job.objects.filter(product=product).select_related("requested_by")[:10])
    state = Provisioning.objects.filter(product=product).first()
    user = request.user
    return render_to_string("provisioning/product_panel.html", {
        "product": product, "jobs": jobs, "state": state,
        "usage": usage.port_usage(product, user=user) if state and (state.provisioned or state.retired) else None,
        "usage_every": settings.USAGE_SAMPLE_SECONDS,
        "active": next((j for j in jobs if j.is_active), None),
        "can_plan": services.user_can_start(user, product, Job.Action.PLAN),
        "can_apply": services.user_can_start(user, product, Job.Action.APPLY),
        "can_read_credentials": services.user_can_read_credentials(user, product),
        "health": health.report(product) if state and state.provisioned and not state.retired else None,
    }, request=request)


def runs_panel(request, product) -> str:
    """The runs part of a product's page: what starts its runs, and its latest runs with what started
    each (listed in settings.PRODUCT_PAGE_PANELS)."""
    latest = list(Run.objects.filter(product=product).select_related("requested_by")[:10])
    if not latest and not Provisioning.objects.filter(product=product, provisioned=True).exists():
        return ""  # nothing to run yet
    stopped = triggers.chains_stopped(latest)
    for run in latest:
        run.chain_stopped_at = stopped.get(run.wave)
    return render_to_string("provisioning/runs_panel.html", {
        "product": product, "runs": latest, "triggers": triggers.summary(product),
        "quiet_seconds": f"{settings.RUN_QUIET_SECONDS:g}",
    }, request=request)


@login_required
def job_detail(request, job_id):
    job = or_404(services.job_get, job_id)
    return render(request, "provisioning/job_detail.html", {
        "job": job, "lines": services.job_log(job, limit=5000),
        "archive": archives.describe(Archive.objects.filter(job=job).first()),
        "is_platform": onboarding.user_is_platform(request.user),
    })


@login_required
@require_POST
def job_start(request, slug):
    product = or_404(onboarding.product_get, slug)
    action = request.POST.get("action", "")
    options = {"archive": "no_archive" not in request.POST, "force": "force" in request.POST,
               "destroy_reason": request.POST.get("reason", "")} if action == Job.Action.DESTROY else {}
    job = _act(request, lambda: services.job_start(user=request.user, product=product, action=action, **options))
    return redirect("job-detail", job_id=job.pk) if job else redirect("product-detail", slug=slug)


_JOB_ACTIONS = {"confirm": services.job_confirm, "cancel": services.job_cancel, "retry": services.job_retry}


@login_required
@require_POST
def job_action(request, job_id, action):
    if action not in _JOB_ACTIONS:
        raise Http404("No such action.")
    job = or_404(services.job_get, job_id)
    result = _act(request, lambda: _JOB_ACTIONS[action](user=request.user, job=job))
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        if result:
            messages.success(request, f"Job #{result.pk} is {result.status}.")
        return redirect(back)
    return redirect("job-detail", job_id=result.pk if result else job.pk)


@login_required
def credentials(request, slug):
    """Restricted and PII products (and the platform's break-glass read) need a reason: asked for by
    a form that comes back here with ?reason=, since the service records it with the read."""
    product = or_404(onboarding.product_get, slug)
    reason = request.GET.get("reason", "")
    try:
        values = services.credentials_read(user=request.user, product=product, reason=reason,
                                           remote_addr=request.META.get("REMOTE_ADDR"))
    except InvalidInput as exc:
        if "reason" not in exc.errors:
            _show_error(request, exc)
            return redirect("product-detail", slug=slug)
        response = render(request, "provisioning/credentials.html", {
            "product": product, "reason_needed": exc.errors["reason"], "reason": reason,
        }, status=400 if reason else 200)
    except PortalError as exc:
        _show_error(request, exc)
        return redirect("product-detail", slug=slug)
    else:
        response = render(request, "provisioning/credentials.html", {
            "product": product, "values": values, "kind": CredentialRead.Kind(values["kind"]).label,
            "shown": [(name, values[name]) for name in CREDENTIAL_FIELDS if values.get(name) is not None],
        })
    response["Cache-Control"] = "no-store"
    return response


CREDENTIAL_FIELDS = ("host", "port", "database", "user", "password", "schema", "published_schema", "lake_path")


def _show_error(request, exc: PortalError) -> None:
    """A refusal on a page: 403 and 404 pages, anything else a message naming the fields."""
    if isinstance(exc, NotAllowed):
        raise PermissionDenied(exc.detail) from exc
    if isinstance(exc, NotFound):
        raise Http404(exc.detail) from exc
    if exc.errors:
        if not isinstance(exc, InvalidInput):  # a conflict's detail says what stands in the way
            messages.error(request, exc.detail)
        for name, errors in exc.errors.items():
            for error in errors:
                messages.error(request, f"{name.replace('_', ' ').capitalize()}: {error}")
    else:
        messages.error(request, exc.detail)


def _act(request, call):
    """Call a service for a form's post; its refusal becomes a message (or a 403/404 page). None then."""
    try:
        return call()
    except PortalError as exc:
        _show_error(request, exc)
        return None


# --- Ports and access of a product ----------------------------------------------------------------
class AccessRequestForm(forms.Form):
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), strip=False,
                              help_text="What you need the data for: the owners decide on it.")
    until = forms.DateField(label="Until", widget=forms.DateInput(attrs={"type": "date"}),
                            help_text=f"The last day you need access (at most {settings.ACCESS_MAX_DAYS} days ahead).")


@login_required
def product_access(request, slug):
    """The product's ports for anyone signed in, with their own request or a form to ask; who reads it,
    every request and every event for its team and the platform."""
    product = or_404(onboarding.product_get, slug)
    user = request.user
    report = access.user_may_see_report(user, product)
    member = onboarding.user_is_member(user, product.team)
    platform = onboarding.user_is_platform(user)
    requests = list(ports.requests_seen_by(user, product)[:200])
    mine = ports.open_request_of(user, product) if not member else None
    state = Provisioning.objects.filter(product=product).first()
    provisioned = bool(state and state.provisioned and not state.retired)
    return render(request, "provisioning/access.html", {
        "product": product, "ports": ports.product_ports(product), "report": report,
        "readers": access.readers_now(product) if report else None,
        "events": access.events(product=product)[:200] if report else (),
        "requests": [{"r": r, "can_decide": _may_decide(user, r), "can_revoke": _may_revoke(user, r, platform)}
                     for r in requests],
        "mine": mine, "live": services.is_live(product), "provisioned": provisioned,
        "can_ask": not member and mine is None and services.is_live(product),
        "can_rotate": (member or platform) and provisioned,
        "form": AccessRequestForm(),
    })


def _may_decide(user, request: AccessRequest) -> bool:
    return (request.status == AccessRequest.Status.PENDING and not request.owner_decision
            and request.requester_id != user.pk and access.user_may_decide(user, request))


def _may_revoke(user, request: AccessRequest, platform: bool) -> bool:
    return request.status in AccessRequest.OPEN and (
        platform or request.requester_id == user.pk or access.user_may_decide(user, request))


@login_required
@require_POST
def access_request_create(request, slug):
    product = or_404(onboarding.product_get, slug)
    form = AccessRequestForm(request.POST)
    if not form.is_valid():
        _show_error(request, InvalidInput(errors={name: list(errors) for name, errors in form.errors.items()}))
        return redirect("product-access", slug=slug)
    made = _act(request, lambda: access.request_personal(user=request.user, product=product,
                                                           purpose=form.cleaned_data["purpose"],
                                                           until=form.cleaned_data["until"]))
    if made:
        messages.success(request, f"Access request #{made.pk} sent to the owners of {product.team.slug}.")
    return redirect("product-access", slug=slug)


_DECISIONS = {
    "approve": lambda user, pk, comment: access.decide(user=user, request_id=pk, approve=True, comment=comment),
    "reject": lambda user, pk, comment: access.decide(user=user, request_id=pk, approve=False, comment=comment),
    "revoke": lambda user, pk, comment: access.revoke(user=user, request_id=pk, comment=comment),
}


@login_required
@require_POST
def access_request_action(request, request_id, action):
    if action not in _DECISIONS:
        raise Http404("No such action.")
    made = or_404(access.request_get, request_id)
    done = _act(request, lambda: _DECISIONS[action](request.user, made.pk, request.POST.get("comment", "")))
    if done:
        messages.success(request, f"Access request #{done.pk} is {done.status}"
                                  + (" (the data custodian decides next)." if done.status == "pending" else "."))
    return redirect("product-access", slug=made.product.slug)


@login_required
@require_POST
def credentials_rotate(request, slug):
    product = or_404(onboarding.product_get, slug)
    try:
        job = access.rotate(user=request.user, product=product)
    except PortalError as exc:
        _show_error(request, exc)
    else:
        messages.success(request, f"Rotating in job #{job.pk}; the old password is refused after it." if job else
                         "Rotating right after the product's active job; the old password is refused after it.")
    return redirect("product-access", slug=slug)


# --- The platform's access report -----------------------------------------------------------------
CSV_COLUMNS = ("at", "product", "team", "kind", "subject_kind", "subject", "actor", "detail", "request")
# A spreadsheet reads a cell that begins with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value):
        return value


def _csv_rows(events):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for e in events.iterator(chunk_size=2000):
        yield writer.writerow([csv_cell(v) for v in (
            e.at.isoformat(), e.product.slug, e.product.team.slug, e.kind, e.subject_kind, e.subject, e.actor,
            e.detail, e.request_id)])


@login_required
def access_report(request):
    """Every access event of the platform, filtered; the same filter as CSV with ?format=csv."""
    if not onboarding.user_is_platform(request.user):
        raise PermissionDenied("The platform-wide access report is the platform team's.")
    form = AccessFilterForm(request.GET or None, teams=onboarding.team_list())
    events = AccessEvent.objects.none()
    if form.is_valid() or not request.GET:
        try:
            events = ports.filtered_events(form.params() if form.is_bound else {})
        except NotFound:
            form.add_error("product", "No product with this slug.")
        except InvalidInput as exc:
            for name, errors in exc.errors.items():
                for error in errors:
                    form.add_error(name if name in form.fields else None, error)
    valid = not form.errors
    if valid and request.GET.get("format") == "csv":
        response = StreamingHttpResponse(_csv_rows(events), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="access-report.csv"'
        return response
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("format", None)
    return render(request, "provisioning/access_report.html", {
        "form": form, "page": page, "query": query.urlencode(),
    }, status=200 if valid else 400)


# --- The data custodian's link --------------------------------------------------------------------
class CustodianForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="Required to reject: the requester and the owners read it.")


@require_http_methods(["GET", "POST"])
def custodian(request, token):
    """No login: the custodian is an e-mail address, not a user; the signed link is the credential.
    A GET never decides, since mail scanners open links; only the form's POST does."""
    try:
        made = access.custodian_request(token)
    except PortalError as exc:
        return _custodian_page(request, {"refusal": exc.detail}, status=exc.status_code)
    form = CustodianForm(request.POST if request.method == "POST" else None)
    status = 200
    if form.is_bound:
        status = 400
        if form.is_valid():
            try:
                made = access.custodian_decide(token=token, approve=form.cleaned_data["decision"] == "approve",
                                               comment=form.cleaned_data["comment"])
            except InvalidInput as exc:
                for name, errors in exc.errors.items():
                    for error in errors:
                        form.add_error(name if name in form.fields else None, error)
            except PortalError as exc:
                return _custodian_page(request, {"refusal": exc.detail}, status=exc.status_code)
            else:
                decided = "approved" if form.cleaned_data["decision"] == "approve" else "rejected"
                return _custodian_page(request, {"asked": made, "decided": decided})
    return _custodian_page(request, {"asked": made, "form": form}, status=status)


def _custodian_page(request, context: dict, status: int = 200):
    response = render(request, "provisioning/custodian.html", context, status=status)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"  # the link's token must not leave in a Referer
    return response


# --- My products, the platform dashboard, the jobs list -------------------------------------------
@login_required
def my_products(request):
    page = Paginator(dashboards.my_products(request.user), 25).get_page(request.GET.get("page"))
    return render(request, "provisioning/my_products.html", {
        "page": page, "views": [dashboards.product_view(p) for p in page],
        "in_a_team": bool(onboarding.user_team_roles(request.user)),
    })


@login_required
def dashboard(request):
    if not onboarding.user_is_platform(request.user):
        raise PermissionDenied("The dashboard is the platform team's.")
    form = DashboardForm(request.GET or None)
    days = form.cleaned_data["days"] if form.is_valid() and form.cleaned_data.get("days") else 7

    def sections() -> dict:
        queue, queue_count = dashboards.approval_queue()
        active, active_count = dashboards.active_jobs()
        failures, failure_count = dashboards.recent_failures(days=days)
        drifted, drift_count = dashboards.drifted()
        unused = selectors.unused_products()
        due = selectors.due_for_destroy()
        weeks = dashboards.lead_times()
        return {"queue": queue, "queue_count": queue_count, "active": active, "active_count": active_count,
                "failures": failures, "failure_count": failure_count, "drifted": drifted, "drift_count": drift_count,
                "due": due[:50], "due_count": len(due),
                "unused": unused[:50], "unused_count": len(unused), "unused_days": settings.UNUSED_AFTER_DAYS,
                "weeks": weeks, "chart": dashboards.lead_time_chart(weeks)}

    # The sections are computed only when rendered, not when they come from the page cache; they are
    # the same for every platform member, and their forms get each one's CSRF token (pagecache).
    cache_key = [pagecache.product_fingerprint(), pagecache.job_fingerprint(), usage.fingerprint(),
                 request.GET.urlencode()] if pagecache.enabled() else None
    response = render(request, "provisioning/dashboard.html", {
        "form": form, "days": days, "d": SimpleLazyObject(sections), "webhook": webhooks.health(),
        "work": kernel.health(), "attention": health.needs_attention(),
        "here": request.get_full_path(), "cache_key": cache_key, "cache_seconds": settings.PAGE_CACHE_SECONDS,
        **pagecache.csrf_context(),
    })
    return pagecache.with_csrf(request, response)


@login_required
def job_list(request):
    form = JobFilterForm(request.GET or None, teams=onboarding.team_list())
    filters = {k: v for k, v in form.cleaned_data.items() if v} if form.is_valid() else {}
    status = 200 if form.is_valid() or not request.GET else 400
    page = Paginator(dashboards.job_search(**filters), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "provisioning/job_list.html", {
        "form": form, "page": page, "query": query.urlencode(), "here": request.get_full_path(),
        "is_platform": onboarding.user_is_platform(request.user),
    }, status=status)
