"""Server-rendered pages. They work without JavaScript and call the same services as the API."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.functional import SimpleLazyObject
from django.utils.module_loading import import_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from onboarding import selectors, services, widfile
from onboarding.forms import CommentForm, DeprecateForm, MemberForm, TeamForm, WidForm
from onboarding.models import Team
from onboarding.templatetags.wid import wid_markdown
from onboarding.validation import next_run
from portal import pagecache
from portal.errors import Conflict, InvalidInput, NotAllowed, NotFound, PortalError, or_404


def _raise_for_page(exc: PortalError):
    if isinstance(exc, NotAllowed):
        raise PermissionDenied(exc.detail) from exc
    if isinstance(exc, NotFound):
        raise Http404(exc.detail) from exc


@login_required
def home(request):
    return redirect("product-list")


@login_required
def product_list(request):
    filters = {k: request.GET.get(k) or None for k in ("team", "domain", "status")}
    if request.GET.get("mine"):
        products = selectors.product_list(**filters).filter(team__memberships__user=request.user)
    else:
        products = selectors.product_list(**filters)
    # Only what the rows show: the sections and contacts of 50 WIDs are most of their bytes.
    products = products.only("slug", "name", "domain", "status", "version", "updated_at", "team__slug")
    # Evaluated only when the rows are rendered, not when they come from the page cache.
    page = SimpleLazyObject(lambda: Paginator(products, 50).get_page(request.GET.get("page")))
    cache_key = None
    if pagecache.enabled():
        mine = request.user.pk if request.GET.get("mine") else ""
        cache_key = [pagecache.product_fingerprint(), mine, request.GET.urlencode()]
    return render(request, "onboarding/product_list.html", {
        "page": page, "filters": filters, "mine": bool(request.GET.get("mine")),
        "statuses": widfile.STATUSES, "teams": selectors.team_list(), "cache_key": cache_key,
        "cache_seconds": settings.PAGE_CACHE_SECONDS,
    })


def _render_form(request, form, *, product=None, preview=False, status=200):
    previews = {}
    if preview and form.is_bound:
        previews = {key: wid_markdown(form.data.get(f"section_{key}", "")) for key, _ in widfile.SECTIONS}
    sections = [(form[f"section_{key}"], previews.get(key)) for key, _ in widfile.SECTIONS]
    return render(request, "onboarding/product_form.html", {
        "form": form, "product": product, "sections": sections, "preview": preview,
    }, status=status)


def _user_teams(user):
    return Team.objects.filter(memberships__user=user).order_by("slug")


def _refuse_other_teams(request, teams) -> None:
    """Writing a product for an existing team one is not in is not allowed (403, as in the API)."""
    slug = request.POST.get("team", "")
    if slug and not teams.filter(slug=slug).exists() and Team.objects.filter(slug=slug).exists():
        raise PermissionDenied(f"Only members of {slug!r} write its products.")


@login_required
def product_create(request):
    teams = _user_teams(request.user)
    if request.method != "POST":
        initial = {"target": "local", "classification": "internal", "compute_tier": "small"}
        if request.GET.get("team"):
            initial["team"] = request.GET["team"]
        return _render_form(request, WidForm(teams=teams, initial=initial))
    form = WidForm(request.POST, teams=teams)
    if "preview" in request.POST:
        form.is_valid()
        return _render_form(request, form, preview=True)
    _refuse_other_teams(request, teams)
    return _save_form(
        request, form, lambda data: services.wid_create(user=request.user, data=data),
        saved=lambda product: f"Draft {product.slug} saved as version {product.version}.",
    )


def _save_form(request, form, save, *, saved, product=None):
    """Hand the form's input to a service; on a refusal, show the form again with its errors."""
    if form.is_valid():
        try:
            result = save(form.to_input())
        except InvalidInput as exc:
            form.add_service_errors(exc.errors)
        except PortalError as exc:
            _raise_for_page(exc)
            form.add_error(None, exc.detail)
        else:
            messages.success(request, saved(result))
            return redirect("product-detail", slug=result.slug)
    else:
        form.check_with_service_rules()  # every problem in one round, not the form's first
    return _render_form(request, form, product=product, status=409 if form.non_field_errors() else 400)


