"""Choreography for real (provisioning/triggers.py, docs/adr/0021): a real Celery worker and beat, three
products provisioned by terraform on the local target, their real lake folders and pipelines.

A (`on_file`) ← B (`on_upstream: [A]`) ← C (`on_upstream: [A, B]`, a diamond's join): one file dropped in
A's raw/ runs A, then B, then C, each once and by itself, in one wave, labelled with what started it.
Then B's pipeline breaks: the next file runs A, B fails, C gets no run, and the API says the chain
stopped at B.
"""
import subprocess
import sys
import uuid
from datetime import datetime

import pytest
from django.conf import settings

from provisioning.models import Job, Provisioning, Run, RunLogLine
from tests.e2e.test_products_live_on import _admin, _wait_job
from tests.factories import TeamFactory, member_of, wid_payload
from tests.worker import ROOT, portal_env, wait_until

pytestmark = pytest.mark.e2e

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def provisioning_on(settings):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]


@pytest.fixture
def beat(e2e, tmp_path):
    """Celery beat with the triggers' ticks, sending to the session's worker; stopped before the test's
    database is emptied (it is set up after `e2e`, so torn down before it)."""
    env = portal_env(e2e, TRIGGERS_BEAT="true")
    log = open(tmp_path / "beat.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
                                "--schedule", str(tmp_path / "celerybeat-schedule")],
                               env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def _runs(api, user, slug) -> list[dict]:
    return api(user).get(f"/api/v1/products/{slug}/runs/").json()


def _finished_runs(api, user, slug, count, log) -> list[dict]:
    """The product's runs, oldest first, once `count` of them have finished."""
    def done():
        found = _runs(api, user, slug)
        return len(found) >= count and all(r["status"] in ("succeeded", "failed", "cancelled") for r in found) \
            and list(reversed(found))
    return wait_until(done, timeout=60, what=f"{count} finished runs of {slug}", log=log)


def _remove(slugs: list[str]) -> None:
    """What terraform made for the products, removed directly: three destroy jobs would take longer than
    the rest of the test (destroys are tested in test_provisioning_end_to_end.py). As bench/harness.py
    cleans up: the warehouse's schemas, roles and queue rows, the Terraform states, the folders."""
    import shutil

    import psycopg
    from psycopg import sql

    Provisioning.objects.filter(product__slug__in=slugs).update(retired=True)  # nothing starts their runs
    wait_until(lambda: not Run.objects.filter(product__slug__in=slugs, status__in=["queued", "running"]).exists(),
               timeout=60, what="the products' runs to end")
    names = [slug.replace("-", "_") for slug in slugs]
    with _admin() as admin:
        for name in names:
            for schema in (f"p_{name}", f"pub_{name}"):
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        for role in [f"{kind}_{name}" for name in names for kind in ("p", "r")]:
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        admin.execute("DELETE FROM platform_registry.compute_queues WHERE product = ANY(%s)", [slugs])
    with psycopg.connect(settings.TF_STATE_DATABASE_URL, autocommit=True) as state:
        state.execute("DELETE FROM terraform_remote_state.states WHERE name = ANY(%s)", [slugs])
    for slug in slugs:
        shutil.rmtree(settings.LAKE_ROOT / slug, ignore_errors=True)
        shutil.rmtree(settings.PIPELINES_ROOT / slug, ignore_errors=True)


