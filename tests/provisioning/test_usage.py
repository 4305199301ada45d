"""Usage of output ports, measured in the real warehouse (pg_stat_statements and its JSON log).

No terraform here: the products' logins, published schemas and grants are made in the warehouse the
way the local provider makes them (a login role per product, `pub_<slug>` owned by it, a NOLOGIN
readers role holding USAGE and SELECT, consumers and personal logins its members), and the portal's
side is rows. tests/e2e/test_usage_live.py does it all with provisioned products.
"""
import json
import os
import runpy
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from onboarding import services as onboarding_services
from onboarding.models import Product
from provisioning import selectors, usage
from provisioning.models import AccessRequest, Job, PortRead, Provisioning, Run, StatementCount, UsageCursor
from provisioning.rendering import published_schema
from tests.factories import TeamFactory, member_of, platform_user, wid_payload
from tests.provisioning.test_local_provider import admin_dsn  # noqa: F401  (fixture)
from tests.worker import wait_until

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}
PASSWORD = "usage-test-password"


def _product(owner, team, slug, **overrides) -> Product:
    onboarding_services.wid_create(user=owner, data=wid_payload(slug=slug, team=team.slug, **{**LOW_RISK, **overrides}))
    assert onboarding_services.wid_submit(user=owner, slug=slug).status == "approved"  # by policy
    return Product.objects.select_related("team").get(slug=slug)


class Warehouse:
    """Logins and schemas made as the local provider makes them; all dropped at the end."""

    def __init__(self, dsn: str):
        self.admin = psycopg.connect(dsn, autocommit=True)
        self.dsn, self.roles, self.schemas = dsn, [], []

    def login(self, role: str) -> None:
        self.admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                              sql.Literal(PASSWORD)))
        self.roles.append(role)
        # The provider takes CONNECT away from PUBLIC and gives it to each login.
        self.admin.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(self.admin.info.dbname), sql.Identifier(role)))

    def storage(self, slug: str, tables=("orders",)) -> dict:
        """A product's login owning its published schema with `tables`, and the readers role."""
        role, schema, readers = "p_" + slug.replace("-", "_"), published_schema(slug), "r_" + slug.replace("-", "_")
        self.login(role)
        self.admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(readers)))
        self.roles.append(readers)
        self.admin.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema),
                                                                              sql.Identifier(role)))
        self.schemas.append(schema)
        self.admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema),
                                                                           sql.Identifier(readers)))
        with self.connect(role) as conn:
            for table in tables:
                conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(schema, table)))
                conn.execute(sql.SQL("INSERT INTO {} VALUES (1), (2)").format(sql.Identifier(schema, table)))
                conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(schema, table),
                                                                       sql.Identifier(readers)))
        return {"storage_role": role, "published_schema": schema, "readers": readers}

    def grant(self, readers: str, role: str) -> None:
        self.admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(readers), sql.Identifier(role)))

    def revoke(self, readers: str, role: str) -> None:
        self.admin.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(readers), sql.Identifier(role)))

    def connect(self, role: str):
        params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        return psycopg.connect(make_conninfo(host=params["host"], port=params["port"], dbname=params["dbname"],
                                             user=role, password=PASSWORD), autocommit=True)

    def read(self, role: str, *statements: str) -> None:
        with self.connect(role) as conn:
            for statement in statements:
                conn.execute(statement).fetchall()

    def close(self) -> None:
        for schema in self.schemas:
            self.admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        for role in reversed(self.roles):
            self.admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            self.admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        self.admin.close()


@pytest.fixture
def warehouse(admin_dsn):  # noqa: F811
    made = Warehouse(admin_dsn)
    yield made
    made.close()


