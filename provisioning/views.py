"""Pages of provisioning: the product's provisioning panel, the job page with its live log."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from onboarding import selectors as onboarding
from portal import pagecache
from portal.errors import NotAllowed, NotFound, PortalError, or_404
from portal.work import kernel
from provisioning import dashboards, services, webhooks
from provisioning.forms import DashboardForm, JobFilterForm
from provisioning.models import Job, Provisioning


def product_panel(request, product) -> str:
    """The provisioning part of a product's page (listed in settings.PRODUCT_PAGE_PANELS)."""
    jobs = list(Job.objects.filter(product=product).select_related("requested_by")[:10])
    state = Provisioning.objects.filter(product=product).first()
    user = request.user
    return render_to_string("provisioning/product_panel.html", {
        "product": product, "jobs": jobs, "state": state,
        "active": next((j for j in jobs if j.is_active), None),
        "can_plan": services.user_can_start(user, product, Job.Action.PLAN),
        "can_apply": services.user_can_start(user, product, Job.Action.APPLY),
        "can_read_credentials": services.user_can_read_credentials(user, product),
    }, request=request)


@login_required
def job_detail(request, job_id):
    job = or_404(services.job_get, job_id)
    return render(request, "provisioning/job_detail.html", {
        "job": job, "lines": services.job_log(job, limit=5000),
        "is_platform": onboarding.user_is_platform(request.user),
    })


def _run(request, call, fallback):
    try:
        return call()
    except NotAllowed as exc:
        raise PermissionDenied(exc.detail) from exc
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    except PortalError as exc:
        messages.error(request, exc.detail)
        return fallback


@login_required
@require_POST
def job_start(request, slug):
    product = or_404(onboarding.product_get, slug)
    job = _run(request, lambda: services.job_start(user=request.user, product=product,
                                                   action=request.POST.get("action", "")), None)
    return redirect("job-detail", job_id=job.pk) if job else redirect("product-detail", slug=slug)


_JOB_ACTIONS = {"confirm": services.job_confirm, "cancel": services.job_cancel, "retry": services.job_retry}


@login_required
@require_POST
def job_action(request, job_id, action):
    if action not in _JOB_ACTIONS:
        raise Http404("No such action.")
    job = or_404(services.job_get, job_id)
    result = _run(request, lambda: _JOB_ACTIONS[action](user=request.user, job=job), None)
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        if result:
            messages.success(request, f"Job #{result.pk} is {result.status}.")
        return redirect(back)
    return redirect("job-detail", job_id=result.pk if result else job.pk)


@login_required
def credentials(request, slug):
    product = or_404(onboarding.product_get, slug)
    values = _run(request, lambda: services.credentials_read(user=request.user, product=product,
                                                               remote_addr=request.META.get("REMOTE_ADDR")), None)
    if values is None:
        return redirect("product-detail", slug=slug)
    response = render(request, "provisioning/credentials.html", {"product": product, "values": values})
    response["Cache-Control"] = "no-store"
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
        weeks = dashboards.lead_times()
        return {"queue": queue, "queue_count": queue_count, "active": active, "active_count": active_count,
                "failures": failures, "failure_count": failure_count, "drifted": drifted, "drift_count": drift_count,
                "weeks": weeks, "chart": dashboards.lead_time_chart(weeks)}

    # The sections are computed only when rendered, not when they come from the page cache; they are
    # the same for every platform member, and their forms get each one's CSRF token (pagecache).
    cache_key = [pagecache.product_fingerprint(), pagecache.job_fingerprint(), request.GET.urlencode()] \
        if pagecache.enabled() else None
    response = render(request, "provisioning/dashboard.html", {
        "form": form, "days": days, "d": SimpleLazyObject(sections), "webhook": webhooks.health(),
        "work": kernel.health(),
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
