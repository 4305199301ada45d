"""The outgoing webhook, against a real HTTP receiver on loopback: events, signature, retries."""
import hashlib
import hmac
import json
import socket
import time
from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.db import transaction
from django.utils import timezone

from onboarding import services as wid
from provisioning import webhooks
from portal.work import deliveries, kernel
from portal.work.models import Delivery
from provisioning.models import Job, Provisioning
from provisioning.signals import drift_detected, job_finished
from tests.factories import wid_payload
from tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db
SECRET = "a-shared-secret-of-some-length"


@pytest.fixture
def receiver(settings):
    server = Receiver()
    settings.NOTIFY_WEBHOOK_URL = server.url
    settings.NOTIFY_WEBHOOK_SECRET = SECRET
    settings.NOTIFY_WEBHOOK_RETRY_BASE = 10.0
    yield server
    server.close()


@pytest.fixture
def enqueued(monkeypatch):
    """The deliveries whose task would be sent to the worker, by id."""
    sent = []

    def send(task_name, *args, **options):
        if task_name == "portal.work.tasks.deliver":
            sent.append(args[0])
        return True

    monkeypatch.setattr("portal.work.dispatch.send", send)
    return sent


def webhook_rows():
    return Delivery.objects.filter(channel="webhook")  # review e-mails share the outbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_due(delivery):
    webhook_rows().filter(pk=delivery.pk).update(available_at=timezone.now())


def submitted(member, slug="customer-churn", **overrides):
    wid.wid_create(user=member, data=wid_payload(slug=slug, **overrides))
    return wid.wid_submit(user=member, slug=slug, comment="Ready for review.")


def test_submit_sends_a_signed_event_the_receiver_can_verify(receiver, member, enqueued):
    product = submitted(member)
    delivery = webhook_rows().get()
    assert delivery.event == "wid.submitted" and delivery.status == "pending"
    assert deliveries.deliver(delivery.pk) == "delivered"

    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/hooks/portal"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Portal-Event"] == "wid.submitted"
    assert headers["X-Portal-Delivery"] == str(delivery.delivery_id)
    stamp = headers["X-Portal-Timestamp"]
    assert abs(int(stamp) - time.time()) < 60
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Portal-Signature"] == expected
    assert webhooks.verify(SECRET, timestamp=stamp, body=body, header=headers["X-Portal-Signature"])
    assert not webhooks.verify("another-secret-altogether", timestamp=stamp, body=body,
                               header=headers["X-Portal-Signature"])
    assert not webhooks.verify(SECRET, timestamp=stamp, body=body + b" ", header=headers["X-Portal-Signature"])
    assert not webhooks.verify(SECRET, timestamp=stamp, body=body, header=headers["X-Portal-Signature"],
                               now=int(stamp) + 301)  # a replay, five minutes on

    document = json.loads(body)
    assert document["id"] == str(delivery.delivery_id) and document["event"] == "wid.submitted"
    data = document["data"]
    assert data["product"]["slug"] == product.slug and data["product"]["team"] == "growth-analytics"
    assert data["product"]["status"] == "submitted"
    assert data["product"]["url"].endswith(f"/products/{product.slug}/")
    assert data["actor"] == "alice" and data["by_policy"] is False and data["comment"] == "Ready for review."
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 1 and delivery.last_status_code == 204
    assert deliveries.deliver(delivery.pk) == "not due"  # a second task for it sends nothing
    assert len(receiver.requests) == 1


