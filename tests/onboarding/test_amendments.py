"""Amendments: an approved WID stays editable; its approved version stays live until the change is approved.

Onboarding's side (git, status, policy, withdraw); the infrastructure's side (the apply of the approved
version, the tier change on the real warehouse) is in tests/e2e/test_amendment_e2e.py.
"""
import pytest

from onboarding import selectors
from onboarding.models import Product
from onboarding.widfile import parse
from onboarding.widrepo import get_repository
from tests.factories import member_of, wid_payload

pytestmark = pytest.mark.django_db

URL = "/api/v1/products/customer-churn/"
LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


def create(api, user, slug="customer-churn", **overrides):
    response = api(user).post("/api/v1/products/", wid_payload(slug=slug, **overrides), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def act(api, user, action, slug="customer-churn", **body):
    return api(user).post(f"/api/v1/products/{slug}/{action}/", body, format="json")


def stored(slug="customer-churn"):
    return parse(get_repository().read(f"wids/growth/{slug}.md"))


def approved(api, member, **overrides):
    create(api, member, **{**LOW_RISK, **overrides})
    body = act(api, member, "submit").json()
    assert body["status"] == "approved", body
    return body


def amend(api, user, version, **changes):
    return api(user).patch(URL, {"version": version, **changes}, format="json")


def test_editing_an_approved_wid_opens_an_amendment_keeping_the_approved_version(api, member):
    body = approved(api, member)
    live = body["version"]
    assert body["approved_version"] == live
    assert stored().meta["approved_version"] == live

    response = amend(api, member, live, compute_tier="medium")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["version"], body["approved_version"]) == ("draft", live + 1, live)
    doc = stored()
    assert (doc.meta["status"], doc.meta["approved_version"], doc.meta["compute_tier"]) == ("draft", live, "medium")
    # The approved version is still in git, as it was: what provisioning builds.
    product = Product.objects.get()
    assert selectors.approved_document(product).meta["compute_tier"] == "small"
    assert get_repository().repo.head.commit.message.startswith("Amend customer-churn")


def test_a_file_without_the_new_keys_parses_and_renders_without_them(api, member):
    create(api, member)
    text = get_repository().read("wids/growth/customer-churn.md")
    assert "approved_version" not in text
    assert parse(text).meta.get("approved_version") is None
    assert Product.objects.get().approved_version is None


def test_an_amendment_that_keeps_or_lowers_risk_is_approved_by_policy(api, member):
    live = approved(api, member)["version"]
    version = amend(api, member, live, compute_tier="medium", name="Churn, weekly").json()["version"]

    body = act(api, member, "submit").json()

    assert body["status"] == "approved"
    assert body["approved_version"] == version + 2  # the submit and the approval commits
    assert body["review_log"][-1]["by_policy"] is True
    assert "amendment approved by policy" in body["review_log"][-1]["comment"]


def test_an_amendment_of_a_product_first_approved_by_a_person_may_be_approved_by_policy(api, member, platform):
    create(api, member)  # confidential, PII: needs a person
    act(api, member, "submit")
    live = act(api, platform, "approve").json()["version"]
    version = amend(api, member, live, compute_tier="medium").json()["version"]

    body = act(api, member, "submit").json()

    assert body["status"] == "approved", body["review_log"][-1]
    assert body["approved_version"] == version + 2


@pytest.mark.parametrize("change, reason", [
    ({"classification": "confidential"}, "classification rises from internal to confidential"),
    ({"pii": True}, "it now holds personal data"),
    ({"compute_tier": "large"}, "compute tier rises to large"),
    ({"depends_on": ["hr-records"]}, "it newly reads sensitive products: hr-records"),
])
def test_an_amendment_that_raises_risk_goes_to_a_person(api, member, team, change, reason):
    create(api, member, slug="hr-records", classification="restricted", pii=False)
    live = approved(api, member)["version"]
    amend(api, member, live, **change)

    body = act(api, member, "submit").json()

    assert body["status"] == "submitted"
    assert body["approved_version"] == live
    assert Product.objects.get(slug="customer-churn").approved_version == live


def test_a_new_dependency_on_an_internal_product_does_not_raise_risk(api, member):
    create(api, member, slug="orders-core", **LOW_RISK)
    live = approved(api, member)["version"]
    amend(api, member, live, depends_on=["orders-core"])

    assert act(api, member, "submit").json()["status"] == "approved"


def test_a_rejected_amendment_keeps_the_approved_version_live(api, member, platform):
    live = approved(api, member)["version"]
    amend(api, member, live, pii=True)
    act(api, member, "submit")

    body = act(api, platform, "reject", comment="Not with personal data").json()

    assert (body["status"], body["approved_version"]) == ("rejected", live)
    assert selectors.approved_document(Product.objects.get()).meta["pii"] is False


