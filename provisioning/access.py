"""Access to products' data: grants through `depends_on`, requests by products and people, the
custodian's consent, credentials, rotation, and the access report.

What a product may read is decided here and handed to Terraform as data (`reads`, `readers` in the
product's tfvars), so every grant is a resource in a Terraform state: planned, drift-checked,
repaired, revoked by the next apply. A dependency on a non-sensitive producer is granted as soon as
both are provisioned; on a confidential, restricted or PII producer only once its owning team (and,
for personal data, its custodian) approved the request. Every request, decision, grant, revocation
and credentials read is an `AccessEvent`; the requests and decisions also go into the producer's
review log in git, through `log_access_events` (an outbox: written with the change, committed to
git after it, retried by beat).
"""
import logging
from datetime import date, datetime, time, timedelta, timezone

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone as dj_timezone

from onboarding import selectors as onboarding
from portal.errors import Conflict, InvalidInput, NotAllowed, NotFound
from portal.work import deliveries, dispatch
from provisioning.models import AccessEvent, AccessRequest, CredentialRead, Job, Provisioning

logger = logging.getLogger(__name__)

SENSITIVE_CLASSIFICATIONS = ("confidential", "restricted")
PURPOSE_MAX_LENGTH = 2000
CUSTODIAN_SALT = "provisioning.access.custodian"
# Events that the producer's review log in git records too (as access_<kind>).
LOGGED_IN_GIT = {AccessEvent.Kind.REQUESTED: "access_requested", AccessEvent.Kind.APPROVED: "access_approved",
                 AccessEvent.Kind.REJECTED: "access_rejected", AccessEvent.Kind.REVOKED: "access_revoked",
                 AccessEvent.Kind.EXPIRED: "access_revoked"}


def is_sensitive(product) -> bool:
    return product.classification in SENSITIVE_CLASSIFICATIONS or product.pii


def _provisioned(product) -> bool:
    return Provisioning.objects.filter(product=product, provisioned=True, retired=False).exists()


# --- what Terraform is given -------------------------------------------------------------------
def dependency_states(consumer, depends_on: list[str]) -> list[dict]:
    """Each producer `consumer` reads and where its grant stands: `granted` (in the next apply),
    `pending` (the producer is not provisioned yet), `awaiting_approval` or `rejected` (sensitive),
    `other_target` (a grant never crosses platforms) or `retired`."""
    from onboarding.models import Product

    producers = {p.slug: p for p in Product.objects.filter(slug__in=depends_on).select_related("team")}
    provisioned = set(Provisioning.objects.filter(product__slug__in=depends_on, provisioned=True, retired=False)
                      .values_list("product__slug", flat=True))
    requests = {r.product.slug: r for r in AccessRequest.objects.filter(
        consumer=consumer, kind=AccessRequest.Kind.PRODUCT, product__slug__in=depends_on).select_related("product")
        .order_by("created_at", "id")}  # the latest request per producer wins
    states = []
    for slug in depends_on:
        producer = producers.get(slug)
        if producer is None or producer.status == "retired":
            states.append({"product": slug, "state": "retired"})
            continue
        if producer.target != consumer.target:
            # A grant lives in one platform: a product on another target is read through its exports.
            states.append({"product": slug, "state": "other_target", "request": None})
            continue
        request = requests.get(slug)
        if is_sensitive(producer) and not (request and request.status == AccessRequest.Status.APPROVED):
            state = "rejected" if request and request.status == AccessRequest.Status.REJECTED else "awaiting_approval"
        elif slug not in provisioned:
            state = "pending"
        else:
            state = "granted"
        states.append({"product": slug, "state": state, "request": request.pk if request else None})
    return states


def granted_reads(consumer, depends_on: list[str]) -> list[str]:
    return sorted(s["product"] for s in dependency_states(consumer, depends_on) if s["state"] == "granted")


