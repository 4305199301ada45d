"""Freshness and quality (provisioning/health.py, docs/adr/0023): what the worker measures after a run,
against the real test warehouse and real files; staleness under a frozen clock; alerts once per change.

The products here are index rows whose approved version is their current one (the health module
reads their ports from the index then), so no test needs git except the site's.
"""
import os
import runpy
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.test import RequestFactory
from django.utils import timezone
from psycopg import sql
from psycopg.conninfo import make_conninfo

from onboarding.models import Product
from portal.work.models import Delivery
from provisioning import health, usage, views
from provisioning.models import PortMeasurement, ProductHealth, Provisioning, Run
from provisioning.rendering import published_schema
from provisioning.selectors import status_summaries
from tests.factories import member_of, wid_payload

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
T0 = timezone.now().replace(microsecond=0) - timedelta(days=3)


@pytest.fixture(scope="module")
def admin():
    """The warehouse's admin login, as the local provider uses it (the worker measures with it too)."""
    runpy.run_path(str(ROOT / "scripts" / "services.py"))["ensure_warehouse"]()
    password = Path(settings.WAREHOUSE_ADMIN_PASSWORD_FILE).read_text().strip()
    conninfo = make_conninfo(host="127.0.0.1", port=settings.WAREHOUSE_PORT, dbname=settings.WAREHOUSE_DATABASE,
                             user="warehouse_admin", password=password)
    return lambda: psycopg.connect(conninfo, autocommit=True)


@pytest.fixture
def published(admin):
    """A product slug whose published schema exists in the warehouse (dropped afterwards)."""
    slug = f"health-{uuid.uuid4().hex[:8]}"
    schema = sql.Identifier(published_schema(slug))
    with admin() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    yield slug
    with admin() as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


def write(admin, slug: str, statement: str, params=()) -> None:
    """A write as a pipeline makes it: its own connection, whose statistics reach the warehouse's
    counters when it goes idle (forced: a test writes twice within the second PostgreSQL waits)."""
    with admin() as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute(sql.SQL(statement).format(t=sql.Identifier(published_schema(slug), "facts")), params)


@pytest.fixture
def webhook(settings, monkeypatch):
    """Webhooks and e-mails are recorded in the outbox; nothing is sent."""
    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.NOTIFY_WEBHOOK_SECRET = "a-shared-secret-of-some-length"
    monkeypatch.setattr("portal.work.dispatch.send", lambda *args, **kwargs: True)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    frozen = Clock(T0)
    monkeypatch.setattr(health, "_now", frozen)
    return frozen


def make_product(team, slug, outputs, *, provisioned_at=T0) -> Product:
    product = Product.objects.create(
        slug=slug, name=slug.title(), domain="growth", team=team, status="approved", version=2, approved_version=2,
        target="local", classification="internal", pii=False, compute_tier="small",
        contacts={"business": {"name": "Maria", "email": "maria@example.com"},
                  "technical": {"name": "Tom", "email": "tom@example.com"}},
        data_custodian={}, depends_on=[], outputs=outputs, sections={}, path=f"wids/growth/{slug}.md",
        head_sha="0" * 40, created_at=T0 - timedelta(days=1), updated_at=T0 - timedelta(days=1))
    Provisioning.objects.create(product=product, provisioned=True, provisioned_at=provisioned_at)
    # The product page's usage table reads the approved version's outputs from git, which these
    # index-only products lack: its cache is given them.
    usage._LIVE_OUTPUTS[(product.pk, product.approved_version, 0)] = list(outputs)
    return product


def ended(product, status="succeeded", at=None, error="") -> Run:
    at = at or health._now()
    return Run.objects.create(product=product, status=status, queue=f"runs.{product.slug}", started_at=at,
                              finished_at=at, error=error, exit_code=0 if status == "succeeded" else 1)


def measured(run, name="facts", kind="table", *, updated_at=None, checks=()) -> PortMeasurement:
    """What the worker would have stored after `run` (so beat does not measure it again)."""
    ProductHealth.objects.update_or_create(product=run.product, defaults={"last_run": run})
    return PortMeasurement.objects.create(run=run, product=run.product, name=name, kind=kind, rows=3,
                                          updated_at=updated_at, checks=list(checks), measured_at=run.finished_at)


