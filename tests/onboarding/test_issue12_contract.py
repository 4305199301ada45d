"""Issue 12, onboarding's side: the WID keys runs, freshness and retirement build on, and the
product's life after approval (deprecate, suspend, resume), in git, the index and the API.

Real git and PostgreSQL throughout; the webhook goes to a real HTTP receiver on loopback.
"""
import copy
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from croniter import croniter
from django.core import mail
from django.core.management import call_command

from onboarding import selectors, services, signals, widfile
from onboarding.models import Product
from onboarding.widfile import parse
from onboarding.widrepo import get_repository
from portal.work import deliveries
from portal.work.models import Delivery
from tests.factories import member_of, wid_payload
from tests.http_receiver import Receiver
from tests.onboarding.test_bad_input import Unchanged

pytestmark = pytest.mark.django_db

URL = "/api/v1/products/customer-churn/"
LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}
TOMORROW = (datetime.now(timezone.utc).date() + timedelta(days=1)).isoformat()
SUNSET = (datetime.now(timezone.utc).date() + timedelta(days=90)).isoformat()
# Every new key, set: what the round trips carry.
FULL = {
    "depends_on": ["orders-core"],
    "outputs": [
        {"name": "churn_scores", "kind": "table", "freshness": "24h",
         "checks": {"rows_min": 1, "not_null": ["customer_id", "day"], "unique": ["customer_id"]}},
        {"name": "churn_feed", "kind": "feed", "freshness": "30m"},
        {"name": "churn_board", "kind": "dashboard"},
    ],
    "ingestion": "database_extract",
    "source": {"name": "erp-main", "query": "SELECT id, amount\nFROM sales.orders\nWHERE amount > 0"},
    "schedule": "0 6 * * 1-5",
    "triggers": {"on_file": True, "on_upstream": ["orders-core"]},
}
NEW_KEYS = ("ingestion", "source", "schedule", "triggers", "suspended", "sunset")


@pytest.fixture(autouse=True)
def no_reference_checks(settings):
    """Onboarding's contract on its own: the sources these WIDs name are registered by no one here
    (the register's own check is provisioning's, tests/provisioning/test_sources.py)."""
    settings.WID_REFERENCE_CHECKS = []