def personal_readers(product) -> list[dict]:
    """Approved personal requests still in their dates: each a login role of its own."""
    today = dj_timezone.now().date()
    return [{"name": r.role_name, "valid_until": _end_of(r.until).strftime("%Y-%m-%dT%H:%M:%SZ")}
            for r in AccessRequest.objects.filter(product=product, kind=AccessRequest.Kind.PERSON,
                                                  status=AccessRequest.Status.APPROVED, until__gte=today)
            .order_by("id")]


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=timezone.utc)


def apply_access(product, reason: str) -> None:
    """Apply `product` so that its access is what it must be now: its grants, its readers, its suspension
    (after the current transaction; only a provisioned, live product: the first apply renders it all)."""
    from provisioning.services import is_live, request_apply

    # A provisioned product's target is reachable by this installation (it was applied here).
    if is_live(product) and _provisioned(product):
        request_apply(product=product, origin=Job.Origin.ACCESS, reason=reason)


# --- events and the git review log -------------------------------------------------------------
def _event(product, kind: str, *, subject_kind: str, subject: str, actor: str = "", detail: str = "",
           request: AccessRequest | None = None) -> AccessEvent:
    event = AccessEvent.objects.create(product=product, kind=kind, subject_kind=subject_kind, subject=subject,
                                       actor=actor, detail=detail[:4000], request=request,
                                       git_pending=kind in LOGGED_IN_GIT)
    if event.git_pending:
        dispatch.after_commit("provisioning.tasks.log_access_events")
    return event


def log_access_events() -> int:
    """Write the access events git has not got yet into their producers' review logs, one commit each
    by its actor, in order. A failure leaves the rest pending for the next call (beat retries)."""
    from onboarding import services as onboarding_services

    written = 0
    for event in AccessEvent.objects.filter(git_pending=True).select_related("product").order_by("at", "id"):
        try:
            onboarding_services.wid_log_access(slug=event.product.slug, entries=[_git_entry(event)])
        except Exception:
            logger.exception("could not write access event %s of %s to git; retried later", event.pk,
                             event.product.slug)
            break  # keep the order: the later ones wait too
        AccessEvent.objects.filter(pk=event.pk).update(git_pending=False)
        written += 1
    return written


def _git_entry(event: AccessEvent) -> dict:
    """A review log entry: a user by username; the custodian (an e-mail address, which may hold
    characters a username never does) as `custodian`, with the address as the name."""
    actor, name = event.actor, event.actor_name or event.actor
    if "@" in actor:
        actor, name = "custodian", f"data custodian {event.actor}"
    return {"action": LOGGED_IN_GIT[event.kind], "actor": actor, "actor_name": name, "at": event.at,
            "comment": event.git_comment()}


# --- requests ----------------------------------------------------------------------------------
def _owners_emails(product) -> list[str]:
    from onboarding.models import Membership

    return sorted({m.user.email for m in Membership.objects.filter(team=product.team, role=Membership.Role.OWNER)
                   .select_related("user") if m.user.email})


def _mail(event: str, recipients: list[str], subject: str, template: str, context: dict) -> None:
    recipients = sorted({r for r in recipients if r})
    if recipients:
        deliveries.record_email(event, recipients=recipients, subject=subject,
                                body=render_to_string(template, {**context, "base_url": settings.PORTAL_BASE_URL}))


def custodian_token(request: AccessRequest) -> str:
    """A signed link's token for the producer's custodian: names the request and its custodian
    e-mail; single use (a decided request refuses it), valid CUSTODIAN_LINK_DAYS."""
    return signing.dumps({"request": request.pk, "email": request.custodian_email}, salt=CUSTODIAN_SALT)


def _ask(request: AccessRequest) -> None:
    """E-mail the producer's owners (and, once they approved, its custodian) that a decision waits."""
    product = request.product
    context = {"request": request, "product": product}
    if not request.owner_decision:
        _mail("access.requested", _owners_emails(product), f"[{product.slug}] access requested by {request.subject}",
              "provisioning/email/access_requested.txt", context)
    elif request.needs_custodian and not request.custodian_decision:
        _mail("access.custodian", [request.custodian_email],
              f"[{product.slug}] your consent is asked: access by {request.subject} to personal data",
              "provisioning/email/access_custodian.txt",
              {**context, "link": f"{settings.PORTAL_BASE_URL}/access/custodian/{custodian_token(request)}/",
               "days": settings.CUSTODIAN_LINK_DAYS})