def outbox(event=None, channel=None):
    rows = Delivery.objects.order_by("id")
    if event:
        rows = rows.filter(event=event)
    if channel:
        rows = rows.filter(channel=channel)
    return list(rows)


# --- measuring a table: the check SQL against the real warehouse ----------------------------------
def test_the_checks_count_rows_nulls_and_duplicate_keys_of_the_published_table(admin, published):
    with admin() as conn:
        conn.execute(sql.SQL('CREATE TABLE {} (id int, "order" text, "we""ird" text)').format(
            sql.Identifier(published_schema(published), "facts")))
    write(admin, published, 'INSERT INTO {t} VALUES (1, %s, %s), (2, NULL, %s), (2, %s, NULL), (3, %s, %s), (3, %s, %s)',
          ["a", "x", "y", "c", "d", "z", "e", "z"])
    hostile = 'id") IS NULL OR (true'
    outputs = [
        {"name": "facts", "kind": "table",
         "checks": {"rows_min": 10, "not_null": ["order", 'we"ird', "id", hostile], "unique": ["id"]}},
        {"name": "missing", "kind": "table", "checks": {"rows_min": 1, "unique": ["id"]}},
        {"name": "plain", "kind": "table"},
    ]

    results = health.measure_tables(published, outputs)

    facts = results["facts"]
    assert facts.rows == 5
    assert {c["check"]: (c["passed"], c["detail"]) for c in facts.checks} == {
        "rows_min": (False, "5 rows; at least 10 expected"),
        "not_null:order": (False, "1 row where order is null"),
        'not_null:we"ird': (False, '1 row where we"ird is null'),
        "not_null:id": (True, "0 rows where id is null"),
        f"not_null:{hostile}": (False, f"{published_schema(published)}.facts has no column {hostile}"),
        "unique:id": (False, "2 values of (id) appear more than once, in 4 rows"),
    }
    missing = results["missing"]
    assert missing.rows is None and [c["passed"] for c in missing.checks] == [False, False]
    assert missing.checks[0]["detail"] == f"{published_schema(published)}.missing does not exist"
    assert results["plain"].rows is None and results["plain"].checks == []

    # A composite key, and the warehouse's own counters telling that the table was written.
    before = facts.write_mark
    write(admin, published, "DELETE FROM {t} WHERE id = 3")
    again = health.measure_tables(published, [{"name": "facts", "kind": "table",
                                               "checks": {"unique": ["id", 'we"ird'], "not_null": ["id"]}}])["facts"]
    assert again.rows == 3 and [c["passed"] for c in again.checks] == [True, True]
    assert again.checks[1]["detail"] == 'every value of (id, we"ird) appears once'
    assert before and again.write_mark != before
    assert health.measure_tables(published, [{"name": "facts", "kind": "table"}])["facts"].write_mark == again.write_mark


def test_a_check_that_outlasts_its_time_fails_saying_so(admin, published, settings):
    with admin() as conn:
        conn.execute(sql.SQL("CREATE VIEW {} AS SELECT 1 AS id FROM pg_sleep(1)").format(
            sql.Identifier(published_schema(published), "facts")))
    settings.HEALTH_MEASURE_SECONDS = 0.2

    facts = health.measure_tables(published, [{"name": "facts", "kind": "table", "checks": {"rows_min": 1}}])["facts"]

    assert facts.checks == [{"check": "rows_min", "passed": False,
                             "detail": "not measured within 0.2 s (HEALTH_MEASURE_SECONDS)"}]


def test_a_table_is_updated_only_by_a_succeeded_run_that_wrote_it(admin, published, team, clock):
    product = make_product(team, published, [{"name": "facts", "kind": "table", "freshness": "1h"}])
    with admin() as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(published_schema(published), "facts")))
    write(admin, published, "INSERT INTO {t} VALUES (1)")

    def after_a_run(status="succeeded"):
        clock.advance(minutes=10)
        run = ended(product, status)
        health.after_run(run)
        return PortMeasurement.objects.get(run=run)

    first = after_a_run()
    assert (first.rows, first.updated_at) == (1, first.run.finished_at)  # the first measurement: written
    untouched = after_a_run()
    assert untouched.updated_at == first.run.finished_at  # succeeded, but wrote nothing
    write(admin, published, "INSERT INTO {t} VALUES (2)")
    failed = after_a_run("failed")
    assert (failed.rows, failed.updated_at) == (2, first.run.finished_at)  # written by a run that failed
    write(admin, published, "INSERT INTO {t} VALUES (3)")
    rewritten = after_a_run()
    assert (rewritten.rows, rewritten.updated_at) == (3, rewritten.run.finished_at)
    assert ProductHealth.objects.get(product=product).last_run == rewritten.run


