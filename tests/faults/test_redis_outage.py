"""Redis stopped (a crash: it keeps nothing) and started again under a running portal.

Nothing of the portal exits, pages and the API keep answering, work queued while Redis was down
starts within seconds of its return, and every job and run ends once, whatever Redis forgot.
"""
import json
import time
import uuid

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token

from provisioning.models import Job, JobLogLine, Run
from tests.factories import TeamFactory, member_of, platform_user, wid_payload
from tests.faults.portal import Portal, PrivateRedis

pytestmark = pytest.mark.e2e

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}
FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def portal(transactional_db, tmp_path):
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    portal = Portal(tmp_path, redis, TRIGGERS_BEAT="true")  # the beat ticks that watch raw/ too
    portal.redis = redis
    portal.start()
    yield portal
    portal.stop()
    redis.stop()


def _session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def _propose(portal, token, team, slug, **extra):
    status, _, body = portal.request("POST", "/api/v1/products/", token=token,
                                     body=wid_payload(slug=slug, team=team.slug, **LOW_RISK, **extra))
    assert status == 201, body
    status, headers, body = portal.request("POST", f"/api/v1/products/{slug}/submit/", token=token, body={})
    return status, headers, body


def test_a_redis_crash_loses_nothing_stops_no_process_and_work_resumes_within_seconds(portal):
    team = TeamFactory()
    alice, priya = member_of(team), platform_user()
    token = Token.objects.create(user=alice).key
    session = _session_of(priya)
    live, running, later = (f"redis-{name}-{uuid.uuid4().hex[:5]}" for name in ("live", "busy", "later"))

    # A product that is provisioned, and one whose apply is running when Redis goes.
    assert _propose(portal, token, team, live, triggers={"on_file": True})[0] == 200
    portal.wait_for(lambda: Job.objects.filter(product__slug=live, status="succeeded").exists(), 120,
                    "the first product's apply")
    assert _propose(portal, token, team, running)[0] == 200
    portal.wait_for(lambda: Job.objects.filter(product__slug=running, status__in=["running", "applying"]).exists(),
                    60, "the second product's apply to start")

    portal.redis.stop()

    # Pages and the API answer; writes are accepted (or refused with a 503 to retry, never a 500).
    for path in ("/api/v1/products/", f"/api/v1/products/{live}/", f"/api/v1/products/{live}/history/"):
        assert portal.request("GET", path, token=token)[0] == 200, path
    for path in ("/products/", f"/products/{live}/", "/my/"):
        assert portal.request("GET", path, session=session)[0] == 200, path
    status, _, page = portal.request("GET", "/dashboard/", session=session)
    assert status == 200 and "Redis is down" in page
    status, headers, body = _propose(portal, token, team, later)
    assert status == 200 or (status == 503 and headers.get("Retry-After")), (status, body)
    status, _, body = portal.request("POST", f"/api/v1/products/{live}/runs/", token=token, body={})
    assert status == 202, body
    run_id = json.loads(body)["id"]
    assert Job.objects.get(product__slug=later).status == "queued"
    # A file lands while no tick can reach the worker: it starts its run once Redis is back.
    (settings.LAKE_ROOT / live / "raw" / "during-outage.csv").write_text("id\n1\n")

    time.sleep(2)
    portal.redis.start()  # empty: every message sent before the crash is gone
    back = time.monotonic()

    started = portal.wait_for(
        lambda: Job.objects.filter(product__slug=later).exclude(status="queued").first(), 30,
        "the job approved during the outage to start")
    waited = time.monotonic() - back
    print(f"the job approved while Redis was down started {waited:.1f} s after Redis came back")
    assert started and waited < 20
    portal.wait_for(lambda: Run.objects.get(pk=run_id).status in FINAL, 60, "the run queued during the outage")
    file_run = portal.wait_for(lambda: Run.objects.filter(product__slug=live, trigger="file").first(), 30,
                               "the file dropped during the outage to start a run")
    portal.wait_for(lambda: Run.objects.get(pk=file_run.pk).status in FINAL, 60, "the file's run")
    portal.wait_for(lambda: not Job.objects.exclude(status__in=FINAL).exists(), 180, "every job to end")

    assert Run.objects.get(pk=run_id).status == "succeeded"
    for job in Job.objects.all():
        # Once each: a job that ran twice would have rendered twice.
        renders = JobLogLine.objects.filter(job=job, text__startswith="Rendering the").count()
        assert renders == 1, (job, renders)
    assert set(Job.objects.values_list("status", flat=True)) <= {"succeeded", "failed"}
    # The apply that was running when Redis died finished, or failed saying why; never stuck.
    busy = Job.objects.get(product__slug=running)
    assert busy.status == "succeeded" or busy.error, busy.error
    assert all(portal.alive().values()), portal.alive()