@login_required
def product_edit(request, slug):
    product = or_404(selectors.product_get, slug)
    if not selectors.user_can_edit_product(request.user, product):
        raise PermissionDenied("Only the product's team edits it.")
    teams = _user_teams(request.user)
    if request.method != "POST":
        data = {**{f: getattr(product, f) for f in ("slug", "name", "domain", "target", "classification", "pii",
                                                    "compute_tier", "contacts", "data_custodian", "depends_on",
                                                    "outputs", "ingestion", "source", "schedule", "triggers",
                                                    "sections")}, "team": product.team.slug}
        return _render_form(request, WidForm(teams=teams, editing=True, initial=WidForm.initial_from(data, product.version)),
                            product=product)
    form = WidForm(request.POST, teams=teams, editing=True,
                   initial={"slug": product.slug, "domain": product.domain})
    if "preview" in request.POST:
        form.is_valid()
        return _render_form(request, form, product=product, preview=True)
    _refuse_other_teams(request, teams)
    return _save_form(
        request, form,
        lambda data: services.wid_update(user=request.user, slug=slug,
                                         data={**data, "version": form.cleaned_data.get("version")}),
        saved=_saved_message, product=product,
    )


def _saved_message(product) -> str:
    if product.approved_version is not None and product.status != "approved":
        return (f"Saved version {product.version}: an amendment in {product.get_status_display().lower()}; "
                f"version {product.approved_version} stays live until the amendment is approved.")
    return f"Saved version {product.version}."


def _amendment(product) -> tuple[str, tuple[bool, str]]:
    """The page's "Live: version N; amendment in <status>" line, and the policy's verdict on the
    WID as it stands (an amendment is judged against its approved version)."""
    meta = {"classification": product.classification, "pii": product.pii, "compute_tier": product.compute_tier,
            "depends_on": list(product.depends_on)}
    if product.approved_version is None or product.status == "retired":
        return "", services.policy_verdict(meta)
    live = f"Live: version {product.approved_version}"
    if product.status not in services.AMENDMENT_STATUSES:
        return live, services.policy_verdict(meta)
    line = f"{live}; amendment in {product.get_status_display().lower()}"
    approved = selectors.approved_document(product).meta
    return line, services.amendment_verdict(approved, meta, selectors.product_risks(meta["depends_on"]))


@login_required
def product_detail(request, slug):
    product = or_404(selectors.product_get, slug)
    history = selectors.product_history(product)
    diff, diff_error = None, None
    if request.GET.get("from") and request.GET.get("to"):
        try:
            diff = selectors.product_diff(product, from_version=int(request.GET["from"]), to_version=int(request.GET["to"]))
        except (ValueError, InvalidInput, NotFound) as exc:
            diff_error = getattr(exc, "errors", None) or str(exc)
    live, policy = _amendment(product)
    notices = selectors.product_notices([product.slug, *product.depends_on])
    is_platform = selectors.user_is_platform(request.user)
    can_edit = selectors.user_can_edit_product(request.user, product)
    return render(request, "onboarding/product_detail.html", {
        "product": product, "live": live, "amendment_open": product.status in services.AMENDMENT_STATUSES
        and product.approved_version is not None,
        "sections": [(title, product.sections.get(key, "")) for key, title in widfile.SECTIONS],
        "reviews": product.review_events.all(),
        "history": history,
        "diff": diff, "diff_error": diff_error,
        "diff_from": request.GET.get("from") or (history[1].number if len(history) > 1 else 1),
        "diff_to": request.GET.get("to") or (history[0].number if history else 1),
        "can_edit": can_edit, "is_platform": is_platform,
        "notice": notices.get(product.slug),
        "upstream_notices": [notices[s] for s in product.depends_on if s in notices],
        "next_run": None if product.status == "retired" or product.suspended else next_run(product.schedule),
        "can_deprecate": product.status == "approved" and (can_edit or is_platform),
        "can_suspend": is_platform and product.approved_version is not None and product.status != "retired",
        "decide_refusal": selectors.user_may_decide(request.user, product) if product.status == "submitted" else None,
        "comment_form": CommentForm(),
        "panels": [mark_safe(import_string(path)(request, product)) for path in settings.PRODUCT_PAGE_PANELS],
        "policy": policy,
    })


