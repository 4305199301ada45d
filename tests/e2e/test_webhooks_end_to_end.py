"""The outgoing webhook with a real worker: a receiver that is down gets every event once it is up."""
import json
import uuid

import pytest

from provisioning import webhooks
from portal.work.models import Delivery
from provisioning.models import Job
from tests.worker import WEBHOOK_SECRET, wait_until
from tests.factories import TeamFactory, member_of, wid_payload
from tests.http_receiver import Receiver

pytestmark = pytest.mark.e2e


def test_events_reach_a_receiver_that_was_down_signed_and_once_each(e2e, api, settings):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]
    settings.NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{e2e['webhook_port']}/hook"  # the worker's too
    settings.NOTIFY_WEBHOOK_SECRET = WEBHOOK_SECRET
    team = TeamFactory()
    alice = member_of(team)
    slug = f"hook-{uuid.uuid4().hex[:6]}"

    # The receiver is down: submit (approved by the policy) and provision all the same.
    payload = wid_payload(slug=slug, team=team.slug, classification="internal", pii=False, compute_tier="small")
    assert api(alice).post("/api/v1/products/", payload, format="json").status_code == 201
    assert api(alice).post(f"/api/v1/products/{slug}/submit/", format="json").json()["status"] == "approved"
    job = Job.objects.get(product__slug=slug)
    wait_until(lambda: Job.objects.filter(pk=job.pk, status="succeeded").exists(), timeout=120,
               what="the apply job to succeed", log=e2e["log"])
    mine = Delivery.objects.filter(channel="webhook", payload__product__slug=slug)
    wait_until(lambda: mine.count() == 3 and all(d.attempts >= 1 for d in mine.all()), timeout=30,
               what="a first, failed attempt at each event", log=e2e["log"])
    assert set(mine.values_list("status", flat=True)) == {"pending"}
    assert all("refused" in d.last_error.lower() for d in mine.all())

    receiver = Receiver(e2e["webhook_port"])  # it comes back: the worker's retries get through
    try:
        wait_until(lambda: set(mine.values_list("status", flat=True)) == {"delivered"}, timeout=60,
                   what="every event to be delivered", log=e2e["log"])
    finally:
        receiver.close()

    got = [r for r in receiver.requests if json.loads(r["body"])["data"]["product"]["slug"] == slug]
    events = sorted(r["headers"]["X-Portal-Event"] for r in got)
    assert events == ["job.finished", "wid.approved", "wid.submitted"]  # each once
    for request in got:
        headers = request["headers"]
        assert webhooks.verify(WEBHOOK_SECRET, timestamp=headers["X-Portal-Timestamp"], body=request["body"],
                               header=headers["X-Portal-Signature"])
    finished = json.loads(next(r["body"] for r in got if r["headers"]["X-Portal-Event"] == "job.finished"))
    assert finished["data"]["job"]["status"] == "succeeded" and finished["data"]["job"]["id"] == job.pk
    assert all(d.attempts >= 2 for d in mine.all())
