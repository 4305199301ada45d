"""Ingestion patterns, for real: a real Celery worker stages each product's data into its raw/ area
before its confined run, on products that terraform provisioned with their pipeline variant, against
the warehouse, a PostgreSQL source database on the machine's PostgreSQL and a share folder with a
workbook made by openpyxl.

One test provisions three products at once (to share the applies and destroys): a file drop, a
database extract and a spreadsheet. Then the extract's table is made a view that writes: the
read-only transaction refuses it, the run fails saying so, and nothing changes in raw/, the product's
tables or the source. (Queries that write or hold several statements: tests/provisioning/test_ingestion.py.)
"""
import json
import uuid
from pathlib import Path

import openpyxl
import psycopg
import pytest
from django.db import connection
from psycopg import sql

from onboarding.models import Product
from provisioning.models import Job, Run, RunLogLine
from tests.e2e.test_products_live_on import LOW_RISK, _connect, _wait_job
from tests.factories import TeamFactory, member_of, platform_user, wid_payload
from tests.worker import wait_until

pytestmark = pytest.mark.e2e

SOURCE_PASSWORD = "e2e-s3cret-source-pw"


@pytest.fixture
def source_db():
    name = f"{connection.settings_dict['NAME']}_crm_{uuid.uuid4().hex[:6]}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql://postgres:{SOURCE_PASSWORD}@127.0.0.1:5432/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA crm")
        conn.execute("CREATE TABLE crm.customers (id int PRIMARY KEY, name text, region text, joined date)")
        conn.execute("INSERT INTO crm.customers VALUES (1, 'Ada', 'north', '2024-01-02'), "
                     "(2, 'Grace', 'south, coast', NULL), (3, 'Edsger', 'east', '2025-06-30')")
        conn.execute("CREATE TABLE crm.audit (at timestamptz DEFAULT now())")
        conn.execute("CREATE FUNCTION crm.touch() RETURNS int LANGUAGE sql VOLATILE AS "
                     "'INSERT INTO crm.audit DEFAULT VALUES RETURNING 1'")
    yield url
    admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


def _run(api, user, slug, log):
    response = api(user).post(f"/api/v1/products/{slug}/runs/")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def _finished_run(run_id, log):
    run = wait_until(lambda: Run.objects.filter(pk=run_id, status__in=Run.FINISHED).first(), timeout=90,
                     what=f"run {run_id}", log=log)
    return run, "\n".join(RunLogLine.objects.filter(run=run).order_by("number").values_list("text", flat=True))