@pytest.fixture
def world(warehouse):
    """Producer A (table port `orders`, feed `daily`, an undeclared table `scratch`), consumers B (reads)
    and C (granted, never reads), and Carol with an approved personal login on A."""
    tag = uuid.uuid4().hex[:6]
    team, other = TeamFactory(), TeamFactory()
    owner, bob = member_of(team, role="owner"), member_of(other)
    carol, oscar = member_of(TeamFactory(), username=f"carol-{tag}"), member_of(TeamFactory())
    a = _product(owner, team, f"usage-a-{tag}", outputs=[{"name": "orders", "kind": "table"},
                                                          {"name": "daily", "kind": "feed"},
                                                          {"name": "board", "kind": "dashboard"}])
    b = _product(bob, other, f"usage-b-{tag}", depends_on=[a.slug])
    c = _product(bob, other, f"usage-c-{tag}", depends_on=[a.slug])
    storage = {p.slug: warehouse.storage(p.slug, tables=("orders", "scratch") if p == a else ("mine",))
               for p in (a, b, c)}
    for consumer in (b, c):
        warehouse.grant(storage[a.slug]["readers"], storage[consumer.slug]["storage_role"])
    long_ago = datetime.now(timezone.utc) - timedelta(days=90)
    for p in (a, b, c):
        reads = {a.slug: {"schema": storage[a.slug]["published_schema"]}} if p != a else {}
        Provisioning.objects.update_or_create(product=p, defaults={
            "provisioned": True, "provisioned_at": long_ago, "outputs": {**storage[p.slug], "reads": reads}})
        Job.objects.create(product=p, action="apply", status="succeeded", finished_at=long_ago)
    request = AccessRequest.objects.create(product=a, kind="person", requester=carol, purpose="study",
                                           until=date.today() + timedelta(days=30), status="approved")
    warehouse.login(request.role_name)
    warehouse.grant(storage[a.slug]["readers"], request.role_name)
    return {"a": a, "b": b, "c": c, "owner": owner, "bob": bob, "carol": carol, "oscar": oscar,
            "person_role": request.role_name, "storage": storage, "orders": f"{published_schema(a.slug)}.orders"}


def _rows(product):
    return {(r.port, r.reader_kind, r.reader): r for r in PortRead.objects.filter(product=product)}


def test_it_names_the_schema_qualified_tables_of_a_statement_quoted_or_not():
    assert usage.mentioned_tables('SELECT * FROM pub_a.orders o JOIN "pub_b" . "Daily" d USING (id), '
                                  'warehouse.PUB_C.X, "xpub_d".t WHERE o.id = $1') == {
        ("pub_a", "orders"), ("pub_b", "Daily"), ("warehouse", "pub_c"), ("pub_c", "x"), ("xpub_d", "t"),
        ("o", "id")}


def test_reads_of_a_consumer_and_a_person_are_counted_per_port_and_a_reader_that_read_nothing_is_not(world, warehouse,
                                                                                                    api):
    a, b, orders = world["a"], world["b"], world["orders"]
    assert usage.sample()["reads"] == 0  # the baseline: what happened before it is not dated
    b_role = world["storage"][b.slug]["storage_role"]
    warehouse.read(b_role, f"SELECT id FROM {orders} WHERE id = 1", f"SELECT id FROM {orders} WHERE id = 2",
                   f'SELECT count(*) FROM "{published_schema(a.slug)}"."orders"')
    warehouse.read(world["person_role"], f"SELECT * FROM {orders}")
    # Not a consumer's read: the producer's own, an undeclared table, a private table of B's.
    warehouse.read(world["storage"][a.slug]["storage_role"], f"SELECT * FROM {orders}")
    warehouse.read(b_role, f"SELECT * FROM {published_schema(a.slug)}.scratch",
                   f"SELECT * FROM {published_schema(b.slug)}.mine")

    before = datetime.now(timezone.utc)
    summary = usage.sample()
    assert summary["reads"] == 4 and summary["products"] == [a.slug]
    rows = _rows(a)
    assert set(rows) == {("orders", "product", b.slug), ("orders", "person", world["carol"].username)}
    assert rows[("orders", "product", b.slug)].reads == 3  # one normalised statement twice, another once
    assert rows[("orders", "product", b.slug)].role == b_role
    assert rows[("orders", "person", world["carol"].username)].reads == 1
    assert all(r.last_read_at >= before and r.first_seen == r.last_read_at for r in rows.values())
    assert not PortRead.objects.exclude(product=a).exists()

    body = api(world["owner"]).get(f"/api/v1/products/{a.slug}/usage/").json()
    by_name = {p["name"]: p for p in body}
    assert [p["name"] for p in body] == ["orders", "daily", "board"]
    orders_port = by_name["orders"]
    assert {(c["kind"], c["who"]) for c in orders_port["can_read"]} == {
        ("product", b.slug), ("product", world["c"].slug), ("person", world["carol"].username)}
    assert sorted((r["kind"], r["who"], r["reads"]) for r in orders_port["read_by"]) == [
        ("person", world["carol"].username, 1), ("product", b.slug, 3)]
    assert all(r["last_read_at"] for r in orders_port["read_by"])
    assert world["c"].slug not in {r["who"] for r in orders_port["read_by"]}  # granted, read nothing
    assert by_name["daily"]["read_by"] == [] and by_name["daily"]["measured"]
    assert {c["kind"] for c in by_name["daily"]["can_read"]} == {"product"}  # people get no lake access
    assert by_name["board"] == {"name": "board", "kind": "dashboard", "measured": False, "can_read": [],
                                "read_by": [], "failed_reads": []}

    # People's names: the team and the platform see them; the person sees their own; others do not.
    outsider = api(world["oscar"]).get(f"/api/v1/products/{a.slug}/usage/").json()[0]
    assert {r["who"] for r in outsider["read_by"]} == {b.slug, None}
    assert {c["who"] for c in outsider["can_read"]} == {b.slug, world["c"].slug, None}
    mine = api(world["carol"]).get(f"/api/v1/products/{a.slug}/usage/").json()[0]
    assert world["carol"].username in {r["who"] for r in mine["read_by"]}
    platform = api(platform_user()).get(f"/api/v1/products/{a.slug}/usage/").json()[0]
    assert world["carol"].username in {r["who"] for r in platform["read_by"]}
    assert api().get(f"/api/v1/products/{a.slug}/usage/").status_code in (401, 403)
    assert api(world["oscar"]).get("/api/v1/products/no-such-product/usage/").status_code == 404