def create(api, user, slug="customer-churn", **overrides):
    response = api(user).post("/api/v1/products/", wid_payload(slug=slug, **overrides), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def act(api, user, action, slug="customer-churn", **body):
    return api(user).post(f"/api/v1/products/{slug}/{action}/", body, format="json")


def stored(slug="customer-churn", domain="growth"):
    return parse(get_repository().read(f"wids/{domain}/{slug}.md"))


def text_of(slug="customer-churn", domain="growth") -> str:
    return get_repository().read(f"wids/{domain}/{slug}.md")


def approved(api, user, slug="customer-churn", **overrides):
    create(api, user, slug=slug, **{**LOW_RISK, **overrides})
    body = act(api, user, "submit", slug=slug).json()
    assert body["status"] == "approved", body
    return body


def front_matter_keys(text: str) -> list[str]:
    lines = text.split("\n")
    return [line.split(":")[0] for line in lines[1:lines.index("---", 1)]
            if line and not line.startswith((" ", "-"))]


@pytest.fixture
def upstream(api, member):
    return approved(api, member, slug="orders-core")


# --- the keys: round trips --------------------------------------------------------------------
def test_every_new_key_round_trips_through_the_api_the_git_file_and_rebuild_index(api, member, upstream):
    body = create(api, member, **FULL)

    for key in ("ingestion", "source", "schedule", "triggers", "outputs"):
        assert body[key] == FULL[key], key
    assert (body["suspended"], body["sunset"]) == (False, None)
    meta = stored().meta
    for key in ("ingestion", "source", "schedule", "triggers", "outputs"):
        assert meta[key] == FULL[key], key
    assert "suspended" not in meta and "sunset" not in meta
    assert front_matter_keys(text_of()) == [*widfile.FRONT_MATTER_KEYS, "ingestion", "source", "schedule", "triggers"]

    before = api(member).get(URL).json()
    Product.objects.filter(slug="customer-churn").update(ingestion="none", source=None, schedule=None, triggers=None,
                                                         outputs=[])
    call_command("rebuild_index")

    after = api(member).get(URL).json()
    assert {k: v for k, v in after.items() if k != "next_run"} == {k: v for k, v in before.items() if k != "next_run"}
    assert services.index_check() == []


def test_the_api_gives_the_next_run_of_the_schedule_in_utc(api, member, upstream):
    before = datetime.now(timezone.utc)
    body = create(api, member, **FULL)

    assert body["next_run"].endswith("Z")
    when = datetime.fromisoformat(body["next_run"].replace("Z", "+00:00"))
    assert when == croniter("0 6 * * 1-5", before).get_next(datetime)
    assert (when.hour, when.minute) == (6, 0) and when.weekday() < 5
    listed = api(member).get("/api/v1/products/?team=growth-analytics").json()["results"]
    assert next(p for p in listed if p["slug"] == "customer-churn")["next_run"] == body["next_run"]


def test_a_wid_without_the_new_keys_has_none_of_them_in_its_file_and_defaults_in_the_api(api, member):
    body = create(api, member)

    text = text_of()
    for key in NEW_KEYS:
        assert f"\n{key}:" not in text, key
    assert (body["ingestion"], body["source"], body["schedule"], body["next_run"], body["triggers"],
            body["suspended"], body["sunset"]) == ("none", None, None, None, None, False, None)
    assert "freshness" not in body["outputs"][0] and "checks" not in body["outputs"][0]


def test_a_file_written_before_the_new_keys_parses_and_renders_unchanged(api, member):
    create(api, member)
    text = text_of()
    assert widfile.render(parse(text)) == text


def test_none_and_null_leave_the_keys_out_of_the_file(api, member):
    create(api, member, ingestion="none", source=None, schedule=None, triggers=None)
    meta = stored().meta
    assert not set(NEW_KEYS) & set(meta)


def test_a_patch_sets_changes_and_removes_the_new_keys(api, member, upstream):
    create(api, member)

    response = api(member).patch(URL, {"version": 1, **FULL}, format="json")
    assert response.status_code == 200, response.json()
    assert stored().meta["schedule"] == "0 6 * * 1-5"

    # Objects merge: a query replaces a table only when the table is sent as null.
    response = api(member).patch(URL, {"version": 2, "source": {"table": "sales.orders", "query": None},
                                       "triggers": {"on_file": False}}, format="json")
    assert response.status_code == 200, response.json()
    meta = stored().meta
    assert meta["source"] == {"name": "erp-main", "table": "sales.orders"}
    assert meta["triggers"] == {"on_file": False, "on_upstream": ["orders-core"]}

    response = api(member).patch(URL, {"version": 3, "ingestion": None, "source": None, "schedule": None,
                                       "triggers": None}, format="json")
    assert response.status_code == 200, response.json()
    assert not set(NEW_KEYS) & set(stored().meta)
    assert response.json()["next_run"] is None


def test_a_client_can_send_back_the_whole_object_it_read_with_one_change(api, member, upstream):
    body = create(api, member, **FULL)
    body["name"] = "Churn, nightly"
    body["next_run"] = "2001-01-01T00:00:00Z"  # it moves by itself between the GET and the PATCH

    response = api(member).patch(URL, body, format="json")

    assert response.status_code == 200, response.json()
    assert stored().meta["name"] == "Churn, nightly" and stored().meta["source"] == FULL["source"]


def test_the_portal_set_keys_are_refused_in_a_patch_unless_sent_back_unchanged(api, member, platform):
    approved(api, member)
    version = act(api, platform, "suspend").json()["version"]
    unchanged = Unchanged()

    response = api(member).patch(URL, {"version": version, "suspended": False}, format="json")
    assert response.status_code == 400 and "suspended" in response.json()["errors"]
    response = api(member).post("/api/v1/products/", wid_payload(slug="other-one", sunset=SUNSET), format="json")
    assert response.status_code == 400 and "sunset" in response.json()["errors"]

    unchanged.check()


def test_a_spreadsheet_and_a_file_drop_have_their_own_shapes(api, member):
    create(api, member, ingestion="spreadsheet", source={"name": "finance-share"})
    create(api, member, slug="web-sessions", ingestion="file_drop", triggers={"on_file": True})

    assert stored().meta["source"] == {"name": "finance-share"}
    meta = stored("web-sessions").meta
    assert meta["ingestion"] == "file_drop" and "source" not in meta
    assert meta["triggers"] == {"on_file": True, "on_upstream": []}


def test_a_query_is_stored_as_written_without_its_final_semicolon(api, member):
    query = "-- the open orders\r\nSELECT id, 'a;b' AS note\n  FROM sales.orders ;\n"
    create(api, member, ingestion="database_extract", source={"name": "erp-main", "query": query})
    assert stored().meta["source"]["query"] == "-- the open orders\nSELECT id, 'a;b' AS note\n  FROM sales.orders"


# --- bad input: 400 naming the field, nothing written -------------------------------------------
BAD = [
    # The list.
    ({"schedule": "61 * * * *"}, "schedule"),
    ({"triggers": {"on_upstream": ["orders-core"]}, "depends_on": []}, "triggers.on_upstream"),
    ({"outputs": [{"name": "t", "kind": "table", "freshness": "0"}]}, "outputs.0.freshness"),
    ({"outputs": [{"name": "t", "kind": "table", "freshness": "0h"}]}, "outputs.0.freshness"),
    ({"outputs": [{"name": "t", "kind": "table", "freshness": "366d"}]}, "outputs.0.freshness"),
    ({"outputs": [{"name": "t", "kind": "feed", "freshness": "8761h"}]}, "outputs.0.freshness"),
    ({"outputs": [{"name": "t", "kind": "table", "checks": {"not_null": ["a", "b", "a"]}}]}, "outputs.0.checks"),
    ({"outputs": [{"name": "t", "kind": "table", "checks": {"unique": ["id", "id"]}}]}, "outputs.0.checks"),
    # Schedules.
    ({"schedule": "0 6 * *"}, "schedule"),
    ({"schedule": "0 6 * * * *"}, "schedule"),
    ({"schedule": "@daily"}, "schedule"),
    ({"schedule": "0 0 31 2 *"}, "schedule"),
    ({"schedule": "0 6 * * *\n"}, "schedule"),
    ({"schedule": 6}, "schedule"),
    # Triggers.
    ({"triggers": {"on_upstream": ["orders-core", "orders-core"]}, "depends_on": ["orders-core"]},
     "triggers.on_upstream"),
    ({"triggers": {"on_file": "yes"}}, "triggers.on_file"),
    ({"triggers": {"on_upstream": ["Not A Slug"]}}, "triggers.on_upstream.0"),
    ({"triggers": ["orders-core"]}, "triggers"),
    # Outputs.
    ({"outputs": [{"name": "t", "kind": "table", "freshness": "24x"}]}, "outputs.0.freshness"),
    ({"outputs": [{"name": "t", "kind": "table", "freshness": "525601m"}]}, "outputs.0.freshness"),
    ({"outputs": [{"name": "t", "kind": "table", "freshness": 24}]}, "outputs.0.freshness"),
    ({"outputs": [{"name": "board", "kind": "dashboard", "freshness": "1h"}]}, "outputs.0.freshness"),
    ({"outputs": [{"name": "api", "kind": "api", "checks": {"rows_min": 1}}]}, "outputs.0.checks"),
    ({"outputs": [{"name": "t", "kind": "table", "checks": {"rows_min": -1}}]}, "outputs.0.checks.rows_min"),
    ({"outputs": [{"name": "t", "kind": "table", "checks": {"rows_min": "1"}}]}, "outputs.0.checks.rows_min"),
    ({"outputs": [{"name": "t", "kind": "table", "checks": {"rows_min": True}}]}, "outputs.0.checks.rows_min"),
    ({"outputs": [{"name": "t", "kind": "table", "checks": {"not_null": ["Id"]}}]}, "outputs.0.checks.not_null.0"),
    ({"outputs": [{"name": "t", "kind": "table", "checks": {"unique": ["a;drop"]}}]}, "outputs.0.checks.unique.0"),
    ({"outputs": [{"name": "t", "kind": "table", "checks": {"rows": 1}}]}, "outputs.0.checks.rows"),
    # Ingestion and its source.
    ({"ingestion": "ftp"}, "ingestion"),
    ({"ingestion": "database_extract"}, "source"),
    ({"ingestion": "spreadsheet"}, "source"),
    ({"ingestion": "file_drop", "source": {"name": "erp-main"}}, "source"),
    ({"source": {"name": "erp-main", "table": "sales.orders"}}, "source"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main"}}, "source"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "table": "a.b", "query": "select 1"}}, "source"),
    ({"ingestion": "spreadsheet", "source": {"name": "share", "table": "a.b"}}, "source.table"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "table": "orders"}}, "source.table"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "table": "a.b.c"}}, "source.table"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "table": "Sales.orders"}}, "source.table"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "table": "a.b\n"}}, "source.table"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "query": "DELETE FROM sales.orders"}},
     "source.query"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "query": "SELECT 1; DROP TABLE x"}},
     "source.query"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "query": "SELECT * INTO copy FROM x"}},
     "source.query"),
    ({"ingestion": "database_extract",
      "source": {"name": "erp-main", "query": "WITH d AS (DELETE FROM x RETURNING *) SELECT * FROM d"}}, "source.query"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "query": "SELECT 1 " + "x" * 10_000}},
     "source.query"),
    ({"ingestion": "database_extract", "source": {"name": "erp-main", "query": "SELECT '\x00'"}}, "source.query"),
    ({"ingestion": "database_extract", "source": {"name": "../etc", "table": "a.b"}}, "source.name"),
    # No path or connection string is ever part of a WID.
    ({"ingestion": "spreadsheet", "source": {"name": "share", "path": "/etc/passwd"}}, "source.path"),
    ({"ingestion": "database_extract",
      "source": {"name": "erp", "table": "a.b", "dsn": "postgres://u:p@host/db"}}, "source.dsn"),
    ({"ingestion": "spreadsheet", "source": "/mnt/share/finance"}, "source"),
]


