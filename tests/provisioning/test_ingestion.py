"""Staging (provisioning/ingestion.py) for real: a PostgreSQL source database of the test's own on the
machine's PostgreSQL, share folders with real files (workbooks made by openpyxl), the lake on disk.

The product's approved WID is given directly (`live_meta`); the executor, terraform and the sandbox
around the staging are in tests/e2e/test_ingestion_end_to_end.py.
"""
import datetime
import os
import time
import uuid

import openpyxl
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg import sql

from onboarding import services as onboarding_services
from provisioning import ingestion
from provisioning.models import Run, RunLogLine, Source, StagedFile
from tests.factories import wid_payload

SOURCE_PASSWORD = "reader-s3cret-pw"
CUSTOMERS = [(1, "Ada", "north, upper", datetime.date(2024, 1, 2)), (2, "Grace", "line one\nline two", None),
             (3, "Edsger", "south", datetime.date(2025, 6, 30))]


@pytest.fixture(scope="module")
def source_db(django_db_blocker):
    """A source database on the machine's PostgreSQL: a table, a sequence, and a function that writes."""
    with django_db_blocker.unblock():
        name = f"{connection.settings_dict['NAME']}_src_{uuid.uuid4().hex[:6]}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as conn:
        conn.execute("CREATE SCHEMA crm")
        conn.execute("CREATE TABLE crm.customers (id int PRIMARY KEY, name text, region text, joined date)")
        conn.cursor().executemany("INSERT INTO crm.customers VALUES (%s, %s, %s, %s)", CUSTOMERS)
        conn.execute("CREATE TABLE crm.audit (at timestamptz DEFAULT now())")
        conn.execute("CREATE SEQUENCE crm.ids")
        conn.execute("CREATE FUNCTION crm.touch() RETURNS int LANGUAGE sql VOLATILE AS "
                     "'INSERT INTO crm.audit DEFAULT VALUES RETURNING 1'")
    yield {"name": name, "url": f"postgresql://postgres:{SOURCE_PASSWORD}@127.0.0.1:5432/{name}"}
    admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


def _source_state(source_db) -> tuple:
    with psycopg.connect(source_db["url"]) as conn:
        return (conn.execute("SELECT count(*) FROM crm.audit").fetchone()[0],
                conn.execute("SELECT last_value, is_called FROM crm.ids").fetchone(),
                conn.execute("SELECT count(*) FROM crm.customers").fetchone()[0])


@pytest.fixture
def product(settings, tmp_path, member):
    settings.LAKE_ROOT = tmp_path / "lake"
    made = onboarding_services.wid_create(user=member, data=wid_payload(slug=f"ing-{uuid.uuid4().hex[:6]}"))
    for area in ("raw", "staging", "curated"):
        (settings.LAKE_ROOT / made.slug / area).mkdir(parents=True)
    return made


@pytest.fixture
def stage(product, monkeypatch):
    """`stage(ingestion, source)` stages like the executor does, the WID saying so: (the run, its log)."""
    def run_stage(pattern: str, source: dict | None = None):
        monkeypatch.setattr(ingestion, "live_meta", lambda p: {"ingestion": pattern, "source": source})
        run = Run.objects.create(product=product, queue="test")
        try:
            ingestion.stage(run, {"lake_path": str(settings.LAKE_ROOT / product.slug)})
        finally:
            run.log = "\n".join(RunLogLine.objects.filter(run=run).order_by("number").values_list("text", flat=True))
        return run

    return run_stage


@pytest.fixture
def crm(db, source_db):
    return Source.objects.create(name="crm", kind="database", description="The CRM", connection=source_db["url"])


def _raw(product):
    return settings.LAKE_ROOT / product.slug / "raw"


# --- database extracts ---------------------------------------------------------------------------------
def test_a_table_is_extracted_into_raw_as_a_csv_for_the_products_uid(stage, crm, product):
    run = stage("database_extract", {"name": "crm", "table": "crm.customers"})
    extract = _raw(product) / "extract.csv"
    assert extract.read_text() == ('id,name,region,joined\n1,Ada,"north, upper",2024-01-02\n'
                                   '2,Grace,"line one\nline two",\n3,Edsger,south,2025-06-30\n')
    assert "Extracted 3 rows from source crm, the table crm.customers, into raw/extract.csv" in run.log
    if os.geteuid() == 0:
        assert extract.stat().st_uid == settings.RUN_UID_BASE + product.pk
    assert sorted(p.name for p in _raw(product).iterdir()) == ["extract.csv"]  # no temporary file left