_ACTIONS = {
    "submit": services.wid_submit,
    "withdraw": services.wid_withdraw,
    "approve": services.wid_approve,
    "reject": services.wid_reject,
    "request-changes": services.wid_request_changes,
    "deprecate": services.wid_deprecate,
    "suspend": services.wid_suspend,
    "resume": services.wid_resume,
}
_DONE = {
    "deprecate": lambda p: f"{p.slug} is deprecated: its sunset is {p.sunset:%Y-%m-%d}, and its readers are told.",
    "suspend": lambda p: f"{p.slug} is suspended: access to its data is switched off, the data kept.",
    "resume": lambda p: f"{p.slug} is resumed: access to its data is back.",
}


@login_required
@require_POST
def product_action(request, slug, action):
    if action not in _ACTIONS:
        raise Http404("No such action.")
    form = (DeprecateForm if action == "deprecate" else CommentForm)(request.POST)
    form.is_valid()
    extra = {"sunset": form.cleaned_data.get("sunset", "")} if action == "deprecate" else {}
    try:
        product = _ACTIONS[action](user=request.user, slug=slug, comment=form.cleaned_data.get("comment", ""), **extra)
    except InvalidInput as exc:
        for messages_ in exc.errors.values():
            for message in messages_:
                messages.error(request, message)
    except (Conflict, PortalError) as exc:
        _raise_for_page(exc)
        messages.error(request, exc.detail)
    else:
        messages.success(request, _DONE[action](product) if action in _DONE
                         else f"{product.slug} is now {product.get_status_display()}.")
    return redirect("product-detail", slug=slug)


@login_required
def team_list(request):
    form = TeamForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(user=request.user, **form.cleaned_data)
        except InvalidInput as exc:
            for field, errors in exc.errors.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, f"Team {team.slug} created; you are its owner.")
            return redirect("team-detail", slug=team.slug)
    if request.method == "POST":
        status = 400
    teams = selectors.team_list()
    return render(request, "onboarding/team_list.html", {
        "teams": teams, "form": form, "my_roles": selectors.user_team_roles(request.user),
    }, status=status)


@login_required
def team_detail(request, slug):
    team = or_404(selectors.team_get, slug)
    can_manage = selectors.user_can_manage_team(request.user, team)
    form = MemberForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("Only the team's owners manage its members.")
        if form.is_valid():
            try:
                services.team_member_add(actor=request.user, team=team, **form.cleaned_data)
            except InvalidInput as exc:
                for field, errors in exc.errors.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
            except PortalError as exc:
                _raise_for_page(exc)
                form.add_error(None, exc.detail)
            else:
                messages.success(request, f"{form.cleaned_data['username']} is now {form.cleaned_data['role']}.")
                return redirect("team-detail", slug=slug)
        status = 400
    return render(request, "onboarding/team_detail.html", {
        "team": team, "memberships": selectors.team_memberships(team), "form": form, "can_manage": can_manage,
        "products": selectors.product_list(team=team.slug),
    }, status=status)


@login_required
@require_POST
def team_member_remove(request, slug, username):
    try:
        team = selectors.team_get(slug)
        services.team_member_remove(actor=request.user, team=team, username=username)
    except PortalError as exc:
        _raise_for_page(exc)
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{username} left {slug}.")
    return redirect("team-detail", slug=slug)
