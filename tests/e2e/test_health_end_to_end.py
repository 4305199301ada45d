"""Health for real: a provisioned product's pipeline run writes its table port, and the worker measures
it (rows, checks) in the warehouse; a run whose table fails a check turns the product failing, told once."""
import uuid

import pytest

from portal.work.models import Delivery
from provisioning.models import Job, Run
from tests.e2e.test_products_live_on import LOW_RISK, _destroy_all, _wait_job
from tests.factories import TeamFactory, member_of, platform_user, wid_payload
from tests.worker import wait_until

pytestmark = pytest.mark.e2e

FACTS = {"name": "facts", "kind": "table", "freshness": "24h",
         "checks": {"rows_min": 1, "not_null": ["record"], "unique": ["line"]}}


def _run(api, user, slug, log) -> dict:
    """Start a run and wait until the worker has measured its ports: the product's health names it."""
    response = api(user).post(f"/api/v1/products/{slug}/runs/")
    assert response.status_code == 202, response.json()
    run_id = response.json()["id"]
    wait_until(lambda: Run.objects.filter(pk=run_id, status__in=["succeeded", "failed"]).exists(), timeout=60,
               what=f"run {run_id} to end", log=log)
    assert Run.objects.get(pk=run_id).status == "succeeded", api(user).get(f"/api/v1/runs/{run_id}/log/").json()

    def measured():
        body = api(user).get(f"/api/v1/products/{slug}/health/").json()
        return body if body["outputs"][0]["run"] == run_id else None

    return wait_until(measured, timeout=30, what=f"the ports of run {run_id} measured", log=log)


def test_the_worker_measures_the_table_a_run_wrote_and_a_failed_check_alerts_once(e2e, api, settings):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]
    team = TeamFactory()
    alice, priya = member_of(team), platform_user()
    slug = f"fresh-{uuid.uuid4().hex[:6]}"
    payload = wid_payload(slug=slug, team=team.slug, outputs=[FACTS], **LOW_RISK)
    assert api(alice).post("/api/v1/products/", payload, format="json").status_code == 201
    assert api(alice).post(f"/api/v1/products/{slug}/submit/", format="json").json()["status"] == "approved"
    _wait_job(Job.objects.get(product__slug=slug).pk, e2e["log"])
    try:
        raw = settings.LAKE_ROOT / slug / "raw"
        (raw / "customers.csv").write_text("id,name\n1,Ada\n2,Grace\n")
        body = _run(api, alice, slug, e2e["log"])
        [port] = body["outputs"]
        assert body["state"] == "ok" and body["reasons"] == []
        assert (port["rows"], port["stale"], port["freshness"]) == (2, False, "24h") and port["last_updated"]
        assert [(c["check"], c["passed"]) for c in port["checks"]] == [
            ("rows_min", True), ("not_null:record", True), ("unique:line", True)]

        # A second file: its line 1 repeats the first file's in the published table, whose key is `line`.
        (raw / "more.csv").write_text("id,name\n3,Linus\n")
        body = _run(api, alice, slug, e2e["log"])
        assert body["state"] == "failing" and body["outputs"][0]["rows"] == 3
        assert body["outputs"][0]["checks"][2] == {
            "check": "unique:line", "passed": False, "detail": "1 value of (line) appears more than once, in 2 rows"}
        alerts = Delivery.objects.filter(event="run.failed", payload__product__slug=slug)
        assert alerts.count() == 1 and alerts.get().payload["team"]["slug"] == team.slug
        mail = Delivery.objects.get(event="health.failing", channel="email")
        assert set(mail.recipients) == {alice.email, "maria@example.com", "tom@example.com"}

        body = _run(api, alice, slug, e2e["log"])  # failing still: nobody is told again
        assert body["state"] == "failing"
        assert Delivery.objects.filter(event__in=["run.failed", "health.failing"]).count() == 2
    finally:
        _destroy_all(api, priya, [slug], e2e["log"])