def test_a_query_is_extracted_as_written(stage, crm, product):
    run = stage("database_extract", {"name": "crm", "query": "SELECT id, upper(name) AS name FROM crm.customers\n"
                                                             "WHERE joined IS NOT NULL -- and a comment\nORDER BY id;"})
    assert (_raw(product) / "extract.csv").read_text() == "id,name\n1,ADA\n3,EDSGER\n"
    assert "Extracted 2 rows from source crm, the query, into raw/extract.csv" in run.log


@pytest.mark.parametrize("query", [
    "SELECT crm.touch()",
    "SELECT nextval('crm.ids')",
    "SELECT set_config('transaction_read_only', 'off', true), crm.touch()",
    "WITH written AS (SELECT crm.touch()) SELECT * FROM written",
])
def test_a_query_that_writes_is_refused_by_the_read_only_transaction_and_nothing_is_written(
        stage, crm, product, source_db, query):
    (_raw(product) / "extract.csv").write_text("the previous extract\n")
    before = _source_state(source_db)
    with pytest.raises(ingestion.StagingError, match="read-only transaction|read-write mode must be set before") \
            as refused:
        stage("database_extract", {"name": "crm", "query": query})
    assert str(refused.value).startswith("source crm: ") and "raw/ was left as it was" in str(refused.value)
    assert _source_state(source_db) == before
    assert sorted(p.name for p in _raw(product).iterdir()) == ["extract.csv"]
    assert (_raw(product) / "extract.csv").read_text() == "the previous extract\n"


@pytest.mark.parametrize("query, refusal", [
    ("SELECT 1; SELECT crm.touch()", "several statements"),
    # A client-side parser reads the backslash as an escape, so one statement; PostgreSQL reads two.
    ("SELECT '\\'; SELECT crm.touch(); --'", "the query was refused: ERROR:  syntax error at or near \";\""),
    # ... and here three statements that each parse, the wrapper around them included: had they reached the
    # COPY (sent as a simple query), the second would have run.
    ("SELECT '\\') AS x LIMIT 1; SELECT crm.touch() AS y; SELECT * FROM (SELECT 1 --'",
     "cannot insert multiple commands into a prepared statement"),
    ("SELECT 1) AS x) TO STDOUT; DELETE FROM crm.customers; --", "several statements"),
    ("SELECT 1) AS x LIMIT 1) TO STDOUT WITH (FORMAT csv); --", "syntax error"),
    ("DELETE FROM crm.customers RETURNING *", "syntax error"),
])
def test_anything_but_one_select_is_refused_before_it_runs(stage, crm, product, source_db, query, refusal):
    before = _source_state(source_db)
    with pytest.raises(ingestion.StagingError, match=refusal):
        stage("database_extract", {"name": "crm", "query": query})
    assert _source_state(source_db) == before
    assert list(_raw(product).iterdir()) == []


def test_an_extract_over_the_row_limit_fails_and_leaves_raw_as_it_was(stage, crm, product, settings):
    settings.INGEST_MAX_ROWS = 2
    (_raw(product) / "extract.csv").write_text("the previous extract\n")
    with pytest.raises(ingestion.StagingError, match="more than 2 rows"):
        stage("database_extract", {"name": "crm", "table": "crm.customers"})
    assert [p.name for p in _raw(product).iterdir()] == ["extract.csv"]
    assert (_raw(product) / "extract.csv").read_text() == "the previous extract\n"


def test_an_extract_over_the_size_limit_fails_and_leaves_raw_as_it_was(stage, crm, product, settings):
    settings.INGEST_MAX_MB = 1
    with pytest.raises(ingestion.StagingError, match="more than 1 MB of CSV"):
        stage("database_extract", {"name": "crm",
                                   "query": "SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g"})
    assert list(_raw(product).iterdir()) == []


def test_an_extract_the_same_as_the_last_leaves_raw_as_it_was(stage, crm, product):
    stage("database_extract", {"name": "crm", "table": "crm.customers"})
    os.utime(_raw(product) / "extract.csv", ns=(1, 1))
    run = stage("database_extract", {"name": "crm", "table": "crm.customers"})
    assert "(the same as the last extract: raw/ left as it was)" in run.log
    assert (_raw(product) / "extract.csv").stat().st_mtime_ns == 1
    assert [p.name for p in _raw(product).iterdir()] == ["extract.csv"]