@pytest.mark.parametrize("change, error_key", BAD)
def test_a_bad_create_answers_400_naming_the_field_and_writes_nothing(api, member, change, error_key):
    create(api, member, slug="orders-core")
    unchanged = Unchanged()

    response = api(member).post("/api/v1/products/", {**wid_payload(), **copy.deepcopy(change)}, format="json")

    assert response.status_code == 400, response.json()
    assert error_key in response.json()["errors"], response.json()
    unchanged.check()


@pytest.mark.parametrize("change, error_key", BAD)
def test_a_bad_patch_answers_400_naming_the_field_and_writes_nothing(api, member, change, error_key):
    create(api, member)
    unchanged = Unchanged()

    response = api(member).patch(URL, {"version": 1, **copy.deepcopy(change)}, format="json")

    assert response.status_code == 400, response.json()
    assert error_key in response.json()["errors"], response.json()
    unchanged.check()


def test_every_bad_new_field_of_one_request_is_named_at_once(api, member):
    create(api, member, slug="orders-core")
    unchanged = Unchanged()
    body = wid_payload(schedule="nope", triggers={"on_file": 1},
                       outputs=[{"name": "t", "kind": "table", "freshness": "0m", "checks": {"rows_min": -5}}])

    errors = api(member).post("/api/v1/products/", body, format="json").json()["errors"]

    assert {"schedule", "triggers.on_file", "outputs.0.freshness", "outputs.0.checks.rows_min"} <= set(errors)
    unchanged.check()


