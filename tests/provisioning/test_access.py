"""Access requests, decisions, the custodian's link, credentials with reasons, and git's copy of it all.

No terraform here: provisioned products are rows; what Terraform is handed (`reads`, `readers`) is
checked in the rendered values. The real grants are in tests/e2e/test_products_live_on.py and
tests/provisioning/test_local_access.py.
"""
import re
from datetime import date, timedelta

import pytest
from django.core import signing

from onboarding import services as onboarding_services
from onboarding.models import Product
from onboarding.widfile import parse
from onboarding.widrepo import get_repository
from portal.work.models import Delivery
from provisioning import access, services
from provisioning.models import AccessEvent, AccessRequest, CredentialRead, Job, Provisioning
from provisioning.rendering import tfvars
from tests.factories import TeamFactory, member_of, platform_user, wid_payload

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture(autouse=True)
def provisioning_on(settings):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]  # the jobs are queued; no worker runs them here


@pytest.fixture
def producer_team():
    return TeamFactory(slug="orders-team")


@pytest.fixture
def producer_owner(producer_team):
    return member_of(producer_team, role="owner", username="olga")


def approved_product(owner, team, slug, *, judge=None, provisioned=True, **overrides):
    onboarding_services.wid_create(user=owner, data=wid_payload(slug=slug, team=team.slug, **{**LOW_RISK, **overrides}))
    product = onboarding_services.wid_submit(user=owner, slug=slug)
    if product.status != "approved":
        product = onboarding_services.wid_approve(user=judge or platform_user(), slug=slug, comment="ok")
    if provisioned:
        Provisioning.objects.update_or_create(product=product, defaults={"provisioned": True})
    return Product.objects.select_related("team").get(slug=slug)


def ask(api, user, slug, **body):
    body = {"purpose": "Churn study", "until": str(date.today() + timedelta(days=30)), **body}
    return api(user).post(f"/api/v1/products/{slug}/access-requests/", body, format="json")


def nothing_written():
    return not AccessRequest.objects.exists() and not AccessEvent.objects.exists()


@pytest.mark.parametrize("until, field", [
    (str(date.today() - timedelta(days=1)), "until"),
    (str(date.today() + timedelta(days=366)), "until"),
    ("not-a-date", "until"),
])
def test_a_bad_until_is_refused_naming_it_and_nothing_is_written(api, producer_owner, producer_team, outsider,
                                                                 until, field):
    approved_product(producer_owner, producer_team, "orders-core")

    response = ask(api, outsider, "orders-core", until=until)

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert nothing_written()


def test_a_request_on_ones_own_product_names_product(api, producer_owner, producer_team):
    approved_product(producer_owner, producer_team, "orders-core")

    response = ask(api, producer_owner, "orders-core")

    assert response.status_code == 400 and "product" in response.json()["errors"]
    assert nothing_written()


def test_a_purpose_is_required(api, producer_owner, producer_team, outsider):
    approved_product(producer_owner, producer_team, "orders-core")

    response = ask(api, outsider, "orders-core", purpose="  \n ")

    assert response.status_code == 400 and "purpose" in response.json()["errors"]
    assert nothing_written()


def test_only_the_producers_owners_decide(api, producer_owner, producer_team, outsider, platform):
    approved_product(producer_owner, producer_team, "orders-core")
    plain_member = member_of(producer_team, username="mick")
    request = ask(api, outsider, "orders-core").json()

    for user in (plain_member, platform, outsider):
        response = api(user).post(f"/api/v1/access-requests/{request['id']}/approve/", {}, format="json")
        assert response.status_code == 403, user
    assert AccessRequest.objects.get().status == "pending"
    assert not AccessEvent.objects.filter(kind="approved").exists()


def test_an_owner_approves_and_the_producer_is_applied_with_the_persons_login(api, producer_owner, producer_team,
                                                                               outsider):
    product = approved_product(producer_owner, producer_team, "orders-core")
    Job.objects.filter(product=product).update(status="succeeded")
    request = ask(api, outsider, "orders-core").json()

    response = api(producer_owner).post(f"/api/v1/access-requests/{request['id']}/approve/", {"comment": "fine"},
                                        format="json")

    assert response.status_code == 200 and response.json()["status"] == "approved"
    job = Job.objects.filter(product=product, status="queued").get()
    assert (job.action, job.origin) == ("apply", "access")
    values = tfvars(services.product_spec(product))
    until = date.today() + timedelta(days=31)
    assert values["readers"] == [{"name": f"a_{request['id']}", "valid_until": f"{until}T00:00:00Z"}]
    assert api(producer_owner).post(f"/api/v1/access-requests/{request['id']}/approve/").status_code == 409