def test_a_second_sample_without_new_reads_adds_nothing_and_new_reads_add_only_themselves(world, warehouse):
    a, b_role, orders = world["a"], world["storage"][world["b"].slug]["storage_role"], world["orders"]
    usage.sample()
    warehouse.read(b_role, f"SELECT id FROM {orders}")
    usage.sample()
    first = _rows(a)[("orders", "product", world["b"].slug)]
    counts = list(StatementCount.objects.values_list("queryid", "calls"))

    assert usage.sample() == {"reads": 0, "failed_reads": 0, "products": []}
    again = _rows(a)[("orders", "product", world["b"].slug)]
    assert (again.reads, again.last_read_at) == (first.reads, first.last_read_at) == (1, first.last_read_at)
    assert sorted(StatementCount.objects.values_list("queryid", "calls")) == sorted(counts)

    warehouse.read(b_role, f"SELECT id FROM {orders}", f"SELECT id FROM {orders}")
    assert usage.sample()["reads"] == 2
    later = _rows(a)[("orders", "product", world["b"].slug)]
    assert later.reads == 3 and later.last_read_at > first.last_read_at and later.first_seen == first.first_seen


def test_statistics_reset_in_the_warehouse_count_again_from_zero(world, warehouse):
    a, b_role, orders = world["a"], world["storage"][world["b"].slug]["storage_role"], world["orders"]
    usage.sample()
    warehouse.read(b_role, *[f"SELECT id FROM {orders}"] * 3)
    usage.sample()
    oid = warehouse.admin.execute("SELECT oid FROM pg_roles WHERE rolname = %s", [b_role]).fetchone()[0]
    warehouse.admin.execute("SELECT pg_stat_statements_reset(%s)", [oid])  # B's entries only (or evicted)
    warehouse.read(b_role, f"SELECT id FROM {orders}")
    usage.sample()
    assert _rows(a)[("orders", "product", world["b"].slug)].reads == 4