# --- measuring a feed: its files, as they are -------------------------------------------------------
def test_a_feed_is_measured_from_its_own_files_never_through_links_or_fifos(settings, tmp_path):
    settings.LAKE_ROOT = tmp_path / "lake"
    feed = settings.LAKE_ROOT / "shop" / "curated" / "daily"
    (feed / "2026").mkdir(parents=True)
    (feed / "a.csv").write_text("id,name\n1,Ada\n2,\n\n")
    (feed / "2026" / "b.csv").write_text("id,name\n2,Grace\n3,Linus\n")
    (feed / "notes.txt").write_text("not a CSV: a file, no rows\n")
    (feed / ".c.csv.tmp").write_text("id,name\n9,being written\n")
    secret = tmp_path / "secret.csv"
    secret.write_text("id,name\n" + "7,x\n" * 50)
    (feed / "linked.csv").symlink_to(secret)
    os.mkfifo(feed / "blocking.csv")
    os.utime(feed / "2026" / "b.csv", (T0.timestamp(), T0.timestamp()))
    os.utime(feed / "a.csv", (T0.timestamp() - 60, T0.timestamp() - 60))
    os.utime(feed / "notes.txt", (T0.timestamp() - 60, T0.timestamp() - 60))
    (settings.LAKE_ROOT / "shop" / "curated" / "elsewhere").symlink_to(tmp_path)

    daily = health.measure_feed("shop", {"name": "daily", "kind": "feed",
                                         "checks": {"rows_min": 4, "not_null": ["name", "email"], "unique": ["id"]}})

    assert (daily.rows, daily.files, daily.newest_at) == (4, 3, T0)
    assert {c["check"]: (c["passed"], c["detail"]) for c in daily.checks} == {
        "rows_min": (True, "4 CSV rows in 3 files; at least 4 expected"),
        "not_null:name": (False, "1 row where name is empty"),
        "not_null:email": (False, "no column email in 2026/b.csv and 1 more file"),
        "unique:id": (False, "1 row repeating a value of (id)"),
    }
    linked = health.measure_feed("shop", {"name": "elsewhere", "kind": "feed", "checks": {"rows_min": 1}})
    assert linked.rows is None and not linked.checks[0]["passed"] and "is not a folder" in linked.checks[0]["detail"]


# --- staleness, under a frozen clock; alerts once per change -------------------------------------------
def test_an_output_older_than_its_freshness_turns_the_product_stale_once_and_a_write_recovers_it(
        team, member, clock, webhook):
    product = make_product(team, "orders", [{"name": "facts", "kind": "table", "freshness": "1h"},
                                            {"name": "board", "kind": "dashboard"}])
    measured(ended(product), updated_at=T0)

    clock.advance(minutes=30)
    assert health.evaluate_due() == 1  # never evaluated: now it is
    state = ProductHealth.objects.get(product=product)
    assert (state.state, state.due_at) == ("ok", T0 + timedelta(hours=1))
    clock.advance(minutes=29)
    assert health.evaluate_due() == 0  # not due yet: nothing read
    clock.advance(minutes=2)
    assert health.evaluate_due() == 1
    state.refresh_from_db()
    assert (state.state, state.since, state.due_at) == ("stale", T0 + timedelta(minutes=61), None)
    assert state.reasons == [f"facts is stale: last updated {T0:%Y-%m-%d %H:%M} UTC, older than its freshness of 1h"]
    clock.advance(hours=1)
    health.evaluate(product)  # stale still: evaluated again, told nothing more
    health.evaluate(product)

    [stale] = outbox("product.stale")
    assert stale.payload["team"] == {"slug": team.slug, "name": team.name}
    assert stale.payload["product"]["slug"] == "orders" and stale.payload["previous"] == "ok"
    [mail] = outbox("health.stale")
    assert mail.recipients == sorted({member.email, "maria@example.com", "tom@example.com"})
    assert "Orders is stale" in mail.payload["subject"] and "facts is stale" in mail.payload["body"]

    clock.advance(minutes=5)
    measured(ended(product), updated_at=clock.now)  # a run wrote it
    health.evaluate(product)
    health.evaluate(product)
    assert [d.event for d in outbox()] == ["product.stale", "health.stale", "product.recovered", "health.ok"]
    report = health.report(product)
    assert report["state"] == "ok" and [o["name"] for o in report["outputs"]] == ["facts"]  # the dashboard is not measured


