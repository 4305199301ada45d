"""Who may do what, checked for every API endpoint and every page, on real objects.

Rules (DESIGN.md, Roles): members of a team create and edit their team's products; only the
platform group (or superusers) decides on WIDs; a team's owners (or the platform) manage its
members; everyone signed in reads; nobody else gets in. A refused write changes nothing: no git
commit and no database row.
"""
import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from onboarding.models import Membership, Product, ReviewEvent, Team
from onboarding.widrepo import get_repository
from tests.factories import UserFactory, member_of, wid_payload

pytestmark = pytest.mark.django_db

SLUG = "customer-churn"
TEAM = "growth-analytics"


# --- set-up ---------------------------------------------------------------------------------------
@pytest.fixture
def draft(api, member):
    """A draft WID of `team`, written by `member`; `owner` exists too, so the team has an owner."""
    response = api(member).post("/api/v1/products/", wid_payload(), format="json")
    assert response.status_code == 201, response.json()
    return SLUG


@pytest.fixture
def submitted(api, member, draft):
    response = api(member).post(f"/api/v1/products/{SLUG}/submit/", {"comment": "please"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "submitted"  # confidential + PII: the policy does not approve it
    return SLUG


@pytest.fixture
def world(draft, owner, member, outsider, platform, other_team):
    """Every role and a draft WID, for the tables below."""
    member_of(other_team, role="owner", username="fiona", first_name="Fiona", last_name="Finance")
    return draft


def snapshot() -> dict:
    """Everything a write could change: the tip of the WID repository and every row."""
    return {
        "head": get_repository().head(),
        "products": list(Product.objects.order_by("slug").values()),
        "reviews": list(ReviewEvent.objects.order_by("id").values()),
        "teams": list(Team.objects.order_by("slug").values()),
        "memberships": list(Membership.objects.order_by("id").values()),
        "users": list(get_user_model().objects.order_by("id").values("id", "username")),
    }


def as_user(request, name):
    return None if name is None else request.getfixturevalue(name)


def api_call(api, user, method, path, body=None):
    client = api(user)
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, body or {}, format="json")


# --- the API: reads -------------------------------------------------------------------------------
API_READS = [
    "/api/v1/teams/",
    f"/api/v1/teams/{TEAM}/",
    f"/api/v1/teams/{TEAM}/members/",
    "/api/v1/teams/finance-data/",
    "/api/v1/teams/finance-data/members/",
    "/api/v1/products/",
    f"/api/v1/products/?team={TEAM}",
    f"/api/v1/products/{SLUG}/",
    f"/api/v1/products/{SLUG}/markdown/",
    f"/api/v1/products/{SLUG}/history/",
    "/api/schema/",
    "/api/schema/?format=json",
]


@pytest.mark.parametrize("reader", ["member", "owner", "outsider", "platform"])
@pytest.mark.parametrize("path", API_READS)
def test_everyone_signed_in_reads_every_api_resource(request, api, world, reader, path):
    response = api(as_user(request, reader)).get(path)

    assert response.status_code == 200, (path, response.content[:300])


def test_a_member_of_another_team_reads_a_product_in_full(api, world, outsider):
    body = api(outsider).get(f"/api/v1/products/{SLUG}/").json()

    assert body["team"] == TEAM
    assert body["sections"]["value_proposition"] == "Predict churn so retention can act."
    assert [p["slug"] for p in api(outsider).get("/api/v1/products/").json()["results"]] == [SLUG]


# --- the API: anonymous ---------------------------------------------------------------------------
API_ENDPOINTS = [
    ("get", "/api/v1/teams/"),
    ("post", "/api/v1/teams/"),
    ("get", f"/api/v1/teams/{TEAM}/"),
    ("get", f"/api/v1/teams/{TEAM}/members/"),
    ("post", f"/api/v1/teams/{TEAM}/members/"),
    ("delete", f"/api/v1/teams/{TEAM}/members/alice/"),
    ("get", "/api/v1/products/"),
    ("post", "/api/v1/products/"),
    ("get", f"/api/v1/products/{SLUG}/"),
    ("patch", f"/api/v1/products/{SLUG}/"),
    ("get", f"/api/v1/products/{SLUG}/markdown/"),
    ("get", f"/api/v1/products/{SLUG}/history/"),
    ("post", f"/api/v1/products/{SLUG}/submit/"),
    ("post", f"/api/v1/products/{SLUG}/approve/"),
    ("post", f"/api/v1/products/{SLUG}/reject/"),
    ("post", f"/api/v1/products/{SLUG}/request-changes/"),
    ("get", "/api/schema/"),
]

ANONYMOUS_BODIES = {
    "/api/v1/teams/": {"slug": "sneaky-team", "name": "Sneaky"},
    f"/api/v1/teams/{TEAM}/members/": {"username": "mallory", "role": "owner"},
    "/api/v1/products/": wid_payload(slug="sneaky"),
    f"/api/v1/products/{SLUG}/": {"version": 1, "name": "Sneaky"},
}


@pytest.mark.parametrize("method, path", API_ENDPOINTS)
def test_an_anonymous_caller_cannot_use_any_api_endpoint(api, world, method, path):
    UserFactory(username="mallory")
    before = snapshot()

    response = api_call(api, None, method, path, ANONYMOUS_BODIES.get(path, {"comment": "x"}))

    assert response.status_code in (401, 403), (method, path, response.status_code)
    assert b"detail" in response.content  # the schema answers in its own format (YAML), the rest JSON
    assert snapshot() == before


def test_a_wrong_token_is_refused(api, world):
    client = APIClient()
    response = client.get("/api/v1/products/", HTTP_AUTHORIZATION="Token " + "0" * 40)

    assert response.status_code == 401


# --- the API: writes ------------------------------------------------------------------------------
def _new_team_member():
    return UserFactory(username="newbie", first_name="Nina", last_name="New")


# (who, method, path, body): refused with 403, and nothing changes.
API_FORBIDDEN_WRITES = [
    # a member of another team writes nothing of this team's products
    ("outsider", "post", "/api/v1/products/", wid_payload(slug="intruder")),
    ("outsider", "patch", f"/api/v1/products/{SLUG}/", {"version": 1, "name": "Hijacked"}),
    ("outsider", "patch", f"/api/v1/products/{SLUG}/", {"version": 1, "team": "finance-data"}),
    ("outsider", "post", f"/api/v1/products/{SLUG}/submit/", {"comment": "on their behalf"}),
    # the platform decides, but does not write a team's WID for it
    ("platform", "post", "/api/v1/products/", wid_payload(slug="platform-made")),
    ("platform", "patch", f"/api/v1/products/{SLUG}/", {"version": 1, "name": "Edited by platform"}),
    ("platform", "post", f"/api/v1/products/{SLUG}/submit/", {}),
    # a member cannot move a product to a team they are not in
    ("member", "patch", f"/api/v1/products/{SLUG}/", {"version": 1, "team": "finance-data"}),
    ("member", "post", "/api/v1/products/", wid_payload(slug="for-finance", team="finance-data")),
    # only owners (or the platform) manage members
    ("member", "post", f"/api/v1/teams/{TEAM}/members/", {"username": "newbie", "role": "member"}),
    ("member", "post", f"/api/v1/teams/{TEAM}/members/", {"username": "alice", "role": "owner"}),
    ("member", "delete", f"/api/v1/teams/{TEAM}/members/olivia/", None),
    ("outsider", "post", f"/api/v1/teams/{TEAM}/members/", {"username": "oscar", "role": "owner"}),
    ("outsider", "delete", f"/api/v1/teams/{TEAM}/members/alice/", None),
    ("owner", "post", "/api/v1/teams/finance-data/members/", {"username": "olivia", "role": "owner"}),
    ("owner", "delete", "/api/v1/teams/finance-data/members/oscar/", None),
]


@pytest.mark.parametrize("who, method, path, body", API_FORBIDDEN_WRITES)
def test_a_user_without_the_right_role_cannot_write_and_nothing_changes(request, api, world, who, method, path, body):
    _new_team_member()
    before = snapshot()

    response = api_call(api, as_user(request, who), method, path, body)

    assert response.status_code == 403, (who, method, path, response.content[:300])
    assert response.json()["detail"]
    assert snapshot() == before


DECISIONS = ["approve", "reject", "request-changes"]


@pytest.mark.parametrize("who", ["member", "owner", "outsider"])
@pytest.mark.parametrize("action", DECISIONS)
def test_a_team_member_cannot_decide_on_a_wid_even_of_their_own_team(request, api, world, submitted, who, action):
    before = snapshot()

    response = api_call(api, as_user(request, who), "post", f"/api/v1/products/{SLUG}/{action}/",
                        {"comment": "looks fine to us"})

    assert response.status_code == 403, response.json()
    assert snapshot() == before
    assert Product.objects.get(slug=SLUG).status == "submitted"


@pytest.mark.parametrize("action, status", [
    ("approve", "approved"), ("reject", "rejected"), ("request-changes", "changes_requested"),
])
@pytest.mark.parametrize("decider", ["platform", "superuser"])
def test_the_platform_group_and_superusers_decide(api, world, submitted, action, status, decider):
    if decider == "superuser":
        user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    else:
        user = get_user_model().objects.get(username="priya")
    head = get_repository().head()

    response = api_call(api, user, "post", f"/api/v1/products/{SLUG}/{action}/", {"comment": "Decided."})

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == status
    assert get_repository().head() != head
    assert Product.objects.get(slug=SLUG).status == status


def test_a_team_member_creates_edits_and_submits_their_teams_product(api, team, member, owner):
    assert api(member).post("/api/v1/products/", wid_payload(), format="json").status_code == 201
    response = api(owner).patch(f"/api/v1/products/{SLUG}/", {"version": 1, "name": "By the owner"}, format="json")
    assert response.status_code == 200, response.json()
    response = api(member).post(f"/api/v1/products/{SLUG}/submit/", format="json")
    assert response.status_code == 200, response.json()
    assert Product.objects.get(slug=SLUG).status == "submitted"
    assert [h["author"] for h in api(member).get(f"/api/v1/products/{SLUG}/history/").json()] == [
        "Alice Analyst", "Olivia Owner", "Alice Analyst",
    ]


def test_anyone_signed_in_creates_a_team_and_becomes_its_owner(api, outsider):
    response = api(outsider).post("/api/v1/teams/", {"slug": "new-team", "name": "New team"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["members"] == [{"username": "oscar", "role": "owner"}]


@pytest.mark.parametrize("manager", ["owner", "platform"])
def test_an_owner_or_the_platform_adds_and_removes_members(request, api, world, manager):
    newbie = _new_team_member()
    user = as_user(request, manager)

    added = api(user).post(f"/api/v1/teams/{TEAM}/members/", {"username": "newbie", "role": "member"}, format="json")
    assert added.status_code == 201, added.json()
    assert Membership.objects.filter(team__slug=TEAM, user=newbie, role="member").exists()

    removed = api(user).delete(f"/api/v1/teams/{TEAM}/members/newbie/")
    assert removed.status_code == 204
    assert not Membership.objects.filter(team__slug=TEAM, user=newbie).exists()


def test_a_plain_member_may_leave_the_team_themselves(api, world, member):
    response = api(member).delete(f"/api/v1/teams/{TEAM}/members/alice/")

    assert response.status_code == 204
    assert not Membership.objects.filter(team__slug=TEAM, user=member).exists()


def test_a_member_who_left_can_no_longer_edit_the_teams_product(api, world, member):
    api(member).delete(f"/api/v1/teams/{TEAM}/members/alice/")
    before = snapshot()
    alice = get_user_model().objects.get(pk=member.pk)  # a new request loads the user afresh

    response = api(alice).patch(f"/api/v1/products/{SLUG}/", {"version": 1, "name": "After leaving"}, format="json")

    assert response.status_code == 403
    assert snapshot() == before


# --- tokens ---------------------------------------------------------------------------------------
def test_a_token_from_drf_create_token_signs_in_to_the_api(api, world):
    user = member_of(Team.objects.get(slug=TEAM), username="robot", first_name="Build", last_name="Robot")
    out = StringIO()

    call_command("drf_create_token", "robot", stdout=out)

    match = re.search(r"\b([0-9a-f]{40})\b", out.getvalue())
    assert match, out.getvalue()
    key = match.group(1)
    client = APIClient()
    response = client.get(f"/api/v1/products/{SLUG}/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    assert response.json()["slug"] == SLUG
    response = client.patch(f"/api/v1/products/{SLUG}/", {"version": 1, "name": "Via token"}, format="json",
                            HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200, response.json()
    assert get_repository().repo.head.commit.author.name == user.get_full_name()


# --- pages ----------------------------------------------------------------------------------------
PAGE_READS = [
    "/products/",
    f"/products/?team={TEAM}&status=draft",
    "/products/?mine=1",
    "/products/new/",
    f"/products/new/?team={TEAM}",
    f"/products/{SLUG}/",
    f"/products/{SLUG}/?from=1&to=2",
    "/teams/",
    f"/teams/{TEAM}/",
    "/teams/finance-data/",
    "/api/docs/",
    "/api/schema/",
]


@pytest.mark.parametrize("reader", ["member", "owner", "outsider", "platform"])
@pytest.mark.parametrize("path", PAGE_READS)
def test_everyone_signed_in_reads_every_page(request, client, api, world, reader, path):
    api(request.getfixturevalue("member")).patch(f"/api/v1/products/{SLUG}/", {"version": 1, "name": "Two"},
                                                   format="json")
    client.force_login(as_user(request, reader))

    response = client.get(path)

    assert response.status_code == 200, (path, response.status_code)


def test_the_home_page_leads_a_signed_in_user_to_the_product_list(client, member):
    client.force_login(member)

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == reverse("product-list")


PAGES = [
    ("get", "/"),
    ("get", "/products/"),
    ("get", "/products/new/"),
    ("post", "/products/new/"),
    ("get", f"/products/{SLUG}/"),
    ("get", f"/products/{SLUG}/edit/"),
    ("post", f"/products/{SLUG}/edit/"),
    ("post", f"/products/{SLUG}/submit/"),
    ("post", f"/products/{SLUG}/approve/"),
    ("post", f"/products/{SLUG}/reject/"),
    ("post", f"/products/{SLUG}/request-changes/"),
    ("get", "/teams/"),
    ("post", "/teams/"),
    ("get", f"/teams/{TEAM}/"),
    ("post", f"/teams/{TEAM}/"),
    ("post", f"/teams/{TEAM}/members/alice/remove/"),
    ("get", "/api/docs/"),
]


def _page_form(**overrides) -> dict:
    """The flat fields of the WID form (onboarding/forms.py), as a browser posts them."""
    p = wid_payload()
    data = {
        "slug": p["slug"], "name": p["name"], "domain": p["domain"], "team": p["team"], "target": p["target"],
        "classification": p["classification"], "pii": "on", "compute_tier": p["compute_tier"],
        "contacts_business_name": "Maria Business", "contacts_business_email": "maria@example.com",
        "contacts_technical_name": "Tom Technical", "contacts_technical_email": "tom@example.com",
        "data_custodian_name": "Carla Custodian", "data_custodian_email": "carla@example.com",
        "depends_on": "", "outputs": "churn_scores: table",
        **{f"section_{k}": v for k, v in p["sections"].items()},
        "save": "1",
    }
    data.update(overrides)
    return data


PAGE_BODIES = {
    "/products/new/": _page_form(slug="sneaky"),
    f"/products/{SLUG}/edit/": _page_form(name="Sneaky", version="1"),
    "/teams/": {"slug": "sneaky-team", "name": "Sneaky"},
    f"/teams/{TEAM}/": {"username": "mallory", "role": "owner"},
}


@pytest.mark.parametrize("method, path", PAGES)
def test_an_anonymous_visitor_is_sent_to_the_login_page_from_every_page(client, world, method, path):
    UserFactory(username="mallory")
    before = snapshot()

    if method == "get":
        response = client.get(path)
    else:
        response = client.post(path, PAGE_BODIES.get(path, {"comment": "x"}))

    assert response.status_code == 302, (method, path, response.status_code)
    assert response["Location"].startswith(reverse("login") + "?next=")
    assert snapshot() == before


# (who, path, form): refused with 403, and nothing changes.
PAGE_FORBIDDEN_WRITES = [
    ("outsider", "/products/new/", _page_form(slug="intruder")),
    ("platform", "/products/new/", _page_form(slug="platform-made")),
    ("outsider", f"/products/{SLUG}/edit/", _page_form(name="Hijacked", version="1")),
    ("platform", f"/products/{SLUG}/edit/", _page_form(name="Edited by platform", version="1")),
    ("outsider", f"/products/{SLUG}/edit/", _page_form(name="Peek", version="1", preview="1")),
    ("member", f"/products/{SLUG}/edit/", _page_form(team="finance-data", version="1")),
    ("member", "/products/new/", _page_form(slug="for-finance", team="finance-data")),
    ("outsider", f"/products/{SLUG}/submit/", {"comment": "on their behalf"}),
    ("platform", f"/products/{SLUG}/submit/", {}),
    ("member", f"/teams/{TEAM}/", {"username": "newbie", "role": "member"}),
    ("member", f"/teams/{TEAM}/", {"username": "alice", "role": "owner"}),
    ("outsider", f"/teams/{TEAM}/", {"username": "oscar", "role": "owner"}),
    ("member", f"/teams/{TEAM}/members/olivia/remove/", {}),
    ("outsider", f"/teams/{TEAM}/members/alice/remove/", {}),
    ("owner", "/teams/finance-data/members/oscar/remove/", {}),
]


@pytest.mark.parametrize("who, path, form", PAGE_FORBIDDEN_WRITES)
def test_a_page_refuses_a_write_without_the_right_role_and_nothing_changes(request, client, world, who, path, form):
    _new_team_member()
    client.force_login(as_user(request, who))
    before = snapshot()

    response = client.post(path, form)

    assert response.status_code == 403, (who, path, response.status_code)
    assert snapshot() == before


@pytest.mark.parametrize("who", ["outsider", "platform"])
def test_the_edit_form_is_not_shown_to_someone_outside_the_team(request, client, world, who):
    client.force_login(as_user(request, who))

    assert client.get(f"/products/{SLUG}/edit/").status_code == 403


@pytest.mark.parametrize("who", ["member", "owner", "outsider"])
@pytest.mark.parametrize("action", DECISIONS)
def test_a_team_member_cannot_decide_through_the_page_either(request, client, world, submitted, who, action):
    client.force_login(as_user(request, who))
    before = snapshot()

    response = client.post(f"/products/{SLUG}/{action}/", {"comment": "looks fine to us"})

    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("action, status", [
    ("approve", "approved"), ("reject", "rejected"), ("request-changes", "changes_requested"),
])
def test_the_platform_decides_through_the_page(client, world, submitted, platform, action, status):
    client.force_login(platform)

    response = client.post(f"/products/{SLUG}/{action}/", {"comment": "Decided."})

    assert response.status_code == 302
    assert Product.objects.get(slug=SLUG).status == status


@pytest.mark.parametrize("manager", ["owner", "platform"])
def test_an_owner_or_the_platform_manages_members_through_the_page(request, client, world, manager):
    newbie = _new_team_member()
    client.force_login(as_user(request, manager))

    assert client.post(f"/teams/{TEAM}/", {"username": "newbie", "role": "member"}).status_code == 302
    assert Membership.objects.filter(team__slug=TEAM, user=newbie, role="member").exists()
    assert client.post(f"/teams/{TEAM}/members/newbie/remove/").status_code == 302
    assert not Membership.objects.filter(team__slug=TEAM, user=newbie).exists()


def test_a_team_member_edits_and_submits_through_the_page(client, world, member):
    client.force_login(member)

    response = client.post(f"/products/{SLUG}/edit/", _page_form(name="Edited on the page", version="1"))
    assert response.status_code == 302, response.content[:500]
    response = client.post(f"/products/{SLUG}/submit/", {"comment": ""})
    assert response.status_code == 302

    product = Product.objects.get(slug=SLUG)
    assert (product.name, product.status, product.version) == ("Edited on the page", "submitted", 3)