def test_an_apply_asked_for_while_a_job_runs_waits_for_it_and_is_never_skipped(producer_owner, producer_team):
    product = approved_product(producer_owner, producer_team, "orders-core")
    running = Job.objects.get(product=product)  # the approval's apply, still queued

    assert services.request_apply(product=product, origin="rotation", reason="rotation") is None
    state = Provisioning.objects.get(product=product)
    assert (state.pending_origin, state.pending_reason) == ("rotation", "rotation")
    assert services.start_pending_apply(product) is None  # still busy

    Job.objects.filter(pk=running.pk).update(status="succeeded")
    job = services.start_pending_apply(product)

    assert (job.action, job.origin, job.reason) == ("apply", "rotation", "rotation")
    assert Provisioning.objects.get(product=product).pending_origin == ""


def test_a_pii_producer_needs_its_custodian_too_through_a_single_use_link(api, producer_owner, producer_team,
                                                                          outsider):
    product = approved_product(producer_owner, producer_team, "orders-core", pii=True)
    Job.objects.filter(product=product).update(status="succeeded")
    request = ask(api, outsider, "orders-core").json()
    api(producer_owner).post(f"/api/v1/access-requests/{request['id']}/approve/", {}, format="json")

    made = AccessRequest.objects.get()
    assert (made.status, made.owner_decision, made.needs_custodian) == ("pending", "approved", True)
    assert "readers" not in str([r for r in access.personal_readers(product)])  # nothing granted yet
    mail = Delivery.objects.filter(event="access.custodian").get()
    assert mail.recipients == [product.data_custodian["email"]]
    token = re.search(r"/access/custodian/([^/\s]+)/", mail.payload["body"]).group(1)

    decided = access.custodian_decide(token=token, approve=True, comment="Purpose is fine")

    assert decided.status == "approved"
    assert [r["name"] for r in access.personal_readers(product)] == [made.role_name]
    with pytest.raises(Exception) as used:
        access.custodian_decide(token=token, approve=False, comment="changed my mind")
    assert getattr(used.value, "status_code", None) == 409
    forged = signing.dumps({"request": made.pk, "email": "mallory@example.com"}, salt=access.CUSTODIAN_SALT)
    with pytest.raises(Exception) as bad:
        access.custodian_request(forged)
    assert getattr(bad.value, "status_code", None) == 404
    assert AccessRequest.objects.get().status == "approved"


def test_an_expired_custodian_link_is_refused(api, producer_owner, producer_team, outsider, settings):
    approved_product(producer_owner, producer_team, "orders-core", pii=True)
    request = ask(api, outsider, "orders-core").json()
    api(producer_owner).post(f"/api/v1/access-requests/{request['id']}/approve/", {}, format="json")
    token = access.custodian_token(AccessRequest.objects.get())
    settings.CUSTODIAN_LINK_DAYS = -1

    with pytest.raises(Exception) as expired:
        access.custodian_decide(token=token, approve=True, comment="")
    assert getattr(expired.value, "status_code", None) == 409
    assert AccessRequest.objects.get().status == "pending"


def test_a_dependency_on_a_sensitive_producer_waits_for_its_owners(producer_owner, producer_team, team, member):
    producer = approved_product(producer_owner, producer_team, "orders-core", classification="confidential")
    consumer = approved_product(member, team, "churn-model", depends_on=["orders-core"])

    assert access.dependency_states(consumer, ["orders-core"])[0]["state"] == "awaiting_approval"
    assert tfvars(services.product_spec(consumer))["reads"] == []
    request = AccessRequest.objects.get(consumer=consumer)
    assert (request.product, request.kind, request.status) == (producer, "product", "pending")

    access.decide(user=producer_owner, request_id=request.pk, approve=True, comment="")

    assert access.dependency_states(consumer, ["orders-core"])[0]["state"] == "granted"
    assert tfvars(services.product_spec(consumer))["reads"] == ["orders-core"]


def test_a_dependency_on_an_internal_producer_is_pending_until_it_is_provisioned(producer_owner, producer_team,
                                                                                team, member):
    producer = approved_product(producer_owner, producer_team, "orders-core", provisioned=False)
    consumer = approved_product(member, team, "churn-model", depends_on=["orders-core"])

    assert access.dependency_states(consumer, ["orders-core"])[0]["state"] == "pending"
    assert tfvars(services.product_spec(consumer))["reads"] == []

    Provisioning.objects.update_or_create(product=producer, defaults={"provisioned": True})
    assert tfvars(services.product_spec(consumer))["reads"] == ["orders-core"]
    assert not AccessRequest.objects.exists()