def test_a_provisioned_product_that_never_ran_turns_stale_once_its_freshness_has_passed(team, clock, webhook):
    product = make_product(team, "never-ran", [{"name": "daily", "kind": "feed", "freshness": "30m"}])
    clock.advance(minutes=20)
    health.evaluate_due()
    assert ProductHealth.objects.get(product=product).state == "ok"
    clock.advance(minutes=11)
    health.evaluate_due()
    health.evaluate_due()
    assert ProductHealth.objects.get(product=product).reasons == [
        "daily is stale: last updated never, older than its freshness of 30m"]
    assert [d.event for d in outbox(channel="webhook")] == ["product.stale"]


def test_a_failed_run_or_a_failed_check_makes_it_failing_told_once_until_it_recovers(team, member, clock, webhook):
    product = make_product(team, "orders", [{"name": "facts", "kind": "table", "checks": {"rows_min": 1}}])
    passed = [{"check": "rows_min", "passed": True, "detail": "3 rows; at least 1 expected"}]
    failed = [{"check": "rows_min", "passed": False, "detail": "0 rows; at least 1 expected"}]

    for _ in range(2):  # two failed runs in a row: one alert
        clock.advance(minutes=1)
        run = ended(product, "failed", error="the pipeline exited with 1\nTraceback ...")
        measured(run, checks=passed)
        health.evaluate(product)
    state = ProductHealth.objects.get(product=product)
    assert state.state == "failing" and state.reasons == [f"run #{run.pk} failed: the pipeline exited with 1"]
    [alert] = outbox("run.failed")
    assert alert.payload["run"]["status"] == "failed" and alert.payload["team"]["slug"] == team.slug

    clock.advance(minutes=1)
    measured(ended(product), checks=passed)
    health.evaluate(product)
    clock.advance(minutes=1)
    run = ended(product)  # the run succeeded, but what it left fails a check
    measured(run, checks=failed)
    health.evaluate(product)
    health.evaluate(product)
    assert health.report(product)["reasons"] == ["facts: rows_min failed (0 rows; at least 1 expected)"]
    assert [d.event for d in outbox(channel="webhook")] == ["run.failed", "product.recovered", "run.failed"]
    assert [d.event for d in outbox(channel="email")] == ["health.failing", "health.ok", "health.failing"]
    assert outbox("run.failed")[-1].payload["run"]["id"] == run.pk


def test_a_run_whose_ports_could_not_be_measured_still_alerts_and_beat_measures_it_later(
        admin, published, team, clock, webhook, settings):
    product = make_product(team, published, [{"name": "facts", "kind": "table", "checks": {"rows_min": 1}}])
    port = settings.WAREHOUSE_PORT
    settings.WAREHOUSE_PORT = 9  # nothing listens: the warehouse is unreachable
    run = ended(product, "failed")
    health.after_run(run)
    state = ProductHealth.objects.get(product=product)
    assert state.state == "failing" and state.last_run is None and not PortMeasurement.objects.exists()
    assert len(outbox("run.failed")) == 1

    settings.WAREHOUSE_PORT = port
    clock.advance(minutes=1)
    health.evaluate_due()
    assert not PortMeasurement.objects.exists()  # maybe its worker is measuring it still
    clock.advance(minutes=2)
    health.evaluate_due()
    assert PortMeasurement.objects.get(run=run).checks[0]["detail"].endswith("facts does not exist")
    assert ProductHealth.objects.get(product=product).last_run == run
    assert len(outbox("run.failed")) == 1