def test_each_decision_is_an_event_and_the_policy_has_no_actor(receiver, member, platform, enqueued,
                                                              django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        submitted(member, slug="churn-a")
    wid.wid_approve(user=platform, slug="churn-a")
    submitted(member, slug="churn-b")
    wid.wid_reject(user=platform, slug="churn-b", comment="Out of scope.")
    submitted(member, slug="churn-c")
    wid.wid_request_changes(user=platform, slug="churn-c", comment="Which tier?")
    wid.wid_create(user=member, data=wid_payload(slug="churn-d", classification="internal", pii=False))
    product = wid.wid_submit(user=member, slug="churn-d")  # low risk: the policy approves it
    assert product.status == "approved"

    events = [(d.event, d.payload["product"]["slug"], d.payload["actor"])
              for d in webhook_rows().order_by("id")]
    assert events == [
        ("wid.submitted", "churn-a", "alice"), ("wid.approved", "churn-a", "priya"),
        ("wid.submitted", "churn-b", "alice"), ("wid.rejected", "churn-b", "priya"),
        ("wid.submitted", "churn-c", "alice"), ("wid.changes_requested", "churn-c", "priya"),
        ("wid.submitted", "churn-d", "alice"), ("wid.approved", "churn-d", None),
    ]
    rejected = webhook_rows().get(event="wid.rejected")
    assert rejected.payload["comment"] == "Out of scope." and rejected.payload["by_policy"] is False
    assert webhook_rows().get(event="wid.approved", payload__actor=None).payload["by_policy"] is True
    # A row is handed to the worker once its transaction commits.
    assert enqueued == []
    for callback in callbacks:
        if getattr(callback, "__qualname__", "").startswith("dispatch."):
            callback()
    assert webhook_rows().get(event="wid.submitted", payload__product__slug="churn-a").pk in enqueued


def test_job_finished_and_drift_are_events_without_secrets(receiver, member, platform, enqueued):
    product = submitted(member)
    wid.wid_approve(user=platform, slug=product.slug)
    job = Job.objects.create(product=product, action="apply", status="failed", requested_by=platform,
                             error="Error: pq: permission denied\n  with localplatform_schema.storage",
                             outputs={"storage_password": "hunter2-secret"}, finished_at=timezone.now())
    job_finished.send(sender=Job, job=job)
    drift_detected.send(sender=Provisioning, product=product, details=["localplatform_queue.compute"])

    finished = webhook_rows().get(event="job.finished")
    assert finished.payload["job"]["id"] == job.pk and finished.payload["job"]["status"] == "failed"
    assert finished.payload["job"]["error"] == "Error: pq: permission denied"
    assert finished.payload["job"]["requested_by"] == "priya"
    assert finished.payload["job"]["url"].endswith(f"/jobs/{job.pk}/")
    assert finished.payload["product"]["slug"] == product.slug
    assert "hunter2" not in json.dumps(finished.payload)
    drifted = webhook_rows().get(event="product.drifted")
    assert drifted.payload["details"] == ["localplatform_queue.compute"]
    for delivery in (finished, drifted):
        assert deliveries.deliver(delivery.pk) == "delivered"
    assert [r["headers"]["X-Portal-Event"] for r in receiver.requests] == ["job.finished", "product.drifted"]


def test_no_url_no_rows(settings, member, enqueued):
    settings.NOTIFY_WEBHOOK_URL = ""
    submitted(member)
    assert not webhook_rows().exists() and not set(enqueued) & set(webhook_rows().values_list("pk", flat=True))


def test_the_event_is_written_with_the_change_or_not_at_all(receiver, member, enqueued):
    wid.wid_create(user=member, data=wid_payload())
    with pytest.raises(RuntimeError), transaction.atomic():
        wid.wid_submit(user=member, slug="customer-churn")
        assert webhook_rows().count() == 1
        raise RuntimeError("the request fails after the submit")
    assert not webhook_rows().exists()


def test_a_receiver_that_is_down_is_retried_with_backoff_until_it_answers(settings, member, enqueued):
    port = free_port()  # nothing listens here yet
    settings.NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{port}/hook"
    settings.NOTIFY_WEBHOOK_SECRET = SECRET
    settings.NOTIFY_WEBHOOK_RETRY_BASE = 10.0
    submitted(member)
    delivery = webhook_rows().get()

    before = timezone.now()
    assert deliveries.deliver(delivery.pk) == "retry in 10 s"
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code is None
    assert "refused" in delivery.last_error.lower()
    assert timedelta(seconds=9) < delivery.available_at - before < timedelta(seconds=12)
    assert enqueued.count(delivery.pk) == 1  # it calls itself back for the next attempt
    kernel.reconcile()
    assert enqueued.count(delivery.pk) == 1  # that call is on its way: the reconciler leaves it
    assert deliveries.deliver(delivery.pk) == "not due"  # too early: a stray task sends nothing

    make_due(delivery)
    assert deliveries.deliver(delivery.pk) == "retry in 20 s"  # still down: the wait doubles

    server = Receiver(port)  # the receiver comes back
    try:
        make_due(delivery)
        webhook_rows().filter(pk=delivery.pk).update(dispatched_to="a-redis-that-restarted")  # the call is lost
        sent = enqueued.count(delivery.pk)
        kernel.reconcile()
        assert enqueued.count(delivery.pk) == sent + 1  # the reconciler sends it again
        kernel.reconcile()
        assert enqueued.count(delivery.pk) == sent + 1  # once, not at every round
        assert deliveries.deliver(delivery.pk) == "delivered"
    finally:
        server.close()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.last_error == ""
    [request] = server.requests
    assert request["headers"]["X-Portal-Delivery"] == str(delivery.delivery_id)


def test_5xx_408_and_429_are_retried_other_4xx_are_final(receiver, member, enqueued):
    submitted(member)
    delivery = webhook_rows().get()
    receiver.answers = [(503, {}), (429, {"Retry-After": "120"}), (408, {}), (410, {})]
    assert deliveries.deliver(delivery.pk) == "retry in 10 s"
    make_due(delivery)
    assert deliveries.deliver(delivery.pk) == "retry in 120 s"  # the receiver's Retry-After, when longer
    make_due(delivery)
    assert deliveries.deliver(delivery.pk) == "retry in 40 s"
    make_due(delivery)
    assert deliveries.deliver(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 4 and delivery.last_status_code == 410
    assert delivery.last_error.startswith("HTTP 410")
    make_due(delivery)
    assert deliveries.deliver(delivery.pk) == "not due"
    sent = enqueued.count(delivery.pk)
    kernel.reconcile()
    assert enqueued.count(delivery.pk) == sent  # given up: nothing sends it again
    assert len(receiver.requests) == 4


def test_a_redirect_is_not_followed(receiver, member, enqueued):
    submitted(member)
    delivery = webhook_rows().get()
    receiver.answers = [(302, {"Location": "http://example.invalid/elsewhere"})]
    assert deliveries.deliver(delivery.pk) == "failed"
    assert len(receiver.requests) == 1


def test_it_gives_up_after_the_last_attempt(settings, receiver, member, enqueued):
    settings.NOTIFY_WEBHOOK_MAX_ATTEMPTS = 3
    submitted(member)
    delivery = webhook_rows().get()
    receiver.answers = [(500, {})] * 3
    outcomes = []
    for _ in range(3):
        make_due(delivery)
        outcomes.append(deliveries.deliver(delivery.pk))
    assert outcomes == ["retry in 10 s", "retry in 20 s", "failed"]


def test_the_wait_doubles_and_is_capped_at_an_hour(settings):
    settings.NOTIFY_WEBHOOK_RETRY_BASE = 10.0
    assert [webhooks.backoff(n) for n in (1, 2, 3, 9, 12)] == [10, 20, 40, 2560, 3600]
    assert webhooks.backoff(1, retry_after=99999) == 3600


def test_a_url_without_a_secret_fails_the_checks_and_nothing_goes_unsigned(settings, member, enqueued):
    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.NOTIFY_WEBHOOK_SECRET = ""
    ids = {e.id for e in run_checks()}
    assert "provisioning.E002" in ids
    settings.NOTIFY_WEBHOOK_URL = "ftp://example.com/hook"
    assert "provisioning.E001" in {e.id for e in run_checks()}
    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    submitted(member)
    delivery = webhook_rows().get()
    assert deliveries.deliver(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert "NOTIFY_WEBHOOK_SECRET" in delivery.last_error
    settings.NOTIFY_WEBHOOK_SECRET = SECRET
    assert "provisioning.E002" not in {e.id for e in run_checks()}


def test_the_dashboard_shows_the_webhooks_health(client, receiver, member, platform, enqueued):
    submitted(member)
    delivery = webhook_rows().get()
    receiver.answers = [(404, {})]
    deliveries.deliver(delivery.pk)
    client.force_login(platform)
    page = client.get("/dashboard/").content.decode()
    assert "Outgoing webhook" in page and "HTTP 404" in page
