"""Output ports: where each output of a product is published, and who reads it."""
from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError

from onboarding import selectors as onboarding
from onboarding.validation import refuse_control_characters
from portal.errors import InvalidInput
from provisioning import access
from provisioning.models import AccessEvent, AccessRequest
from provisioning.rendering import published_schema


def location(slug: str, output: dict) -> dict | None:
    if output["kind"] == "table":
        return {"schema": published_schema(slug), "table": output["name"]}
    if output["kind"] == "feed":
        return {"path": f"{settings.LAKE_ROOT / slug / 'curated' / output['name']}/"}
    return None


def product_ports(product) -> list[dict]:
    from provisioning.services import live_meta

    consumers = []
    for consumer in onboarding.product_dependants(product.slug):
        state = access.dependency_states(consumer, [product.slug])[0]
        consumers.append({"kind": "product", "product": consumer.slug, "team": consumer.team.slug,
                          "state": state["state"]})
    for request in AccessRequest.objects.filter(product=product, kind=AccessRequest.Kind.PERSON,
                                                status__in=AccessRequest.OPEN).select_related("requester"):
        consumers.append({"kind": "person", "username": request.requester.username, "state": request.status,
                          "until": str(request.until)})
    readable = {"table", "feed"}
    return [{"name": o["name"], "kind": o["kind"], "location": location(product.slug, o),
             "consumers": consumers if o["kind"] in readable else []}
            for o in live_meta(product)["outputs"]]


def _date(params, name: str) -> date | None:
    value = params.get(name, "")
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput.on(name, "A date as YYYY-MM-DD.") from None


def filtered_events(params):
    """The platform-wide access events, filtered by the query's product, team, kind, subject and dates."""
    for name in ("product", "team", "kind", "subject"):
        try:
            refuse_control_characters(params.get(name, ""))
        except DjangoValidationError as exc:
            raise InvalidInput.on(name, exc.messages[0]) from None
    kind = params.get("kind", "")
    if kind and kind not in AccessEvent.Kind.values:
        raise InvalidInput.on("kind", f"Choose one of: {', '.join(AccessEvent.Kind.values)}.")
    product = None
    if params.get("product"):
        product = onboarding.product_get(params["product"])
    return access.events(product=product, team=params.get("team", ""), kind=kind, subject=params.get("subject", ""),
                         since=_date(params, "since"), until=_date(params, "until"))


def requests_seen_by(user, product):
    """The product's access requests `user` may see: every one for its team and the platform, their own for others."""
    qs = AccessRequest.objects.filter(product=product).select_related(
        "product", "product__team", "consumer", "requester", "owner_decided_by")
    if access.user_may_see_report(user, product):
        return qs
    return qs.filter(requester=user)


def open_request_of(user, product) -> AccessRequest | None:
    """The person's pending or approved request for `product`, if any (one at a time)."""
    return AccessRequest.objects.filter(product=product, kind=AccessRequest.Kind.PERSON, requester=user,
                                        status__in=AccessRequest.OPEN).first()