def test_an_approved_amendment_has_the_product_evaluated_at_the_next_sweep(team, clock, webhook):
    from onboarding.signals import wid_approved

    product = make_product(team, "orders", [{"name": "facts", "kind": "table", "freshness": "7d"}])
    measured(ended(product), updated_at=T0)
    health.evaluate_due()
    assert ProductHealth.objects.get(product=product).due_at == T0 + timedelta(days=7)
    clock.advance(hours=2)
    Product.objects.filter(pk=product.pk).update(outputs=[{"name": "facts", "kind": "table", "freshness": "1h"}])

    wid_approved.send(sender=Product, product=product, actor=None)  # the amendment's approval
    assert health.evaluate_due() == 1
    assert ProductHealth.objects.get(product=product).state == "stale"


def test_a_cancelled_run_is_not_measured(team, clock, webhook):
    product = make_product(team, "orders", [{"name": "facts", "kind": "table", "checks": {"rows_min": 1}}])
    health.after_run(ended(product, "cancelled"))
    assert not ProductHealth.objects.exists() and not outbox()


# --- where it shows -----------------------------------------------------------------------------------
def test_health_shows_in_the_api_the_product_panel_the_dashboard_and_the_site(
        api, client, team, member, platform, clock, webhook):
    product = make_product(team, "orders", [{"name": "facts", "kind": "table", "freshness": "1h",
                                             "checks": {"rows_min": 1}}])
    fine = make_product(team, "fine", [{"name": "facts", "kind": "table"}])
    run = ended(product)
    measured(run, updated_at=T0, checks=[{"check": "rows_min", "passed": True, "detail": "3 rows; at least 1 expected"}])
    clock.advance(hours=2)
    health.evaluate_due()

    body = api(member).get("/api/v1/products/orders/health/").json()
    assert body["state"] == "stale" and body["last_run"]["id"] == run.pk and body["last_run"]["status"] == "succeeded"
    [port] = body["outputs"]
    assert {k: port[k] for k in ("name", "kind", "freshness", "stale", "rows", "checks")} == {
        "name": "facts", "kind": "table", "freshness": "1h", "stale": True, "rows": 3,
        "checks": [{"check": "rows_min", "passed": True, "detail": "3 rows; at least 1 expected"}]}
    assert port["last_updated"].startswith(T0.strftime("%Y-%m-%dT%H:%M"))
    assert api(member).get("/api/v1/products/fine/health/").json()["state"] == "ok"
    assert api(member).get("/api/v1/products/nothing-here/health/").status_code == 404
    assert api().get("/api/v1/products/orders/health/").status_code == 401

    request = RequestFactory().get("/products/orders/")
    request.user = member
    panel = views.product_panel(request, product)
    assert "Health: <span class=\"badge health-stale\">stale</span>" in panel and "facts is stale" in panel

    client.force_login(platform)
    html = client.get("/dashboard/").content.decode()
    assert "Needs attention (1)" in html and "/products/orders/#health" in html and "/products/fine/" not in html

    summary = status_summaries()
    assert summary[product.pk]["health"]["state"] == "stale" and summary[fine.pk]["health"]["state"] == "ok"


def test_the_wid_site_flags_a_stale_product_on_its_page_and_in_the_lists(api, member, team, clock, webhook):
    from docs_site import generate

    assert api(member).post("/api/v1/products/", wid_payload(
        slug="orders", classification="internal", pii=False,
        outputs=[{"name": "facts", "kind": "table", "freshness": "1h"}]), format="json").status_code == 201
    product = Product.objects.get(slug="orders")
    Provisioning.objects.create(product=product, provisioned=True, provisioned_at=T0)
    clock.advance(hours=2)
    health.evaluate_due()

    data = generate.load()
    page = generate.wid_pages(data, ["orders"])["growth/orders/index.md"]
    assert 'Health: <span class="wid-badge health-stale">stale</span>' in page and "facts is stale" in page
    assert '<span class="wid-badge health-stale">stale</span>' in generate.index_pages(data)["-/status/draft/index.md"]