def test_a_statement_past_its_timeout_is_stopped(stage, crm, product, settings):
    settings.INGEST_STATEMENT_TIMEOUT = 1
    started = time.monotonic()
    with pytest.raises(ingestion.StagingError, match="statement timeout"):
        stage("database_extract", {"name": "crm", "query": "SELECT set_config('statement_timeout', '0', true), "
                                                           "pg_sleep(30)"})
    assert time.monotonic() - started < 10
    assert list(_raw(product).iterdir()) == []


def test_a_source_that_fails_never_shows_its_credentials_in_the_error_or_the_log(stage, crm, product, source_db):
    crm.connection = source_db["url"].replace(source_db["name"], "no_such_database")
    crm.save()
    with pytest.raises(ingestion.StagingError) as failed:
        stage("database_extract", {"name": "crm", "table": "crm.customers"})
    assert "source crm: " in str(failed.value) and 'database "no_such_database" does not exist' in str(failed.value)
    assert SOURCE_PASSWORD not in str(failed.value) and crm.connection not in str(failed.value)
    assert SOURCE_PASSWORD not in "".join(RunLogLine.objects.values_list("text", flat=True))


def test_a_connection_by_reference_is_read_on_the_worker(stage, crm, product, source_db, monkeypatch, tmp_path):
    crm.connection = "env:PORTAL_TEST_CRM_URL"
    crm.save()
    with pytest.raises(ingestion.StagingError, match="PORTAL_TEST_CRM_URL, which this worker does not have"):
        stage("database_extract", {"name": "crm", "table": "crm.customers"})
    monkeypatch.setenv("PORTAL_TEST_CRM_URL", source_db["url"])
    assert "Extracted 3 rows" in stage("database_extract", {"name": "crm", "table": "crm.customers"}).log

    secret_file = tmp_path / "crm-url"
    secret_file.write_text(source_db["url"] + "\n")
    crm.connection = f"file:{secret_file}"
    crm.save()
    assert "Extracted 3 rows" in stage("database_extract", {"name": "crm", "table": "crm.customers"}).log
    secret_file.unlink()
    with pytest.raises(ingestion.StagingError, match="the file holding its connection cannot be read") as failed:
        stage("database_extract", {"name": "crm", "table": "crm.customers"})
    assert str(secret_file) not in str(failed.value)


def test_an_unregistered_source_or_one_of_the_wrong_kind_fails_the_staging(stage, crm, product, tmp_path):
    with pytest.raises(ingestion.StagingError, match="no source named 'gone' is registered"):
        stage("database_extract", {"name": "gone", "table": "crm.customers"})
    with pytest.raises(ingestion.StagingError, match="source crm is a database, not a share folder"):
        stage("spreadsheet", {"name": "crm"})
    assert list(_raw(product).iterdir()) == []


def test_raw_replaced_by_a_link_is_refused_and_nothing_is_written_where_it_points(stage, crm, product, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _raw(product).rmdir()
    _raw(product).symlink_to(elsewhere)
    with pytest.raises(ingestion.StagingError, match="raw/ in its lake folder is not a folder"):
        stage("database_extract", {"name": "crm", "table": "crm.customers"})
    assert list(elsewhere.iterdir()) == []


def test_file_drop_and_none_copy_nothing(stage, product):
    assert "nothing to copy" in stage("file_drop").log
    assert stage("none").log == ""
    assert list(_raw(product).iterdir()) == []


# --- share folders -------------------------------------------------------------------------------------
@pytest.fixture
def share(db, tmp_path):
    folder = tmp_path / "share"
    folder.mkdir()
    Source.objects.create(name="finance-share", kind="share", description="Finance's drive", path=str(folder))
    return folder


def _workbook(path, sheets: dict[str, list[list]]) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)