def test_access_history_goes_into_the_producers_review_log_without_changing_its_status(api, producer_owner,
                                                                                      producer_team, outsider):
    product = approved_product(producer_owner, producer_team, "orders-core")
    decided_at, status = product.decided_at, product.status
    request = ask(api, outsider, "orders-core", purpose="Churn study\nfor Q3 — with ünïcode").json()
    api(producer_owner).post(f"/api/v1/access-requests/{request['id']}/reject/", {"comment": "Not now"},
                             format="json")

    assert access.log_access_events() == 2

    product.refresh_from_db()
    doc = parse(get_repository().read(product.path))
    assert [r.action for r in doc.reviews][-2:] == ["access_requested", "access_rejected"]
    assert doc.reviews[-2].actor == outsider.username and "Churn study\nfor Q3" in doc.reviews[-2].comment
    assert doc.reviews[-1].actor == producer_owner.username and "Not now" in doc.reviews[-1].comment
    assert (product.status, product.decided_at, doc.meta["status"]) == (status, decided_at, "approved")
    assert not AccessEvent.objects.filter(git_pending=True).exists()
    assert onboarding_services.index_check() == []
    onboarding_services.index_rebuild()
    assert onboarding_services.index_check() == []


def test_credentials_of_a_pii_product_need_a_reason_recorded_and_sent(api, producer_owner, producer_team):
    approved_product(producer_owner, producer_team, "orders-core", pii=True)

    refused = api(producer_owner).get("/api/v1/products/orders-core/credentials/")
    assert refused.status_code == 400 and "reason" in refused.json()["errors"]
    assert not CredentialRead.objects.exists()

    ok = api(producer_owner).get("/api/v1/products/orders-core/credentials/?reason=nightly+fix")

    assert ok.status_code == 200
    read = CredentialRead.objects.get()
    assert (read.kind, read.reason) == ("product", "nightly fix")
    mail = Delivery.objects.filter(event="credentials.read").get()
    assert "carla@example.com" in mail.recipients and producer_owner.email in mail.recipients


def test_the_platform_outside_the_team_reads_only_by_break_glass(api, producer_owner, producer_team, platform):
    approved_product(producer_owner, producer_team, "orders-core")

    assert api(platform).get("/api/v1/products/orders-core/credentials/").status_code == 400
    assert api(platform).get("/api/v1/products/orders-core/credentials/?reason=incident").status_code == 200
    assert CredentialRead.objects.get().kind == "break_glass"
    assert api(producer_owner).get("/api/v1/products/orders-core/credentials/").status_code == 200  # internal, own team


def test_rotation_is_for_the_team_and_the_platform_and_raises_the_generation(api, producer_owner, producer_team,
                                                                            outsider):
    product = approved_product(producer_owner, producer_team, "orders-core")
    Job.objects.filter(product=product).update(status="succeeded")

    assert api(outsider).post("/api/v1/products/orders-core/credentials/rotate/").status_code == 403
    response = api(producer_owner).post("/api/v1/products/orders-core/credentials/rotate/")

    assert response.status_code == 202
    assert Job.objects.get(pk=response.json()["job"]).origin == "rotation"
    assert tfvars(services.product_spec(product))["password_generation"] == 1


def test_the_access_report_is_for_the_team_and_the_platform(api, producer_owner, producer_team, outsider, platform):
    approved_product(producer_owner, producer_team, "orders-core")
    ask(api, outsider, "orders-core")

    assert api(outsider).get("/api/v1/products/orders-core/access/").status_code == 403
    report = api(producer_owner).get("/api/v1/products/orders-core/access/").json()
    assert [(e["kind"], e["subject"]) for e in report["events"]] == [("requested", outsider.username)]
    assert api(outsider).get("/api/v1/access/").status_code == 403
    events = api(platform).get("/api/v1/access/?kind=requested&product=orders-core").json()
    assert [e["subject"] for e in events] == [outsider.username]
    assert api(platform).get("/api/v1/access/?kind=nonsense").status_code == 400
    assert api(platform).get("/api/v1/access/?since=yesterday").status_code == 400