def on_consumer_approved(consumer, actor) -> None:
    """A product's approved version reads what it reads now: sensitive producers are asked, requests
    for producers it no longer reads are revoked. Called in the approval's transaction."""
    depends_on = set(consumer.depends_on)
    for request in AccessRequest.objects.filter(consumer=consumer, kind=AccessRequest.Kind.PRODUCT,
                                                status__in=AccessRequest.OPEN).select_related("product"):
        if request.product.slug not in depends_on:
            _end(request, AccessRequest.Status.REVOKED, actor=actor.username if actor else "",
                 detail=f"{consumer.slug} no longer depends on {request.product.slug}")
    from onboarding.models import Product

    for producer in Product.objects.filter(slug__in=depends_on).select_related("team"):
        if not is_sensitive(producer) or AccessRequest.objects.filter(
                product=producer, consumer=consumer, status__in=AccessRequest.OPEN).exists():
            continue
        purpose = (f"{consumer.slug} ({consumer.team.slug}) depends on {producer.slug} in its approved version "
                   f"{consumer.version}.")
        request = AccessRequest.objects.create(
            product=producer, kind=AccessRequest.Kind.PRODUCT, consumer=consumer, purpose=purpose,
            needs_custodian=producer.pii, custodian_email=producer.data_custodian.get("email", ""))
        _event(producer, AccessEvent.Kind.REQUESTED, subject_kind="product", subject=consumer.slug,
               actor=actor.username if actor else "", detail=purpose, request=request)
        _ask(request)


def request_personal(*, user, product, purpose: str, until) -> AccessRequest:
    from onboarding.services import _clean_comment

    errors = {}
    if onboarding.user_is_member(user, product.team):
        raise InvalidInput.on("product", f"You are in {product.team.slug!r}, which owns {product.slug}: "
                                         "read its credentials instead of asking for access.")
    try:
        purpose = _clean_comment(purpose, required=True)
    except InvalidInput:
        errors["purpose"] = ["Say what you need the data for: the owners decide on it."]
    if len(purpose or "") > PURPOSE_MAX_LENGTH:
        errors["purpose"] = [f"At most {PURPOSE_MAX_LENGTH} characters."]
    today = dj_timezone.now().date()
    if until is None:
        errors["until"] = ["Give the last day you need access (YYYY-MM-DD)."]
    elif until < today:
        errors["until"] = ["This date has passed: give a day from today on."]
    elif until > today + timedelta(days=settings.ACCESS_MAX_DAYS):
        errors["until"] = [f"At most {settings.ACCESS_MAX_DAYS} days ahead ({today + timedelta(days=settings.ACCESS_MAX_DAYS)})."]
    if errors:
        raise InvalidInput(errors=errors)
    from provisioning.services import is_live

    if not is_live(product):
        raise Conflict(f"{product.slug} is {product.get_status_display()}: access is asked of an approved product.")
    try:
        with transaction.atomic():
            request = AccessRequest.objects.create(
                product=product, kind=AccessRequest.Kind.PERSON, requester=user, purpose=purpose, until=until,
                needs_custodian=product.pii, custodian_email=product.data_custodian.get("email", ""))
    except IntegrityError:
        raise Conflict(f"You already have an open request for {product.slug}.") from None
    _event(product, AccessEvent.Kind.REQUESTED, subject_kind="person", subject=user.username, actor=user.username,
           detail=f"{purpose} (until {until})", request=request)
    _ask(request)
    return request