def test_new_csv_and_xlsx_files_are_copied_each_sheet_as_a_csv(stage, share, product):
    (share / "regions.csv").write_bytes(b"Region;Manager\r\nnorth;Zo\xe9\r\n")  # as it is, even not UTF-8
    _workbook(share / "Budget 2026.xlsx", {
        "Q1": [[None], ["Region", "Amount", "Approved", "On"], ["north", 10.5, True, datetime.date(2026, 1, 31)]],
        "Q2 Plan (50% & more)": [["Region", "Amount"], ["south", 7]]})
    (share / "~$Budget 2026.xlsx").write_text("an Office lock file")
    (share / ".hidden.csv").write_text("a,b\n")
    (share / "notes.txt").write_text("not a spreadsheet")

    run = stage("spreadsheet", {"name": "finance-share"})

    raw = _raw(product)
    assert sorted(p.name for p in raw.iterdir()) == [
        "Budget_2026.q1.csv", "Budget_2026.q2_plan_50_more.csv", "regions.csv"]
    assert (raw / "regions.csv").read_bytes() == b"Region;Manager\r\nnorth;Zo\xe9\r\n"
    assert (raw / "Budget_2026.q1.csv").read_text().splitlines() == [
        ",,,", "Region,Amount,Approved,On", "north,10.5,true,2026-01-31T00:00:00"]
    assert (raw / "Budget_2026.q2_plan_50_more.csv").read_text().splitlines() == ["Region,Amount", "south,7"]
    assert "Copied from source finance-share: Budget 2026.xlsx → raw/Budget_2026.q1.csv (3 rows), " \
           "raw/Budget_2026.q2_plan_50_more.csv (2 rows)" in run.log
    assert "2 file(s) copied, 0 unchanged, 0 refused" in run.log
    assert str(share) not in run.log
    if os.geteuid() == 0:
        assert {p.stat().st_uid for p in raw.iterdir()} == {settings.RUN_UID_BASE + product.pk}


def test_only_new_or_changed_files_are_copied_again_and_a_sheet_gone_is_removed(stage, share, product):
    (share / "regions.csv").write_text("region\nnorth\n")
    _workbook(share / "budget.xlsx", {"Q1": [["a"], [1]], "Q2": [["a"], [2]]})
    stage("spreadsheet", {"name": "finance-share"})
    assert "0 file(s) copied, 2 unchanged" in stage("spreadsheet", {"name": "finance-share"}).log

    os.utime(share / "regions.csv", ns=(1, 1))  # touched, the same content: not copied
    (share / "regions.csv").touch()
    assert "0 file(s) copied, 2 unchanged" in stage("spreadsheet", {"name": "finance-share"}).log
    _workbook(share / "budget.xlsx", {"Q1": [["a"], [3]]})
    run = stage("spreadsheet", {"name": "finance-share"})
    assert "1 file(s) copied, 1 unchanged" in run.log
    assert sorted(p.name for p in _raw(product).iterdir()) == ["budget.q1.csv", "regions.csv"]
    assert (_raw(product) / "budget.q1.csv").read_text().splitlines() == ["a", "3"]

    (_raw(product) / "regions.csv").unlink()  # gone from raw/ (a run moved it): copied again
    assert "1 file(s) copied, 1 unchanged" in stage("spreadsheet", {"name": "finance-share"}).log
    assert StagedFile.objects.filter(product=product).count() == 2


def test_links_hard_links_big_files_and_broken_workbooks_are_refused(stage, share, product, tmp_path, settings):
    settings.INGEST_MAX_MB = 1
    outside = tmp_path / "outside.csv"
    outside.write_text("secret,data\n")
    (share / "linked.csv").symlink_to(outside)
    (share / "folder.csv").mkdir()
    os.link(share.parent / "outside.csv", share / "twin.csv")
    (share / "big.csv").write_bytes(b"x" * (2 * 1024 * 1024))
    (share / "broken.xlsx").write_text("not a zip")
    (share / "fine.csv").write_text("a\n1\n")

    run = stage("spreadsheet", {"name": "finance-share"})

    assert [p.name for p in _raw(product).iterdir()] == ["fine.csv"]
    for refusal in ("big.csv (over 1 MB", "broken.xlsx (not an .xlsx workbook)", "folder.csv (not a plain file)",
                    "linked.csv (a link)", "twin.csv (a hard link"):
        assert f"Refused from source finance-share: {refusal}" in run.log
    assert "1 file(s) copied, 0 unchanged, 5 refused" in run.log
    assert str(tmp_path) not in run.log


def test_a_workbook_with_a_sheet_over_the_row_limit_is_refused_whole(stage, share, product, settings):
    settings.INGEST_MAX_ROWS = 3
    _workbook(share / "book.xlsx", {"small": [["a"], [1]], "large": [["a"], [1], [2], [3]]})
    run = stage("spreadsheet", {"name": "finance-share"})
    assert "book.xlsx (sheet 'large' has over 3 rows" in run.log
    assert list(_raw(product).iterdir()) == []


def test_a_share_folder_that_is_gone_fails_the_staging_without_naming_its_path(stage, share, product):
    share.rmdir()
    with pytest.raises(ingestion.StagingError, match="its share folder cannot be opened") as failed:
        stage("spreadsheet", {"name": "finance-share"})
    assert str(share) not in str(failed.value)