# --- checks other apps plug in -------------------------------------------------------------------
REGISTERED = {"erp-main"}


def only_registered_sources(cleaned: dict) -> dict[str, list[str]]:
    source = cleaned.get("source")
    if source and source["name"] not in REGISTERED:
        return {"source.name": [f"No source {source['name']!r} is registered."]}
    return {}


def test_a_plugged_in_reference_check_refuses_a_save_naming_the_field(api, member, settings):
    settings.WID_REFERENCE_CHECKS = ["tests.onboarding.test_issue12_contract.only_registered_sources"]
    create(api, member, slug="orders-core")
    unchanged = Unchanged()

    response = api(member).post("/api/v1/products/", wid_payload(
        ingestion="spreadsheet", source={"name": "unknown-share"}), format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"source.name": ["No source 'unknown-share' is registered."]}
    unchanged.check()
    create(api, member, ingestion="spreadsheet", source={"name": "erp-main"})


def test_a_plugged_in_reference_check_runs_again_at_submit(api, member, settings, monkeypatch):
    settings.WID_REFERENCE_CHECKS = ["tests.onboarding.test_issue12_contract.only_registered_sources"]
    create(api, member, ingestion="spreadsheet", source={"name": "erp-main"})
    monkeypatch.setattr("tests.onboarding.test_issue12_contract.REGISTERED", set())  # unregistered since
    unchanged = Unchanged()

    response = act(api, member, "submit")

    assert response.status_code == 400 and "source.name" in response.json()["errors"]
    unchanged.check()


# --- deprecate -----------------------------------------------------------------------------------
def test_the_owning_team_deprecates_an_approved_product_in_one_commit(api, member, platform):
    body = approved(api, member)
    head = get_repository().head()

    response = act(api, member, "deprecate", sunset=SUNSET, comment="Replaced by churn-v2.")

    assert response.status_code == 200, response.json()
    after = response.json()
    assert (after["status"], after["sunset"], after["version"]) == ("deprecated", SUNSET, body["version"] + 1)
    assert after["approved_version"] == body["approved_version"]
    assert after["decided_at"] == body["decided_at"] and after["submitted_at"] == body["submitted_at"]
    assert after["review_log"][-1]["action"] == "deprecated"
    assert after["review_log"][-1]["comment"] == "Replaced by churn-v2."
    meta = stored().meta
    assert (meta["status"], meta["sunset"]) == ("deprecated", date.fromisoformat(SUNSET))
    assert f"\nsunset: {SUNSET}\n" in text_of()
    commits = list(get_repository().repo.iter_commits(f"{head}..HEAD"))
    assert [c.message for c in commits] == ["Deprecate customer-churn: Replaced by churn-v2."]
    assert commits[0].author.name == "Alice Analyst"


def test_the_platform_deprecates_too(api, member, platform):
    approved(api, member)
    assert act(api, platform, "deprecate", sunset=SUNSET).json()["status"] == "deprecated"


def test_someone_outside_the_owning_team_cannot_deprecate(api, member, outsider):
    approved(api, member)
    unchanged = Unchanged()

    response = act(api, outsider, "deprecate", sunset=SUNSET, comment="mine now")

    assert response.status_code == 403
    unchanged.check()