def request_get(request_id: int) -> AccessRequest:
    try:
        return AccessRequest.objects.select_related("product", "product__team", "consumer", "requester").get(
            pk=request_id)
    except AccessRequest.DoesNotExist:
        raise NotFound(f"No access request {request_id}.") from None


def user_may_decide(user, request: AccessRequest) -> bool:
    return onboarding.user_is_owner(user, request.product.team)


def decide(*, user, request_id: int, approve: bool, comment: str) -> AccessRequest:
    """The producer's owners decide; a personal-data producer's custodian decides after them."""
    from onboarding.services import _clean_comment

    comment = _clean_comment(comment, required=not approve)
    with transaction.atomic():
        request = AccessRequest.objects.select_for_update().get(pk=request_get(request_id).pk)
        request = request_get(request.pk)
        if not user_may_decide(user, request):
            raise NotAllowed(f"Only the owners of {request.product.team.slug!r} decide on access to {request.product.slug}.")
        if request.requester_id == user.pk:
            raise NotAllowed("You asked for this access: another owner decides.")
        if request.status != AccessRequest.Status.PENDING or request.owner_decision:
            raise Conflict(f"Access request #{request.pk} is already decided ({request.status}).")
        request.owner_decision = "approved" if approve else "rejected"
        request.owner_decided_by, request.owner_decided_at, request.owner_comment = user, dj_timezone.now(), comment
        request.save()
        return _after_decision(request, actor=user.username, comment=comment, approve=approve)


def custodian_request(token: str) -> AccessRequest:
    """The request a custodian's link names, if the link is genuine, unexpired and still unused."""
    try:
        data = signing.loads(token, salt=CUSTODIAN_SALT, max_age=timedelta(days=settings.CUSTODIAN_LINK_DAYS))
    except signing.SignatureExpired:
        raise Conflict("This link has expired: ask the product's owners to send it again.") from None
    except signing.BadSignature:
        raise NotFound("This link is not valid.") from None
    request = request_get(int(data["request"]))
    if data.get("email") != request.custodian_email:
        raise NotFound("This link is not valid.")
    if request.custodian_decision or request.status != AccessRequest.Status.PENDING or not request.owner_decision:
        raise Conflict("This link has been used: the request is already decided.")
    return request


def custodian_decide(*, token: str, approve: bool, comment: str) -> AccessRequest:
    from onboarding.services import _clean_comment

    comment = _clean_comment(comment, required=not approve)
    with transaction.atomic():
        request = custodian_request(token)
        request = AccessRequest.objects.select_for_update().get(pk=request.pk)
        if request.custodian_decision:  # the single use, under the row lock
            raise Conflict("This link has been used: the request is already decided.")
        request.custodian_decision = "approved" if approve else "rejected"
        request.custodian_decided_at, request.custodian_comment = dj_timezone.now(), comment
        request.save()
        request = request_get(request.pk)
        return _after_decision(request, actor=request.custodian_email, comment=comment, approve=approve,
                               as_custodian=True)


def _after_decision(request: AccessRequest, *, actor: str, comment: str, approve: bool,
                    as_custodian: bool = False) -> AccessRequest:
    who = "the data custodian" if as_custodian else "the owners"
    subject_kind = "product" if request.kind == AccessRequest.Kind.PRODUCT else "person"
    if not approve:
        request.status, request.decided_at = AccessRequest.Status.REJECTED, dj_timezone.now()
        request.save(update_fields=["status", "decided_at"])
        _event(request.product, AccessEvent.Kind.REJECTED, subject_kind=subject_kind, subject=request.subject,
               actor=actor, detail=f"rejected by {who}" + (f": {comment}" if comment else ""), request=request)
        _tell_requester(request)
        return request
    if request.needs_custodian and not request.custodian_decision:
        _event(request.product, AccessEvent.Kind.APPROVED, subject_kind=subject_kind, subject=request.subject,
               actor=actor, detail="approved by the owners; the data custodian decides next"
               + (f": {comment}" if comment else ""), request=request)
        _ask(request)
        return request
    request.status, request.decided_at = AccessRequest.Status.APPROVED, dj_timezone.now()
    request.save(update_fields=["status", "decided_at"])
    _event(request.product, AccessEvent.Kind.APPROVED, subject_kind=subject_kind, subject=request.subject,
           actor=actor, detail=f"approved by {who}" + (f": {comment}" if comment else ""), request=request)
    _tell_requester(request)
    if request.kind == AccessRequest.Kind.PRODUCT:
        apply_access(request.consumer, f"access to {request.product.slug} approved")
    else:
        apply_access(request.product, f"access for {request.requester.username} approved")
    return request