def test_a_refused_read_is_recorded_from_the_warehouses_log_with_its_reader_and_error(world, warehouse):
    a, b, orders = world["a"], world["b"], world["orders"]
    b_role, readers = world["storage"][b.slug]["storage_role"], world["storage"][a.slug]["readers"]
    usage.sample()
    warehouse.revoke(readers, b_role)  # what a suspension does to a consumer
    for statement in (f"SELECT id FROM {orders}", f"SELECT id FROM {published_schema(a.slug)}.scratch"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            warehouse.read(b_role, statement)

    def refused():
        usage.sample()
        return _rows(a).get(("orders", "product", b.slug))

    row = wait_until(refused, timeout=15, what="the refusal in the warehouse's log")
    assert (row.reads, row.failed_reads) == (0, 1)
    assert row.last_error == f"permission denied for schema {published_schema(a.slug)}"
    assert row.last_failed_at <= datetime.now(timezone.utc) and row.role == b_role
    assert set(_rows(a)) == {("orders", "product", b.slug)}  # the undeclared table is no port
    usage.sample()
    assert _rows(a)[("orders", "product", b.slug)].failed_reads == 1  # read once from the log

    port = {p["name"]: p for p in usage.port_usage(a, user=world["owner"])}["orders"]
    assert port["read_by"] == [] and [(f["who"], f["failed_reads"]) for f in port["failed_reads"]] == [(b.slug, 1)]


def test_a_consumers_successful_runs_are_reads_of_the_producers_feeds(world):
    a, b = world["a"], world["b"]
    start = datetime.now(timezone.utc)
    Run.objects.create(product=b, status="succeeded", queue="q", finished_at=start - timedelta(minutes=1))
    usage.sample(now=start)  # the first sample counts every run before it
    assert _rows(a)[("daily", "run", b.slug)].reads == 1
    for status, seconds in (("succeeded", 10), ("succeeded", 20), ("failed", 30)):
        Run.objects.create(product=b, status=status, queue="q", finished_at=start + timedelta(seconds=seconds))
    Run.objects.create(product=a, status="succeeded", queue="q", finished_at=start + timedelta(seconds=30))  # its own

    usage.sample(now=start + timedelta(minutes=1))
    rows = _rows(a)
    assert set(rows) == {("daily", "run", b.slug)}  # C (granted) ran nothing; A's own run reads nothing of A
    assert rows[("daily", "run", b.slug)].reads == 3
    assert rows[("daily", "run", b.slug)].last_read_at == start + timedelta(seconds=20)
    usage.sample(now=start + timedelta(minutes=2))
    assert _rows(a)[("daily", "run", b.slug)].reads == 3
    daily = {p["name"]: p for p in usage.port_usage(a, user=world["oscar"])}["daily"]
    assert [(r["kind"], r["who"], r["reads"]) for r in daily["read_by"]] == [("run", b.slug, 3)]


def test_unused_products_are_provisioned_long_enough_ago_and_nobody_read_or_tried_to(world, warehouse, settings):
    a, b, c = world["a"], world["b"], world["c"]
    assert [u["slug"] for u in selectors.unused_products(30)] == sorted([a.slug, b.slug, c.slug])
    Job.objects.filter(product=c).update(finished_at=datetime.now(timezone.utc) - timedelta(days=3))
    assert c.slug not in {u["slug"] for u in selectors.unused_products(30)}  # too young to judge

    usage.sample()
    warehouse.read(world["person_role"], f"SELECT * FROM {world['orders']}")
    usage.sample()
    assert [u["slug"] for u in selectors.unused_products(30)] == [b.slug]
    PortRead.objects.filter(product=a).update(last_read_at=datetime.now(timezone.utc) - timedelta(days=40))
    unused = selectors.unused_products(30)
    assert [u["slug"] for u in unused] == [b.slug, a.slug]  # never read first, then the oldest read
    assert unused[1]["last_read_at"] < datetime.now(timezone.utc) - timedelta(days=39)
    PortRead.objects.filter(product=a).update(last_failed_at=datetime.now(timezone.utc), failed_reads=1)
    assert [u["slug"] for u in selectors.unused_products(30)] == [b.slug]  # someone still tries
    settings.UNUSED_AFTER_DAYS = 120
    assert selectors.unused_products() == []


def test_the_product_page_dashboard_and_site_show_usage(world, warehouse, client, settings):
    from docs_site import generate

    a, b = world["a"], world["b"]
    usage.sample()
    warehouse.read(world["storage"][b.slug]["storage_role"], f"SELECT id FROM {world['orders']}")
    warehouse.read(world["person_role"], f"SELECT id FROM {world['orders']}")
    usage.sample()

    client.force_login(world["owner"])
    page = client.get(f"/products/{a.slug}/").content.decode()
    assert 'id="usage"' in page and f'href="/products/{b.slug}/"' in page and world["carol"].username in page
    client.force_login(world["oscar"])
    page = client.get(f"/products/{a.slug}/").content.decode()
    assert 'id="usage"' in page and world["carol"].username not in page and "a person (person)" in page

    client.force_login(platform_user())
    dashboard = client.get("/dashboard/").content.decode()
    assert "Candidates for retirement (2)" in dashboard  # B and C: nobody reads them
    assert f"/products/{world['c'].slug}/#usage" in dashboard and f"/products/{a.slug}/#usage" not in dashboard

    data = generate.load()
    site = generate.wid_pages(data, [a.slug])[generate.wid_page(a)]
    assert f'{b.slug}</a> ({date.today():%Y-%m-%d})' in site and "1 person" in site
    assert world["carol"].username not in site
    fingerprint = generate.wid_fingerprint(data, a)
    PortRead.objects.filter(product=a, reader_kind="person").update(
        last_read_at=datetime.now(timezone.utc) + timedelta(days=1))
    assert generate.wid_fingerprint(generate.load(), a) != fingerprint  # a new day of reading: a new page


def test_a_log_file_rewritten_a_week_later_is_read_from_its_start_without_last_weeks_lines(world):
    """The JSON log is one file per weekday: after a restart the weekday's file is appended to, after a
    rotation it is overwritten. Either way the sampler reads it again from its start and skips what
    it had already read."""
    a, b = world["a"], world["b"]
    role = world["storage"][b.slug]["storage_role"]
    week_ago = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)

    def line(at: datetime) -> bytes:
        return json.dumps({"timestamp": f"{at:%Y-%m-%d %H:%M:%S}.000 UTC", "user": role, "state_code": "42501",
                           "message": "permission denied for schema x",
                           "statement": f"SELECT * FROM {world['orders']}"}).encode() + b"\n"

    old = line(week_ago)
    new = line(week_ago + timedelta(days=7))
    content = old + new

    class Conn:
        def execute(self, query, params=()):
            if "pg_ls_logdir" in query:
                rows = [("log/postgresql-Wed.json", "postgresql-Wed.json", len(content), week_ago + timedelta(days=7))]
            else:
                path, offset, length = params
                rows = [(content[offset:offset + length],)]
            return type("Result", (), {"fetchall": lambda self: rows, "fetchone": lambda self: rows[0]})()

    cursor = UsageCursor(log_positions={"postgresql-Wed.json": {"offset": len(old), "modified": week_ago.isoformat()}})
    known, tally = usage.Known(), usage.Tally()
    usage._refusals(Conn(), cursor, known, tally, datetime.now(timezone.utc))
    assert [(key[3], seen["n"], seen["at"]) for key, seen in tally.failures.items()] == [
        (b.slug, 1, week_ago + timedelta(days=7))]
    assert cursor.log_positions["postgresql-Wed.json"]["offset"] == len(content)


