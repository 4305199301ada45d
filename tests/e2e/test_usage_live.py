"""Usage measured for real: provisioned products, the warehouse's pg_stat_statements and JSON log, a real
Celery worker running the sampler and the consumer's confined run.

One provisioned pair (producer A with a table and a feed port, consumer B reading A through `depends_on`)
and one person with approved access, shared by every step: provisioning is the slow part.
"""
import uuid

import psycopg
import pytest

from provisioning import tasks, usage
from provisioning.models import PortRead, Run
from tests.e2e.test_products_live_on import (  # noqa: F401  (provisioning_on is a fixture)
    _connect, _create, _destroy_all, _last_job_id, _next_job, _provision_reader_pair, _submit,
    provisioning_on,
)
from tests.factories import TeamFactory, member_of, platform_user
from tests.worker import wait_until

pytestmark = pytest.mark.e2e


def _row(slug, port, kind, reader):
    return PortRead.objects.filter(product__slug=slug, port=port, reader_kind=kind, reader=reader).first()


def test_a_consumer_a_person_and_a_consumers_run_are_seen_reading_and_a_refused_read_too(e2e, api, provisioning_on):
    team, other = TeamFactory(), TeamFactory()
    alice, bob, priya = member_of(team, role="owner"), member_of(other), platform_user()
    carol = member_of(TeamFactory())
    a, b = f"used-{uuid.uuid4().hex[:6]}", f"user-{uuid.uuid4().hex[:6]}"
    _create(api, alice, team, a, outputs=[{"name": "orders", "kind": "table"}, {"name": "daily", "kind": "feed"}])
    _create(api, bob, other, b, depends_on=[a])
    try:
        _provision_reader_pair(api, e2e["log"], producer=(a, alice, team), consumer=(b, bob, other), person=carol,
                               purpose="Order study")

        creds_a = api(alice).get(f"/api/v1/products/{a}/credentials/").json()
        pub = creds_a["published_schema"]
        with _connect(creds_a) as conn:  # the producer writes and reads its own port: not a consumer's read
            conn.execute(f"CREATE TABLE {pub}.orders (id int)")
            conn.execute(f"INSERT INTO {pub}.orders VALUES (1), (2)")
            conn.execute(f"SELECT * FROM {pub}.orders").fetchall()
        usage.sample()  # the baseline

        creds_b = api(bob).get(f"/api/v1/products/{b}/credentials/").json()
        with _connect(creds_b) as conn:
            assert conn.execute(f"SELECT count(*) FROM {pub}.orders").fetchone() == (2,)
            assert conn.execute(f'SELECT id FROM "{pub}"."orders" WHERE id = %s', [1]).fetchall() == [(1,)]
        mine = api(carol).get(f"/api/v1/products/{a}/credentials/").json()
        with _connect(mine) as conn:
            conn.execute(f"SELECT * FROM {pub}.orders").fetchall()

        # Beat's task, run by the real worker.
        tasks.sample_usage.delay()
        wait_until(lambda: _row(a, "orders", "product", b) and _row(a, "orders", "person", carol.username),
                   timeout=30, what="the worker's sample to see B's and Carol's reads", log=e2e["log"])
        body = {p["name"]: p for p in api(alice).get(f"/api/v1/products/{a}/usage/").json()}
        read_by = {(r["kind"], r["who"]): r for r in body["orders"]["read_by"]}
        assert set(read_by) == {("product", b), ("person", carol.username)}  # not A itself
        assert read_by[("product", b)]["reads"] == 2 and read_by[("product", b)]["last_read_at"]
        assert read_by[("person", carol.username)]["reads"] == 1
        assert {(c["kind"], c["who"]) for c in body["orders"]["can_read"]} == {("product", b),
                                                                                 ("person", carol.username)}
        assert body["daily"]["read_by"] == []
        # Idempotent: a sample with nothing new read adds nothing.
        before = {(r.port, r.reader): (r.reads, r.last_read_at) for r in PortRead.objects.filter(product__slug=a)}
        usage.sample()
        assert {(r.port, r.reader): (r.reads, r.last_read_at) for r in PortRead.objects.filter(product__slug=a)} \
            == before

        # B's confined run reads A's curated/ folder: a read of the feed, labelled as a run.
        response = api(bob).post(f"/api/v1/products/{b}/runs/")
        assert response.status_code == 202
        run = wait_until(lambda: (r := Run.objects.get(pk=response.json()["id"])).status in ("succeeded", "failed")
                         and r, timeout=60, what="B's run", log=e2e["log"])
        assert run.status == "succeeded", run.error
        wait_until(lambda: usage.sample() and _row(a, "daily", "run", b), timeout=20, what="B's run counted")
        assert (_row(a, "daily", "run", b).reads, _row(a, "daily", "run", b).last_read_at) == (1, run.finished_at)

        # B's amendment drops A: its grant goes, and its next read is refused, which usage shows.
        version = api(bob).get(f"/api/v1/products/{b}/").json()["version"]
        api(bob).patch(f"/api/v1/products/{b}/", {"version": version, "depends_on": []}, format="json")
        last = _last_job_id(b)
        assert _submit(api, bob, b)["status"] == "approved"
        _next_job(b, last, e2e["log"])
        with _connect(creds_b) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {pub}.orders")
        wait_until(lambda: usage.sample() and _row(a, "orders", "product", b).failed_reads, timeout=20,
                   what="B's refused read in the warehouse's log")
        refused = api(alice).get(f"/api/v1/products/{a}/usage/").json()[0]["failed_reads"]
        assert [(f["who"], f["failed_reads"], f["error"]) for f in refused] == [
            (b, 1, f"permission denied for schema {pub}")]
        assert _row(a, "orders", "product", b).reads == 2  # the refusal is no read
    finally:
        _destroy_all(api, priya, [b, a], e2e["log"])