def _tell_requester(request: AccessRequest) -> None:
    if request.kind == AccessRequest.Kind.PERSON:
        recipients = [request.requester.email]
    else:
        recipients = [request.consumer.contacts["technical"]["email"]]
    _mail(f"access.{request.status}", recipients, f"[{request.product.slug}] your access request is {request.status}",
          "provisioning/email/access_decided.txt", {"request": request, "product": request.product})


def _end(request: AccessRequest, status: str, *, actor: str, detail: str) -> None:
    was_approved = request.status == AccessRequest.Status.APPROVED
    request.status, request.ended_at = status, dj_timezone.now()
    request.save(update_fields=["status", "ended_at"])
    kind = AccessEvent.Kind.EXPIRED if status == AccessRequest.Status.EXPIRED else AccessEvent.Kind.REVOKED
    _event(request.product, kind, subject_kind="product" if request.kind == AccessRequest.Kind.PRODUCT else "person",
           subject=request.subject, actor=actor, detail=detail, request=request)
    if was_approved:
        target = request.consumer if request.kind == AccessRequest.Kind.PRODUCT else request.product
        apply_access(target, f"access of {request.subject} to {request.product.slug} ended")


def revoke(*, user, request_id: int, comment: str = "") -> AccessRequest:
    from onboarding.services import _clean_comment

    comment = _clean_comment(comment, required=False)
    with transaction.atomic():
        request = AccessRequest.objects.select_for_update().get(pk=request_get(request_id).pk)
        request = request_get(request.pk)
        if not (user_may_decide(user, request) or onboarding.user_is_platform(user)
                or request.requester_id == user.pk):
            raise NotAllowed(f"Only the owners of {request.product.team.slug!r}, the platform or the requester "
                             "revoke this access.")
        if request.status not in AccessRequest.OPEN:
            raise Conflict(f"Access request #{request.pk} is {request.status}: nothing to revoke.")
        _end(request, AccessRequest.Status.REVOKED, actor=user.username,
             detail=f"revoked by {user.username}" + (f": {comment}" if comment else ""))
        return request


def expire_sweep() -> int:
    """Beat: personal access past its date ends (the login role goes with the producer's next apply;
    PostgreSQL's VALID UNTIL refused it already)."""
    ended = 0
    today = dj_timezone.now().date()
    for request in AccessRequest.objects.filter(kind=AccessRequest.Kind.PERSON, status__in=AccessRequest.OPEN,
                                                until__lt=today).select_related("product", "requester"):
        with transaction.atomic():
            _end(request, AccessRequest.Status.EXPIRED, actor="", detail=f"its date ({request.until}) passed")
        ended += 1
    return ended