def test_the_warehouse_loads_pg_stat_statements_and_keeps_it_from_products(warehouse, admin_dsn):  # noqa: F811
    settings_now = dict(warehouse.admin.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('shared_preload_libraries', 'pg_stat_statements.track',"
        " 'log_destination', 'logging_collector')").fetchall())
    assert settings_now == {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all",
                            "log_destination": "stderr,jsonlog", "logging_collector": "on"}
    role = f"p_usage_{uuid.uuid4().hex[:6]}"
    warehouse.login(role)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        warehouse.read(role, "SELECT * FROM pg_stat_statements")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_warehouse_made_before_usage_is_restarted_once_and_keeps_its_data(admin_dsn, monkeypatch, capsys):  # noqa: F811
    """The development machine's var/warehouse predates pg_stat_statements: `make run` (services.py)
    finds it without, sets it up, restarts it once, and never again."""
    from django.conf import settings

    services = runpy.run_path(str(Path(__file__).resolve().parents[2] / "scripts" / "services.py"))
    bindir = services["_pg_bindir"]()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="usage-warehouse-"))
    data, port = home / "data", _free_port()
    password = settings.WAREHOUSE_ADMIN_PASSWORD_FILE.read_text().strip()
    (home / "pw").write_text(password)
    home.chmod(0o755)
    data.mkdir()
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(home / "pw", "postgres", "postgres")
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w"]
    try:
        # As the warehouse was made before: no pg_stat_statements, no JSON log.
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "warehouse_admin",
                        "--auth=scram-sha-256", f"--pwfile={home / 'pw'}", "-E", "UTF8"], check=True,
                       capture_output=True, timeout=60)
        subprocess.run([*pg_ctl, "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True,
                       capture_output=True, timeout=60)
        dsn = make_conninfo(host="127.0.0.1", port=port, dbname="postgres", user="warehouse_admin", password=password)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE warehouse")
        with psycopg.connect(make_conninfo(dsn, dbname="warehouse"), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (id int)")
            conn.execute("INSERT INTO kept VALUES (42)")

        monkeypatch.setenv("WAREHOUSE_DATA_DIR", str(data))
        monkeypatch.setenv("WAREHOUSE_PORT", str(port))
        services["ensure_warehouse"]()
        assert "restarting the local warehouse once" in capsys.readouterr().out
        services["ensure_warehouse"]()
        assert "restarting" not in capsys.readouterr().out

        with psycopg.connect(make_conninfo(dsn, dbname="warehouse"), autocommit=True) as conn:
            assert conn.execute("SELECT id FROM kept").fetchall() == [(42,)]
            assert conn.execute("SHOW pg_stat_statements.track").fetchone() == ("all",)
            assert conn.execute("SELECT count(*) > 0 FROM pg_stat_statements").fetchone() == (True,)
            assert conn.execute("SELECT pg_current_logfile('jsonlog')").fetchone()[0].endswith(".json")
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
