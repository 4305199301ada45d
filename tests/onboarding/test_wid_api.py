import pytest
from django.core.management import call_command

from onboarding.models import Product, ReviewEvent
from onboarding.widfile import parse
from onboarding.widrepo import get_repository
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db


def create(api, user, **overrides):
    return api(user).post("/api/v1/products/", wid_payload(**overrides), format="json")


def test_it_creates_a_draft_wid_as_one_commit_by_its_author(api, member):
    response = create(api, member)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "draft"
    assert body["version"] == 1
    assert body["path"] == "wids/growth/customer-churn.md"
    commit = get_repository().repo.head.commit
    assert commit.message == "Create customer-churn"
    assert (commit.author.name, commit.author.email) == ("Alice Analyst", "alice@example.com")
    assert list(commit.stats.files) == ["wids/growth/customer-churn.md"]


def test_the_markdown_endpoint_returns_the_file_as_stored_in_git(api, member):
    create(api, member)

    response = api(member).get("/api/v1/products/customer-churn/markdown/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    stored = get_repository().repo.git.show("HEAD:wids/growth/customer-churn.md")
    assert response.content.decode() == stored + "\n"
    doc = parse(response.content.decode())
    assert doc.meta["slug"] == "customer-churn" and doc.meta["version"] == 1
    assert doc.sections["architecture"] == "Nightly batch from `raw/` to `curated/`."


def test_patch_with_the_current_version_saves_a_new_version(api, member):
    create(api, member)

    response = api(member).patch(
        "/api/v1/products/customer-churn/",
        {"version": 1, "name": "Churn insights", "sections": {"architecture": "Streaming now."}},
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    assert response.json()["name"] == "Churn insights"
    assert response.json()["sections"]["architecture"] == "Streaming now."
    assert response.json()["sections"]["value_proposition"] == "Predict churn so retention can act."
    assert get_repository().repo.head.commit.message == "Update customer-churn"


def test_patch_with_a_stale_version_answers_409_and_changes_nothing(api, member):
    create(api, member)
    api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Second"}, format="json")
    head = get_repository().head()

    response = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Third"}, format="json")

    assert response.status_code == 409
    assert "version" in response.json()["errors"]
    assert get_repository().head() == head
    assert Product.objects.get().name == "Second"


def test_patch_without_a_version_is_refused(api, member):
    create(api, member)

    response = api(member).patch("/api/v1/products/customer-churn/", {"name": "x"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["version"]


def test_a_patch_that_changes_nothing_makes_no_commit(api, member):
    create(api, member)
    head = get_repository().head()

    response = api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Customer churn insights"},
                                 format="json")

    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert get_repository().head() == head


def test_history_lists_every_commit_with_its_version(api, member):
    create(api, member)
    api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Second"}, format="json")
    api(member).post("/api/v1/products/customer-churn/submit/", {"comment": "please"}, format="json")

    history = api(member).get("/api/v1/products/customer-churn/history/").json()

    assert [(h["version"], h["message"]) for h in history] == [
        (3, "Submit customer-churn: please"), (2, "Update customer-churn"), (1, "Create customer-churn"),
    ]
    assert all(h["author"] == "Alice Analyst" for h in history)


def test_the_product_list_filters_by_team_domain_and_status(api, member, outsider, other_team):
    create(api, member)
    create(api, member, slug="growth-two")
    create(api, outsider, slug="ledger", team="finance-data", domain="finance")
    api(member).post("/api/v1/products/growth-two/submit/", format="json")

    def slugs(query):
        return sorted(p["slug"] for p in api(member).get(f"/api/v1/products/?{query}").json()["results"])

    assert slugs("") == ["customer-churn", "growth-two", "ledger"]
    assert slugs("team=finance-data") == ["ledger"]
    assert slugs("domain=growth") == ["customer-churn", "growth-two"]
    assert slugs("status=submitted") == ["growth-two"]


def test_rebuild_index_recreates_products_statuses_versions_and_review_logs(api, member, platform):
    create(api, member)
    create(api, member, slug="low-risk", classification="internal", pii=False)
    create(api, member, slug="to-reject")
    api(member).patch("/api/v1/products/customer-churn/", {"version": 1, "name": "Renamed"}, format="json")
    api(member).post("/api/v1/products/customer-churn/submit/", {"comment": "multi\nline *comment*"}, format="json")
    api(platform).post("/api/v1/products/customer-churn/request-changes/", {"comment": "More detail"}, format="json")
    api(member).post("/api/v1/products/low-risk/submit/", format="json")
    api(member).post("/api/v1/products/to-reject/submit/", format="json")
    api(platform).post("/api/v1/products/to-reject/reject/", {"comment": "No <b>thanks</b>"}, format="json")

    def snapshot():
        products = list(Product.objects.order_by("slug").values())
        events = list(ReviewEvent.objects.order_by("product__slug", "position").values(
            "product__slug", "position", "action", "actor", "actor_name", "comment", "at"))
        for p in products:
            p.pop("id")
            p.pop("team_id")
        return products, events

    before = snapshot()
    ReviewEvent.objects.all().delete()
    Product.objects.all().delete()
    assert Product.objects.count() == 0

    call_command("rebuild_index")

    assert snapshot() == before
    assert len(before[0]) == 3 and len(before[1]) == 6