def _seconds(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def _log(run_id) -> str:
    return "\n".join(RunLogLine.objects.filter(run_id=run_id).values_list("text", flat=True))


def test_a_file_starts_a_wave_that_runs_each_downstream_once_in_order_and_a_failure_stops_it(
        e2e, api, client, provisioning_on, beat):
    team = TeamFactory()
    alice = member_of(team)
    tag = uuid.uuid4().hex[:6]
    a, b, c = f"wave-a-{tag}", f"wave-b-{tag}", f"wave-c-{tag}"
    specs = {a: {"schedule": "0 6 * * *", "triggers": {"on_file": True, "on_upstream": []}},
             b: {"depends_on": [a], "triggers": {"on_file": False, "on_upstream": [a]}},
             c: {"depends_on": [a, b], "triggers": {"on_file": False, "on_upstream": [a, b]}}}
    try:
        for slug, spec in specs.items():  # all three at once: their applies, then the grants, run side by side
            response = api(alice).post("/api/v1/products/", wid_payload(slug=slug, team=team.slug, **LOW_RISK, **spec),
                                       format="json")
            assert response.status_code == 201, response.json()
            assert api(alice).post(f"/api/v1/products/{slug}/submit/", format="json").json()["status"] == "approved"
        for slug in specs:
            _wait_job(Job.objects.get(product__slug=slug, origin="approval").pk, e2e["log"])
        wait_until(lambda: not Job.objects.filter(status__in=Job.ACTIVE).exists(), timeout=60,
                   what="the grants of B and C", log=e2e["log"])

        def read(slug):
            return api(alice).get(f"/api/v1/products/{slug}/provisioning/").json()["triggers"]

        wait_until(lambda: read(c)["on_upstream"], timeout=30, what="the triggers read by the worker", log=e2e["log"])
        assert read(c)["on_upstream"] == [a, b] and read(b)["on_upstream"] == [a]
        state = read(a)
        assert state["on_file"] and state["schedule"] == "0 6 * * *" and state["next_run"].endswith("06:00:00Z")
        assert not state["paused"]

        # One file in A's raw/: A runs, then B, then C (which waited for both of its upstreams), once each.
        (settings.LAKE_ROOT / a / "raw" / "orders.csv").write_text("Order Id,Amount\n1,10\n2,20\n")
        [run_a] = _finished_runs(api, alice, a, 1, e2e["log"])
        [run_b] = _finished_runs(api, alice, b, 1, e2e["log"])
        [run_c] = _finished_runs(api, alice, c, 1, e2e["log"])
        assert [r["status"] for r in (run_a, run_b, run_c)] == ["succeeded"] * 3, _log(run_c["id"])
        assert run_a["trigger"] == "file" and run_a["wave"] == run_a["id"]
        assert run_b["trigger"] == f"upstream:{a}#{run_a['id']}"
        assert run_c["trigger"] == f"upstream:{b}#{run_b['id']}"
        assert {r["wave"] for r in (run_a, run_b, run_c)} == {run_a["id"]}
        assert run_a["finished_at"] <= run_b["started_at"] and run_b["finished_at"] <= run_c["started_at"]
        # Handed on by the worker as each run ended, not by beat's sweep (30 s later) for a lost hand-on.
        assert _seconds(run_a["finished_at"], run_b["started_at"]) < 15
        assert _seconds(run_b["finished_at"], run_c["started_at"]) < 15
        assert "orders.csv: 2 rows" in _log(run_a["id"])
        assert all(r["chain_stopped_at"] is None for r in (run_a, run_b, run_c))
        client.force_login(alice)
        page = client.get(f"/products/{c}/").content.decode()
        assert f"upstream:{b}#{run_b['id']}" in page and f"<td>{run_a['id']}</td>" in page  # its trigger and wave

        # B's pipeline breaks: the next file runs A, B fails, C gets no run, and the API says where.
        repo = settings.PIPELINES_ROOT / b
        (repo / "pipeline.py").write_text("raise SystemExit('the source changed its columns')\n")
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=Team", "-c", "user.email=team@example.com",
                        "commit", "-qam", "Break the pipeline"], check=True)
        (settings.LAKE_ROOT / a / "raw" / "more.csv").write_text("Order Id,Amount\n3,30\n")
        second_a = _finished_runs(api, alice, a, 2, e2e["log"])[1]
        failed = wait_until(lambda: (r := _runs(api, alice, b)[0])["stopped_chain"] and r, timeout=60,
                            what="B's failure handed on", log=e2e["log"])
        assert second_a["trigger"] == "file" and second_a["status"] == "succeeded"
        assert (failed["status"], failed["trigger"]) == ("failed", f"upstream:{a}#{second_a['id']}")
        assert failed["chain_stopped_at"] == b and failed["stopped_chain"] == [c]
        assert f"Chain stopped at {b}: {c} get no run in wave {second_a['id']}." in _log(failed["id"])
        assert _runs(api, alice, a)[0]["chain_stopped_at"] == b  # seen from the run that began the wave too
        assert len(_runs(api, alice, c)) == 1
        assert Run.objects.filter(wave=second_a["id"]).count() == 2
    finally:
        _remove([a, b, c])