# --- grants seen by Terraform ------------------------------------------------------------------
def record_applied(product, *, before: dict, after: dict) -> None:
    """Events for the grants an apply of `product` made or removed (its `reads` and readers outputs)."""
    from onboarding.models import Product

    old, new = set((before or {}).get("reads") or {}), set((after or {}).get("reads") or {})
    producers = {p.slug: p for p in Product.objects.filter(slug__in=old | new)}
    for slug in sorted(new - old):
        if slug in producers:
            _event(producers[slug], AccessEvent.Kind.GRANTED, subject_kind="product", subject=product.slug,
                   detail=f"{product.slug}'s role may read {slug}'s published ports")
    for slug in sorted(old - new):
        if slug in producers:
            _event(producers[slug], AccessEvent.Kind.REVOKED, subject_kind="product", subject=product.slug,
                   detail=f"{product.slug}'s grant removed by its apply")
    old_readers, new_readers = set((before or {}).get("readers") or []), set((after or {}).get("readers") or [])
    requests = {r.role_name: r for r in AccessRequest.objects.filter(product=product, kind=AccessRequest.Kind.PERSON)
                .select_related("requester")}
    for name in sorted(new_readers - old_readers):
        if name in requests:
            _event(product, AccessEvent.Kind.GRANTED, subject_kind="person", subject=requests[name].requester.username,
                   detail=f"login {name} valid until {requests[name].until}", request=requests[name])
    for name in sorted(old_readers - new_readers):
        if name in requests:
            _event(product, AccessEvent.Kind.REVOKED, subject_kind="person", subject=requests[name].requester.username,
                   detail=f"login {name} removed", request=requests[name])


def after_provisioned(product, *, retired: bool) -> None:
    """A producer provisioned for the first time, or retired: its consumers' grants follow by themselves."""
    for consumer in onboarding.product_dependants(product.slug):
        apply_access(consumer, f"{product.slug} {'retired' if retired else 'provisioned'}")
    if retired:
        for request in AccessRequest.objects.filter(product=product, status__in=AccessRequest.OPEN):
            _end(request, AccessRequest.Status.REVOKED, actor="", detail=f"{product.slug} retired")


# --- credentials -------------------------------------------------------------------------------
def _needs_reason(product) -> bool:
    return product.classification == "restricted" or product.pii


def credentials(*, user, product, reason: str = "", remote_addr: str | None = None) -> dict:
    """The product's login for its team; a person's own login for an approved request; the
    platform's break-glass read with a reason. Restricted and PII products need a reason from
    everyone, recorded and e-mailed to the owning team and the custodian. Every read is audited."""
    from onboarding.services import _clean_comment
    from provisioning import terraform
    from provisioning.services import state_conn_str

    member = onboarding.user_is_member(user, product.team)
    platform = onboarding.user_is_platform(user)
    personal = None
    if not member:
        personal = AccessRequest.objects.filter(product=product, kind=AccessRequest.Kind.PERSON, requester=user,
                                                status=AccessRequest.Status.APPROVED,
                                                until__gte=dj_timezone.now().date()).first()
    if not (member or platform or personal):
        raise NotAllowed("Only the product's team, a person with approved access, or the platform (with a reason) "
                         "read its credentials.")
    break_glass = not member and not personal
    try:
        reason = _clean_comment(reason, required=False)
    except InvalidInput as exc:
        raise InvalidInput.on("reason", exc.errors["comment"][0]) from None
    if (break_glass or _needs_reason(product)) and not reason.strip():
        why = ("this is a break-glass read by the platform" if break_glass
               else f"{product.slug} holds {'personal' if product.pii else 'restricted'} data")
        raise InvalidInput.on("reason", f"Give a reason (?reason=...): {why}; it is recorded and sent to the "
                                        "owning team and the data custodian.")
    if not _provisioned(product):
        raise Conflict(f"{product.slug} is not provisioned.")
    state = terraform.read_state(state_conn_str(), workspace=product.slug)
    values = {name: o.get("value") for name, o in (state.outputs if state else {}).items()}
    if personal is not None:
        role, password = personal.role_name, (values.get("reader_passwords") or {}).get(personal.role_name)
        if password is None:
            raise Conflict("Your login is being created (the product's apply has not finished): try again shortly.")
        kind = CredentialRead.Kind.PERSONAL
    else:
        role, password = values.get("storage_role"), values.get("storage_password")
        kind = CredentialRead.Kind.BREAK_GLASS if break_glass else CredentialRead.Kind.PRODUCT
    CredentialRead.objects.create(product=product, user=user, remote_addr=remote_addr, kind=kind, role=role or "",
                                  reason=reason)
    _event(product, AccessEvent.Kind.CREDENTIALS_READ, subject_kind="person", subject=user.username,
           actor=user.username, detail=f"{CredentialRead.Kind(kind).label}: {role}" + (f"; reason: {reason}" if reason else ""))
    if reason:
        _mail("credentials.read", [*_team_emails(product), product.data_custodian.get("email", "")],
              f"[{product.slug}] credentials read by {user.username}", "provisioning/email/credentials_read.txt",
              {"product": product, "user": user, "reason": reason, "kind": CredentialRead.Kind(kind).label,
               "role": role})
    schema = values.get("published_schema") if personal is not None else values.get("storage_schema")
    return {
        "host": values.get("warehouse_host"), "port": values.get("warehouse_port"),
        "database": values.get("warehouse_database"), "user": role, "password": password, "schema": schema,
        "published_schema": values.get("published_schema"),
        "lake_path": values.get("lake_path") if personal is None else None,
        "kind": kind, "valid_until": str(personal.until) if personal is not None else None,
    }