def test_withdraw_drops_the_amendment_and_returns_to_the_approved_version(api, member):
    live = approved(api, member, name="Churn")["version"]
    amended = amend(api, member, live, name="Churn renamed", compute_tier="medium").json()
    approved_at = Product.objects.get().decided_at

    response = act(api, member, "withdraw", comment="Not now")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["version"], body["approved_version"]) == ("approved", amended["version"] + 1, live)
    assert (body["name"], body["compute_tier"]) == ("Churn", "small")
    assert body["review_log"][-1]["action"] == "withdrawn"
    assert Product.objects.get().decided_at == approved_at
    doc = stored()
    assert (doc.meta["name"], doc.meta["status"]) == ("Churn", "approved")


def test_withdraw_without_an_amendment_is_a_conflict_and_writes_nothing(api, member):
    approved(api, member)
    head = get_repository().repo.head.commit.hexsha

    response = act(api, member, "withdraw")

    assert response.status_code == 409
    assert get_repository().repo.head.commit.hexsha == head


def test_withdraw_is_for_the_team(api, member, outsider):
    live = approved(api, member)["version"]
    amend(api, member, live, name="Changed")

    assert act(api, outsider, "withdraw").status_code == 403
    assert stored().meta["status"] == "draft"


def test_changing_the_target_of_an_approved_product_names_target(api, member):
    live = approved(api, member)["version"]
    head = get_repository().repo.head.commit.hexsha

    response = amend(api, member, live, target="aws")

    assert response.status_code == 400
    assert "target" in response.json()["errors"]
    assert get_repository().repo.head.commit.hexsha == head


def test_a_draft_never_approved_may_change_its_target(api, member):
    create(api, member)
    assert amend(api, member, 1, target="aws").status_code == 200


def test_a_retired_product_cannot_be_amended(api, member, platform):
    from onboarding import services

    live = approved(api, member)["version"]
    services.wid_retire(user=platform, slug="customer-churn", comment="Gone")
    head = get_repository().repo.head.commit.hexsha

    response = amend(api, member, live + 1, name="Again")

    assert response.status_code == 409
    assert get_repository().repo.head.commit.hexsha == head


def test_depends_on_a_retired_product_names_depends_on(api, member, platform):
    from onboarding import services

    create(api, member, slug="old-feed", **LOW_RISK)
    act(api, member, "submit", slug="old-feed")
    services.wid_retire(user=platform, slug="old-feed", comment="Gone")
    create(api, member)
    head = get_repository().repo.head.commit.hexsha

    response = amend(api, member, 1, depends_on=["old-feed"])

    assert response.status_code == 400
    assert "depends_on" in response.json()["errors"]
    assert get_repository().repo.head.commit.hexsha == head


def test_a_cycle_in_depends_on_names_depends_on(api, member):
    create(api, member, slug="alpha-one")
    create(api, member, slug="beta-two", depends_on=["alpha-one"])
    create(api, member, slug="gamma-three", depends_on=["beta-two"])
    head = get_repository().repo.head.commit.hexsha

    response = api(member).patch("/api/v1/products/alpha-one/", {"version": 1, "depends_on": ["gamma-three"]},
                                 format="json")

    assert response.status_code == 400
    assert "alpha-one → gamma-three → beta-two → alpha-one" in response.json()["errors"]["depends_on"][0]
    assert get_repository().repo.head.commit.hexsha == head


@pytest.mark.parametrize("name", ["Churn", "churn-scores", "1churn", "a" * 64, "churn.scores"])
def test_a_table_output_name_must_be_a_warehouse_identifier(api, member, name):
    response = api(member).post("/api/v1/products/", wid_payload(outputs=[{"name": name, "kind": "table"}]),
                                format="json")

    assert response.status_code == 400
    assert "outputs.0.name" in response.json()["errors"], response.json()
    assert not Product.objects.exists()


def test_other_outputs_keep_their_wider_names(api, member):
    body = create(api, member, outputs=[{"name": "Churn-Dashboard.v2", "kind": "dashboard"},
                                        {"name": "churn_scores", "kind": "table"}])
    assert [o["name"] for o in body["outputs"]] == ["Churn-Dashboard.v2", "churn_scores"]


def test_the_index_rebuilt_from_git_keeps_the_approved_version(api, member):
    from onboarding import services

    live = approved(api, member)["version"]
    amend(api, member, live, name="Changed")

    services.index_rebuild()

    product = Product.objects.get()
    assert (product.status, product.approved_version) == ("draft", live)
    assert services.index_check() == []


def test_the_four_eyes_rule_holds_for_amendments(api, member, team, platform):
    create(api, member)
    act(api, member, "submit")
    live = act(api, platform, "approve").json()["version"]
    # The approver then amends the WID as a member of the team: someone else decides on it.
    member_of(team, username="second")
    amend(api, member, live, pii=False, classification="restricted")
    act(api, member, "submit")

    assert act(api, member, "approve").status_code == 403