def test_each_pattern_lands_its_data_in_raw_and_the_run_writes_the_tables_and_published_ports(
        e2e, api, settings, tmp_path, source_db):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]
    team = TeamFactory()
    alice, priya = member_of(team), platform_user()
    share = tmp_path / "finance-share"
    share.mkdir()
    (share / "regions.csv").write_text("Region,Manager\nnorth,Zoe\n")
    book = openpyxl.Workbook()
    book.active.title = "Q1"
    for row in ([None, None], ["Region", "Amount"], ["north", 10.5], ["south", 7]):
        book.active.append(row)
    book.save(share / "budget.xlsx")
    for body in ({"name": "crm", "kind": "database", "description": "The CRM", "connection": source_db},
                 {"name": "finance-share", "kind": "share", "description": "Finance", "path": str(share)}):
        assert api(priya).post("/api/v1/sources/", body, format="json").status_code == 201

    tag = uuid.uuid4().hex[:6]
    wanted = {
        f"drop-{tag}": {"ingestion": "file_drop"},
        f"extract-{tag}": {"ingestion": "database_extract", "source": {"name": "crm", "table": "crm.customers"}},
        f"sheet-{tag}": {"ingestion": "spreadsheet", "source": {"name": "finance-share"}},
    }
    outputs = [{"name": "facts", "kind": "table"}, {"name": "daily", "kind": "feed"}]
    for slug, keys in wanted.items():
        response = api(alice).post("/api/v1/products/", wid_payload(slug=slug, team=team.slug, outputs=outputs,
                                                                   **LOW_RISK, **keys), format="json")
        assert response.status_code == 201, response.json()
        assert api(alice).post(f"/api/v1/products/{slug}/submit/", format="json").json()["status"] == "approved"
    drop, extract, sheet = wanted
    try:
        for slug in wanted:
            _wait_job(Job.objects.get(product__slug=slug).pk, e2e["log"])
        lake = {slug: Path(settings.LAKE_ROOT) / slug for slug in wanted}
        for slug, pattern in ((drop, "file drop"), (extract, "database extract"), (sheet, "spreadsheet")):
            assert f"**{pattern}**" in (Path(settings.PIPELINES_ROOT) / slug / "README.md").read_text()

        (lake[drop] / "raw" / "orders.csv").write_text("Order Id,Amount\n1,9.50\n2,3\n")  # the team's drop
        runs = {slug: _run(api, alice, slug, e2e["log"]) for slug in wanted}
        finished = {slug: _finished_run(run_id, e2e["log"]) for slug, run_id in runs.items()}
        for slug in wanted:
            assert finished[slug][0].status == "succeeded", finished[slug][1]
        logs = "\n".join(log for _, log in finished.values())
        assert SOURCE_PASSWORD not in logs and source_db not in logs and str(share) not in logs

        # Data landed in raw/ (the worker's copies belong to the product's uid, which the run has).
        extracted = lake[extract] / "raw" / "extract.csv"
        assert extracted.read_text().splitlines() == [
            "id,name,region,joined", "1,Ada,north,2024-01-02", '2,Grace,"south, coast",', "3,Edsger,east,2025-06-30"]
        assert sorted(p.name for p in (lake[sheet] / "raw").iterdir()) == ["budget.q1.csv", "regions.csv"]
        owner = settings.RUN_UID_BASE + Run.objects.get(pk=runs[extract]).product_id
        assert extracted.stat().st_uid == owner
        assert "Extracted 3 rows from source crm, the table crm.customers" in finished[extract][1]
        assert "Copied from source finance-share: budget.xlsx → raw/budget.q1.csv (4 rows)" in finished[sheet][1]
        assert "nothing to copy" in finished[drop][1] and "orders.csv: 2 rows delivered" in finished[drop][1]
        assert list((lake[drop] / "raw").iterdir()) == []  # loaded: moved out of the inbox
        assert (lake[drop] / "staging" / "processed" / "orders.csv").exists()

        # The run wrote the product's tables and published ports: read with the product's own login.
        expected = {
            drop: ("deliveries", "SELECT record FROM {} ORDER BY line",
                   [({"order_id": "1", "amount": "9.50"},), ({"order_id": "2", "amount": "3"},)]),
            extract: ("extract", "SELECT id, name, region, joined FROM {} ORDER BY id",
                      [("1", "Ada", "north", "2024-01-02"), ("2", "Grace", "south, coast", None),
                       ("3", "Edsger", "east", "2025-06-30")]),
            sheet: ("sheets", "SELECT sheet, record FROM {} ORDER BY sheet, line",
                    [("budget.q1.csv", {"region": "north", "amount": "10.5"}),
                     ("budget.q1.csv", {"region": "south", "amount": "7"}),
                     ("regions.csv", {"region": "north", "manager": "Zoe"})]),
        }
        for slug, (table, query, rows) in expected.items():
            creds = api(alice).get(f"/api/v1/products/{slug}/credentials/").json()
            with _connect(creds) as conn:
                for schema, name in ((creds["schema"], table), (creds["published_schema"], "facts")):
                    assert conn.execute(sql.SQL(query).format(sql.Identifier(schema, name))).fetchall() == rows, slug
            feed = lake[slug] / "curated" / "daily"
            assert sorted(p.name for p in feed.iterdir()) == {
                drop: ["orders.csv"], extract: ["extract.csv"], sheet: ["budget.q1.csv", "regions.csv"]}[slug]

        # The extract's table becomes a view that writes: refused by the read-only transaction; the run
        # fails before its pipeline starts, and nothing is written anywhere.
        with psycopg.connect(source_db, autocommit=True) as conn:
            conn.execute("ALTER TABLE crm.customers RENAME TO customers_base")
            conn.execute("CREATE VIEW crm.customers AS SELECT b.*, crm.touch() AS touched FROM crm.customers_base b")
        before = extracted.read_bytes()
        run, log = _finished_run(_run(api, alice, extract, e2e["log"]), e2e["log"])
        assert run.status == "failed" and "source crm: " in run.error and "read-only transaction" in run.error, log
        assert run.exit_code is None and "Running " not in log  # the pipeline never started
        assert extracted.read_bytes() == before and sorted(p.name for p in (lake[extract] / "raw").iterdir()) == [
            "extract.csv"]
        with psycopg.connect(source_db) as conn:
            assert conn.execute("SELECT count(*) FROM crm.audit").fetchone() == (0,)
        creds = api(alice).get(f"/api/v1/products/{extract}/credentials/").json()
        with _connect(creds) as conn:
            assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(creds["published_schema"], "facts"))).fetchone() == (3,)
        shown = api(alice).get(f"/api/v1/runs/{run.pk}/").json()
        assert SOURCE_PASSWORD not in json.dumps(shown) and "read-only transaction" in shown["error"]
    finally:
        _destroy_together(api, priya, list(wanted), e2e["log"])



def _destroy_together(api, platform, slugs, log):
    """Destroy the products side by side (the worker runs two jobs at once), then wait for their WIDs
    to be retired, the worker's last git write, before the next test shares the repository."""
    provisioned = [slug for slug in slugs if Job.objects.filter(product__slug=slug, action="apply",
                                                                status="succeeded").exists()]
    started = {}
    for slug in provisioned:
        wait_until(lambda: not Job.objects.filter(product__slug=slug, status__in=Job.ACTIVE).exists(), timeout=120,
                   what=f"{slug} idle", log=log)
        response = api(platform).post(f"/api/v1/products/{slug}/jobs/", {"action": "destroy"}, format="json")
        assert response.status_code == 202, response.json()
        started[slug] = response.json()["id"]
    for slug, job_id in started.items():
        wait_until(lambda: Job.objects.filter(pk=job_id, status="planned").exists(), timeout=120,
                   what=f"the destroy plan of {slug}", log=log)
        assert api(platform).post(f"/api/v1/jobs/{job_id}/confirm/").status_code in (200, 202)
    for slug, job_id in started.items():
        wait_until(lambda: Job.objects.filter(pk=job_id, status__in=Job.FINISHED).exists(), timeout=120,
                   what=f"the destroy of {slug}", log=log)
        wait_until(lambda: Product.objects.filter(slug=slug, status="retired").exists(), timeout=60,
                   what=f"{slug} retired", log=log)