def _team_emails(product) -> list[str]:
    from onboarding.models import Membership

    return [m.user.email for m in Membership.objects.filter(team=product.team).select_related("user") if m.user.email]


def rotate(*, user, product) -> Job | None:
    """A new password for the product's login through a Terraform apply; the old one is refused after it."""
    from provisioning.services import is_live, request_apply

    if not (onboarding.user_is_member(user, product.team) or onboarding.user_is_platform(user)):
        raise NotAllowed("Only the product's team and the platform rotate its credentials.")
    if not is_live(product) or not _provisioned(product):
        raise Conflict(f"{product.slug} is not provisioned: there is no password to rotate.")
    with transaction.atomic():
        state = Provisioning.objects.select_for_update().get(product=product)
        state.password_generation += 1
        state.save(update_fields=["password_generation"])
        _event(product, AccessEvent.Kind.ROTATED, subject_kind="product", subject=product.slug, actor=user.username,
               detail=f"password generation {state.password_generation}")
        return request_apply(product=product, origin=Job.Origin.ROTATION, reason=f"rotation by {user.username}")


# --- reports -----------------------------------------------------------------------------------
def readers_now(product) -> dict:
    """Who can read `product` now: products whose applied state holds the grant, people with a login."""
    products = []
    for state in Provisioning.objects.filter(provisioned=True, retired=False).select_related("product", "product__team"):
        if product.slug in (state.outputs.get("reads") or {}):
            products.append({"product": state.product.slug, "team": state.product.team.slug,
                             "since": _granted_since(product, state.product.slug)})
    people = [{"username": r.requester.username, "role": r.role_name, "until": r.until, "request": r.pk}
              for r in AccessRequest.objects.filter(product=product, kind=AccessRequest.Kind.PERSON,
                                                    status=AccessRequest.Status.APPROVED,
                                                    until__gte=dj_timezone.now().date()).select_related("requester")]
    return {"products": sorted(products, key=lambda p: p["product"]), "people": people}


def _granted_since(product, consumer_slug: str):
    event = AccessEvent.objects.filter(product=product, kind=AccessEvent.Kind.GRANTED, subject=consumer_slug,
                                       subject_kind="product").order_by("-at").first()
    return event.at if event else None


def events(*, product=None, team: str = "", kind: str = "", subject: str = "", since=None, until=None):
    qs = AccessEvent.objects.select_related("product", "product__team")
    if product is not None:
        qs = qs.filter(product=product)
    if team:
        qs = qs.filter(product__team__slug=team)
    if kind:
        qs = qs.filter(kind=kind)
    if subject:
        qs = qs.filter(Q(subject=subject) | Q(actor=subject))
    if since:
        qs = qs.filter(at__date__gte=since)
    if until:
        qs = qs.filter(at__date__lte=until)
    return qs


def user_may_see_report(user, product) -> bool:
    return onboarding.user_is_platform(user) or onboarding.user_is_member(user, product.team)