@pytest.mark.parametrize("body", [
    {"sunset": (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()},
    {"sunset": datetime.now(timezone.utc).date().isoformat()},
    {"sunset": "2020-02-30"},
    {"sunset": "next week"},
    {"sunset": f"{TOMORROW}T00:00:00Z"},
    {"sunset": None},
    {"sunset": 20300101},
    {"comment": "no date"},
])
def test_a_sunset_that_is_missing_malformed_or_not_in_the_future_answers_400_and_writes_nothing(
        api, member, body):
    approved(api, member)
    unchanged = Unchanged()

    response = act(api, member, "deprecate", **body)

    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == ["sunset"]
    unchanged.check()


def test_tomorrow_is_the_first_sunset_allowed(api, member):
    approved(api, member)
    assert act(api, member, "deprecate", sunset=TOMORROW).status_code == 200


def test_only_an_approved_product_with_no_open_amendment_is_deprecated(api, member):
    create(api, member, slug="draft-only")
    body = approved(api, member)
    api(member).patch(URL, {"version": body["version"], "name": "Renamed"}, format="json")  # an amendment
    unchanged = Unchanged()

    for slug in ("draft-only", "customer-churn"):
        response = act(api, member, "deprecate", slug=slug, sunset=SUNSET)
        assert response.status_code == 409, response.json()
    assert "amendment is open" in response.json()["detail"]
    unchanged.check()


def test_a_deprecated_product_takes_no_amendment(api, member):
    approved(api, member)
    version = act(api, member, "deprecate", sunset=SUNSET).json()["version"]
    unchanged = Unchanged()

    response = api(member).patch(URL, {"version": version, "name": "One more change"}, format="json")

    assert response.status_code == 409 and "deprecated" in response.json()["detail"]
    assert act(api, member, "deprecate", sunset=SUNSET).status_code == 409  # nor a second deprecation
    unchanged.check()


def test_a_deprecated_product_takes_no_new_dependant_but_keeps_the_old_ones(api, member):
    approved(api, member, slug="orders-core")
    create(api, member, slug="old-reader", depends_on=["orders-core"])
    create(api, member, slug="new-reader")
    act(api, member, "deprecate", slug="orders-core", sunset=SUNSET)
    unchanged = Unchanged()

    created = api(member).post("/api/v1/products/", wid_payload(slug="another-reader", depends_on=["orders-core"]),
                               format="json")
    added = api(member).patch("/api/v1/products/new-reader/", {"version": 1, "depends_on": ["orders-core"]},
                              format="json")

    for response in (created, added):
        assert response.status_code == 400 and list(response.json()["errors"]) == ["depends_on"], response.json()
        assert "Deprecated products take no new readers: orders-core" in response.json()["errors"]["depends_on"][0]
    unchanged.check()
    kept = api(member).patch("/api/v1/products/old-reader/", {"version": 1, "name": "Still reading"}, format="json")
    assert kept.status_code == 200, kept.json()
    assert act(api, member, "submit", slug="old-reader").status_code == 200


def test_a_deprecated_product_is_retired_by_its_destroy(api, member, platform):
    approved(api, member)
    act(api, member, "deprecate", sunset=SUNSET)

    product = services.wid_retire(user=platform, slug="customer-churn", comment="Decommissioned by destroy job #1.")

    assert product.status == "retired"
    assert stored().meta["sunset"] == date.fromisoformat(SUNSET)


def test_provisioning_keeps_running_jobs_and_the_destroy_of_a_deprecated_product(api, member):
    from provisioning import services as provisioning

    approved(api, member)
    act(api, member, "deprecate", sunset=SUNSET)
    product = Product.objects.get(slug="customer-churn")

    assert provisioning.is_live(product)
    for action in ("plan", "apply", "destroy"):
        provisioning._check_startable(product, action)  # raises Conflict when refused
    assert provisioning.live_meta(product)["outputs"] == product.outputs


def test_deprecation_sends_its_signal_with_plain_values(api, member):
    heard = []

    def listener(signal, sender, **kwargs):
        heard.append(kwargs)

    signals.wid_deprecated.connect(listener, weak=False, dispatch_uid="test-deprecated")
    try:
        approved(api, member)
        body = act(api, member, "deprecate", sunset=SUNSET, comment="Going.").json()
    finally:
        signals.wid_deprecated.disconnect(dispatch_uid="test-deprecated")

    assert heard == [{"slug": "customer-churn", "version": body["version"], "actor": "alice", "comment": "Going.",
                      "sunset": date.fromisoformat(SUNSET)}]


def test_deprecation_e_mails_every_consuming_team_through_the_outbox(api, member, other_team, outsider):
    approved(api, member, slug="orders-core")
    create(api, member, slug="team-reader", depends_on=["orders-core"])
    create(api, outsider, slug="finance-reader", domain="finance", team="finance-data", depends_on=["orders-core"],
           contacts={"business": {"name": "Fay", "email": "fay@example.com"},
                     "technical": {"name": "Ted", "email": "ted@example.com"}})
    member_of(other_team, username="fiona", email="fiona@example.com")
    Delivery.objects.all().delete()

    act(api, member, "deprecate", slug="orders-core", sunset=SUNSET, comment="Use orders-v2 <now>.")

    [to_consumers] = [d for d in Delivery.objects.filter(channel="email") if "fiona@example.com" in d.recipients]
    assert to_consumers.event == "wid.deprecated"
    assert {"alice@example.com", "oscar@example.com", "fiona@example.com", "fay@example.com",
            "ted@example.com"} <= set(to_consumers.recipients)
    mail.outbox.clear()
    assert deliveries.deliver(to_consumers.pk) == "delivered"
    [message] = mail.outbox
    assert message.subject == f"[orders-core] deprecated: it goes on {SUNSET}, and your products read it"
    assert "finance-reader" in message.body and "team-reader" in message.body
    assert "Use orders-v2 <now>." in message.body  # plain text: nothing escaped


def test_a_deprecation_without_consumers_e_mails_only_the_products_own_people(api, member):
    approved(api, member)
    Delivery.objects.all().delete()

    act(api, member, "deprecate", sunset=SUNSET)

    [email] = Delivery.objects.filter(channel="email")
    assert set(email.recipients) == {"maria@example.com", "tom@example.com", "carla@example.com"}


@pytest.fixture
def receiver(settings):
    server = Receiver()
    settings.NOTIFY_WEBHOOK_URL = server.url
    settings.NOTIFY_WEBHOOK_SECRET = "a-shared-secret-of-some-length"
    yield server
    server.close()


def test_deprecate_suspend_and_resume_are_webhook_events_naming_the_consuming_teams(
        api, member, platform, outsider, receiver):
    approved(api, member, slug="orders-core")
    create(api, outsider, slug="finance-reader", domain="finance", team="finance-data", depends_on=["orders-core"])
    Delivery.objects.all().delete()

    act(api, member, "deprecate", slug="orders-core", sunset=SUNSET, comment="Going.")
    act(api, platform, "suspend", slug="orders-core", comment="Who screams?")
    act(api, platform, "resume", slug="orders-core")

    rows = list(Delivery.objects.filter(channel="webhook").order_by("id"))
    assert [d.event for d in rows] == ["wid.deprecated", "wid.suspended", "wid.resumed"]
    for row in rows:
        assert deliveries.deliver(row.pk) == "delivered"
    documents = [json.loads(r["body"]) for r in receiver.requests]
    deprecated, suspended, resumed = (d["data"] for d in documents)
    assert deprecated["sunset"] == SUNSET and deprecated["actor"] == "alice" and deprecated["comment"] == "Going."
    assert deprecated["consumers"] == [{"team": "finance-data", "products": ["finance-reader"]}]
    assert deprecated["product"]["status"] == "deprecated" and deprecated["product"]["sunset"] == SUNSET
    assert suspended["product"]["suspended"] is True and suspended["actor"] == "priya"
    assert suspended["comment"] == "Who screams?" and suspended["consumers"] == deprecated["consumers"]
    assert resumed["product"]["suspended"] is False


# --- suspend and resume --------------------------------------------------------------------------
def test_the_platform_suspends_and_resumes_without_touching_status_or_decision_dates(api, member, platform):
    body = approved(api, member)

    suspended = act(api, platform, "suspend", comment="Did anyone scream?").json()

    assert suspended["suspended"] is True
    for key in ("status", "approved_version", "submitted_at", "decided_at"):
        assert suspended[key] == body[key], key
    assert suspended["review_log"][-1]["action"] == "suspended"
    assert stored().meta["suspended"] is True and stored().meta["status"] == "approved"
    assert get_repository().repo.head.commit.message == "Suspend customer-churn: Did anyone scream?"

    resumed = act(api, platform, "resume").json()

    assert resumed["suspended"] is False and resumed["status"] == "approved"
    assert resumed["decided_at"] == body["decided_at"]
    assert "suspended" not in stored().meta and "\nsuspended:" not in text_of()
    assert [e["action"] for e in resumed["review_log"]][-2:] == ["suspended", "resumed"]


def test_suspension_survives_rebuild_index(api, member, platform):
    approved(api, member)
    act(api, platform, "suspend")
    act(api, member, "deprecate", sunset=SUNSET)
    Product.objects.filter(slug="customer-churn").update(suspended=False, sunset=None, status="approved")

    call_command("rebuild_index")

    product = Product.objects.get(slug="customer-churn")
    assert (product.suspended, product.sunset, product.status) == (True, date.fromisoformat(SUNSET), "deprecated")
    assert services.index_check() == []


@pytest.mark.parametrize("action", ["suspend", "resume"])
def test_only_the_platform_suspends_and_resumes(api, member, owner, outsider, platform, action):
    approved(api, member)
    if action == "resume":
        act(api, platform, "suspend")
    unchanged = Unchanged()

    for user in (member, owner, outsider):
        assert act(api, user, action).status_code == 403
    unchanged.check()


def test_suspending_twice_resuming_what_is_not_suspended_or_a_product_never_approved_is_a_conflict(
        api, member, platform):
    create(api, member, slug="draft-only")
    approved(api, member)
    unchanged = Unchanged()

    assert act(api, platform, "resume").status_code == 409
    assert act(api, platform, "suspend", slug="draft-only").status_code == 409
    unchanged.check()
    act(api, platform, "suspend")
    assert act(api, platform, "suspend").status_code == 409


def test_a_suspension_outlasts_an_amendment_its_withdrawal_and_its_approval(api, member, platform):
    body = approved(api, member)
    amended = api(member).patch(URL, {"version": body["version"], "compute_tier": "medium"}, format="json").json()

    suspended = act(api, platform, "suspend").json()  # the live version runs, so it can be suspended
    assert (suspended["status"], suspended["suspended"]) == ("draft", True)
    edited = api(member).patch(URL, {"version": suspended["version"], "name": "Renamed"}, format="json").json()
    assert edited["suspended"] is True
    withdrawn = act(api, member, "withdraw").json()
    assert (withdrawn["status"], withdrawn["suspended"], withdrawn["compute_tier"]) == ("approved", True, "small")
    again = api(member).patch(URL, {"version": withdrawn["version"], "compute_tier": "medium"}, format="json").json()
    decided = act(api, member, "submit").json()
    assert (decided["status"], decided["suspended"]) == ("approved", True)
    assert amended["version"] < again["version"]


def test_a_platform_member_who_suspended_during_an_amendment_may_still_decide_it(api, member, platform):
    create(api, member)  # confidential: a person decides
    act(api, member, "submit")
    live = act(api, platform, "approve").json()["version"]
    api(member).patch(URL, {"version": live, "classification": "restricted"}, format="json")
    act(api, platform, "suspend")
    act(api, member, "submit")

    product = Product.objects.get(slug="customer-churn")
    assert selectors.user_may_decide(platform, product) is None
    assert act(api, platform, "approve").json()["status"] == "approved"


def test_a_suspension_after_a_withdrawn_amendment_keeps_the_approved_versions_dates(api, member, platform):
    body = approved(api, member)
    api(member).patch(URL, {"version": body["version"], "classification": "restricted"}, format="json")
    assert act(api, member, "submit").json()["status"] == "submitted"  # a person decides: dates would move
    withdrawn = act(api, member, "withdraw").json()

    suspended = act(api, platform, "suspend").json()

    assert (suspended["submitted_at"], suspended["decided_at"]) == (body["submitted_at"], body["decided_at"])
    assert (withdrawn["submitted_at"], withdrawn["decided_at"]) == (body["submitted_at"], body["decided_at"])
    assert services.index_check() == []


def test_a_deprecated_product_can_be_suspended_and_a_retired_one_loses_its_suspension(api, member, platform):
    approved(api, member)
    act(api, member, "deprecate", sunset=SUNSET)
    assert act(api, platform, "suspend").json()["status"] == "deprecated"

    services.wid_retire(user=platform, slug="customer-churn", comment="Destroyed.")

    assert "suspended" not in stored().meta
    assert act(api, platform, "resume").status_code == 409


HOSTILE_COMMENT = ("Going.\n---\nstatus: approved\nsuspended: false\n## Review log\n"
                   "- 2020-01-01T00:00:00Z **approved** by @mallory (M)\n<script>alert(1)</script> `$(rm -rf /)` \u202e")


@pytest.mark.parametrize("action", ["deprecate", "suspend"])
def test_hostile_text_in_a_comment_is_stored_verbatim_and_changes_nothing_else(api, member, platform, action):
    approved(api, member)
    user = member if action == "deprecate" else platform
    extra = {"sunset": SUNSET} if action == "deprecate" else {}

    response = act(api, user, action, comment=HOSTILE_COMMENT, **extra)

    assert response.status_code == 200, response.json()
    doc = stored()
    assert doc.reviews[-1].comment == HOSTILE_COMMENT
    assert [r.action for r in doc.reviews][-1] == {"deprecate": "deprecated", "suspend": "suspended"}[action]
    assert doc.meta["status"] == ("deprecated" if action == "deprecate" else "approved")
    assert doc.meta.get("suspended", False) is (action == "suspend")
    subject = get_repository().repo.head.commit.message
    assert "\n" not in subject and "\u202e" not in subject
    assert services.index_check() == []


# --- the pages -----------------------------------------------------------------------------------
def test_the_product_page_shows_the_new_keys_and_the_banners(client, api, member, platform, upstream):
    create(api, member, **FULL)
    act(api, member, "deprecate", slug="orders-core", sunset=SUNSET, comment="Use <orders-v2>.")
    act(api, platform, "suspend", slug="orders-core")
    client.force_login(member)

    reader = client.get("/products/customer-churn/").content.decode()
    producer = client.get("/products/orders-core/").content.decode()

    assert "erp-main" in reader and "0 6 * * 1-5" in reader and "fresh within 24h" in reader
    assert "no NULL in customer_id, day" in reader and "when a file arrives" in reader
    assert f"deprecated, sunset {SUNSET}" in reader and "suspended</strong>" in reader
    assert "Use &lt;orders-v2&gt;." in reader and "<orders-v2>" not in reader
    assert f"Deprecated: sunset {SUNSET}." in producer and 'id="lifecycle-notice"' in producer
    assert 'id="deprecate"' not in producer  # already deprecated
    client.force_login(platform)
    assert "Resume</button>" in client.get("/products/orders-core/").content.decode()


def test_the_page_forms_deprecate_suspend_and_resume(client, api, member, platform):
    approved(api, member)
    client.force_login(member)
    page = client.get("/products/customer-churn/").content.decode()
    assert 'id="deprecate"' in page and 'id="suspension"' not in page

    response = client.post("/products/customer-churn/deprecate/", {"sunset": "2001-01-01", "comment": "x"},
                           follow=True)
    assert "A date after today" in response.content.decode()
    assert Product.objects.get().status == "approved"
    client.post("/products/customer-churn/deprecate/", {"sunset": SUNSET, "comment": "Going."})
    assert Product.objects.get().status == "deprecated"

    client.force_login(platform)
    assert "Suspend</button>" in client.get("/products/customer-churn/").content.decode()
    client.post("/products/customer-churn/suspend/", {"comment": "scream test"})
    assert Product.objects.get().suspended
    client.post("/products/customer-churn/resume/", {"comment": ""})
    assert not Product.objects.get().suspended


def test_the_wid_form_edits_the_new_keys(client, api, member, upstream):
    create(api, member, **FULL)
    client.force_login(member)
    form = client.get("/products/customer-churn/edit/").context["form"]
    assert form["outputs"].value().split("\n")[0] == (
        "churn_scores: table; freshness 24h; rows_min 1; not_null customer_id, day; unique customer_id")
    initial = {name: form[name].value() for name in form.fields}
    assert (initial["ingestion"], initial["source_name"], initial["schedule"], initial["triggers_on_upstream"]) == (
        "database_extract", "erp-main", "0 6 * * 1-5", "orders-core")

    post = {name: ("on" if value is True else "" if value in (None, False) else value)
            for name, value in initial.items() if name not in ("slug", "domain")}
    post.update(schedule="30 7 * * *", source_query="", source_table="sales.orders",
                outputs="churn_scores: table; freshness 2d; unique customer_id\nchurn_board: dashboard")
    response = client.post("/products/customer-churn/edit/", post)

    assert response.status_code == 302, response.context["form"].errors
    meta = stored().meta
    assert meta["schedule"] == "30 7 * * *" and meta["source"] == {"name": "erp-main", "table": "sales.orders"}
    assert meta["outputs"][0] == {"name": "churn_scores", "kind": "table", "freshness": "2d",
                                  "checks": {"unique": ["customer_id"]}}


@pytest.mark.parametrize("field, value, message", [
    ("schedule", "61 * * * *", "not a valid cron expression"),
    ("triggers_on_upstream", "web-sessions", "add web-sessions to depends_on"),
    ("outputs", "t: table; freshness 0h", "Line 1 (freshness)"),
    ("outputs", "t: table; fresh 1h", "'fresh' is not an option"),
    ("source_name", "erp-main", "Only a database_extract or a spreadsheet"),
])
def test_the_wid_form_names_the_bad_field(client, api, member, field, value, message):
    create(api, member)
    client.force_login(member)
    form = client.get("/products/customer-churn/edit/").context["form"]
    post = {name: ("on" if v is True else "" if v in (None, False) else v)
            for name, v in ((n, form[n].value()) for n in form.fields) if name not in ("slug", "domain")}
    post[field] = value
    head = get_repository().head()

    response = client.post("/products/customer-churn/edit/", post)

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert any(message in error for error in errors.get(field, [])), errors
    assert get_repository().head() == head


# --- the sunset --------------------------------------------------------------------------------------
def test_at_its_sunset_a_deprecated_product_is_suspended_by_the_portal_once_and_not_again_after_a_resume(
        api, member, platform):
    approved(api, member)
    act(api, member, "deprecate", sunset=SUNSET)
    sunset = date.fromisoformat(SUNSET)
    head = get_repository().head()

    assert services.suspend_at_sunset(today=sunset - timedelta(days=1)) == []  # not yet
    assert get_repository().head() == head

    assert services.suspend_at_sunset(today=sunset) == ["customer-churn"]
    doc = stored()
    assert doc.meta["suspended"] is True and doc.meta["status"] == "deprecated"
    entry = doc.reviews[-1]
    assert (entry.action, entry.actor) == ("suspended", "")  # the portal's own act, not a person's
    assert f"Sunset date {SUNSET} reached" in entry.comment
    assert Product.objects.get(slug="customer-churn").suspended is True
    assert services.suspend_at_sunset(today=sunset + timedelta(days=1)) == []  # once

    # The platform resumed it after a scream: the sunset does not switch it off again.
    act(api, platform, "resume", comment="Finance still reads it.")
    head = get_repository().head()
    assert services.suspend_at_sunset(today=sunset + timedelta(days=2)) == []
    assert get_repository().head() == head and "suspended" not in stored().meta


def test_the_sunset_leaves_products_that_are_not_deprecated_alone(api, member, platform):
    approved(api, member)
    approved(api, member, slug="other-one")
    act(api, member, "deprecate", slug="other-one", sunset=SUNSET)
    Product.objects.filter(slug="other-one").update(status="approved")  # an index behind its file: git decides
    head = get_repository().head()

    assert services.suspend_at_sunset(today=date.fromisoformat(SUNSET) + timedelta(days=400)) == []
    assert get_repository().head() == head