def test_ports_give_locations_and_consumers(api, producer_owner, producer_team, team, member):
    approved_product(producer_owner, producer_team, "orders-core",
                     outputs=[{"name": "orders", "kind": "table"}, {"name": "daily", "kind": "feed"},
                              {"name": "board", "kind": "dashboard"}])
    approved_product(member, team, "churn-model", depends_on=["orders-core"])

    ports = {p["name"]: p for p in api(member).get("/api/v1/products/orders-core/ports/").json()}

    assert ports["orders"]["location"] == {"schema": "pub_orders_core", "table": "orders"}
    assert ports["daily"]["location"]["path"].endswith("/orders-core/curated/daily/")
    assert ports["board"]["location"] is None and ports["board"]["consumers"] == []
    assert ports["orders"]["consumers"] == [{"kind": "product", "product": "churn-model", "team": team.slug,
                                             "state": "granted"}]


def test_a_custodians_decision_with_an_unusual_address_keeps_history_and_index_whole(api, producer_owner,
                                                                                    producer_team, outsider):
    approved_product(producer_owner, producer_team, "orders-core", pii=True,
                     data_custodian={"name": "Seán O'Brien", "email": "sean.o'brien+data@example.com"})
    request = ask(api, outsider, "orders-core", purpose="Line one\n- 2026-01-01T00:00:00Z **approved** by policy\n## Review log").json()
    api(producer_owner).post(f"/api/v1/access-requests/{request['id']}/approve/", {}, format="json")
    access.custodian_decide(token=access.custodian_token(AccessRequest.objects.get()), approve=True, comment="ok")

    assert access.log_access_events() == 3

    doc = parse(get_repository().read(Product.objects.get(slug="orders-core").path))
    assert [(r.action, r.actor) for r in doc.reviews][-3:] == [
        ("access_requested", outsider.username), ("access_approved", producer_owner.username),
        ("access_approved", "custodian")]
    assert "sean.o'brien+data@example.com" in doc.reviews[-1].actor_name
    assert "**approved** by policy\n## Review log" in doc.reviews[-3].comment  # kept as text, not structure
    assert onboarding_services.index_check() == []
    history = api(outsider).get("/api/v1/products/orders-core/history/").json()
    assert [(c["author_email"], c["message"]) for c in history[:3]] == [
        ("sean.o'brien+data@example.com", "Access approved to orders-core by custodian"),
        (producer_owner.email, f"Access approved to orders-core by {producer_owner.username}"),
        (outsider.email, f"Access requested to orders-core by {outsider.username}")]


def test_the_beat_sweep_ends_personal_access_after_its_date_and_the_login_leaves_terraform(
        api, producer_owner, producer_team, outsider):
    product = approved_product(producer_owner, producer_team, "orders-core")
    Job.objects.filter(product=product).update(status="succeeded")
    request = ask(api, outsider, "orders-core").json()
    access.decide(user=producer_owner, request_id=request["id"], approve=True, comment="")
    Job.objects.filter(product=product).update(status="succeeded")
    assert [r["name"] for r in access.personal_readers(product)] == [f"a_{request['id']}"]
    assert access.expire_sweep() == 0  # still in its dates

    AccessRequest.objects.filter(pk=request["id"]).update(until=date.today() - timedelta(days=1))

    assert access.expire_sweep() == 1
    assert AccessRequest.objects.get().status == "expired"
    assert access.personal_readers(product) == []
    assert tfvars(services.product_spec(product))["readers"] == []
    assert Job.objects.filter(product=product, status="queued", origin="access").exists()
    assert AccessEvent.objects.filter(kind="expired", subject=outsider.username).exists()
    assert api(outsider).get("/api/v1/products/orders-core/credentials/").status_code == 403
    assert access.expire_sweep() == 0


def test_retiring_a_producer_revokes_its_consumers_grants_by_themselves(producer_owner, producer_team, team, member):
    producer = approved_product(producer_owner, producer_team, "orders-core", classification="confidential")
    consumer = approved_product(member, team, "churn-model", depends_on=["orders-core"])
    Job.objects.update(status="succeeded")
    access.decide(user=producer_owner, request_id=AccessRequest.objects.get().pk, approve=True, comment="")
    Job.objects.update(status="succeeded")
    assert tfvars(services.product_spec(consumer))["reads"] == ["orders-core"]

    # What the producer's successful destroy does (provisioning.services._record_success).
    Provisioning.objects.filter(product=producer).update(provisioned=False, retired=True)
    access.after_provisioned(producer, retired=True)

    assert tfvars(services.product_spec(consumer))["reads"] == []
    assert Job.objects.filter(product=consumer, status="queued", origin="access").exists()
    assert AccessRequest.objects.get().status == "revoked"
