"""The kernel for long work (portal/work/kernel.py), against the real PostgreSQL and Redis: a claim
takes a row once, a lost row is failed once, a wake-up call is sent again only when Redis lost it,
logs are capped and expire."""
import socket
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.utils import timezone

from docs_site.models import SiteBuild
from onboarding import services as onboarding_services
from portal.work import deliveries, kernel
from portal.work.models import Delivery
from provisioning.models import Job, JobLogLine, Provisioning, Run
from provisioning import runs
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def product(member):
    slug = f"kern-{uuid.uuid4().hex[:6]}"
    onboarding_services.wid_create(user=member, data=wid_payload(slug=slug, **LOW_RISK))
    return onboarding_services.wid_submit(user=member, slug=slug)


@pytest.fixture
def sent(monkeypatch):
    """Wake-up calls the kernel sends, as (task, id); the broker's identity is real (the machine's Redis)."""
    calls = []

    def send(task_name, *args, countdown=None, queue=None):
        calls.append((task_name, args[0]))
        return True

    monkeypatch.setattr("portal.work.dispatch.send", send)
    return calls


def _running(product, **fields) -> Job:
    return Job.objects.create(product=product, action="apply", status="running", worker="elsewhere:1",
                              started_at=timezone.now(), **fields)


@pytest.mark.django_db(transaction=True)
def test_a_row_is_claimed_once_however_many_tasks_arrive(product):
    job = Job.objects.create(product=product, action="apply")
    results = []
    barrier = threading.Barrier(4)

    def claim():
        from django.db import connection

        barrier.wait()
        results.append(kernel.claim(Job, job.pk, timeout=60))
        connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    job.refresh_from_db()
    assert job.status == "running" and job.worker.startswith(socket.gethostname())
    assert timedelta(seconds=59) < job.deadline_at - job.started_at <= timedelta(seconds=60)


def test_a_job_whose_worker_stopped_beating_is_failed_once_and_frees_its_product(product, settings, sent):
    settings.WORK_LOST_AFTER_SECONDS = 30
    lost = _running(product, heartbeat_at=timezone.now() - timedelta(seconds=31))

    assert kernel.reconcile()["lost"] == 1
    lost.refresh_from_db()
    assert lost.status == "failed" and "stopped answering" in lost.error and lost.finished_at
    assert JobLogLine.objects.filter(job=lost, text__contains="retry").exists()
    assert kernel.reconcile()["lost"] == 0  # once, not at every round
    assert Job.objects.create(product=product, action="plan").status == "queued"  # the lock is free


def test_a_job_still_beating_is_left_alone_and_one_past_its_deadline_is_stopped(product, settings, sent):
    settings.WORK_LOST_AFTER_SECONDS = 30
    settings.WORK_DEADLINE_GRACE_SECONDS = 60
    beating = _running(product, heartbeat_at=timezone.now(), deadline_at=timezone.now() + timedelta(hours=1))
    assert kernel.reconcile()["lost"] == 0
    assert Job.objects.get(pk=beating.pk).status == "running"

    Job.objects.filter(pk=beating.pk).update(deadline_at=timezone.now() - timedelta(seconds=61))
    assert kernel.reconcile()["lost"] == 1
    assert "past its deadline" in Job.objects.get(pk=beating.pk).error


def test_a_wake_up_call_is_sent_again_only_when_redis_lost_it_or_long_ago(product, settings, sent):
    settings.WORK_REDISPATCH_AFTER_SECONDS = 300
    identity = kernel.broker.broker_identity()
    assert identity, "the machine's Redis answers"
    queued = Job.objects.create(product=product, action="apply", available_at=timezone.now() - timedelta(seconds=1),
                                dispatched_at=timezone.now(), dispatched_to=identity)
    kernel.reconcile()
    assert ("provisioning.tasks.run_job", queued.pk) not in sent  # Redis still holds the call

    Job.objects.filter(pk=queued.pk).update(dispatched_to="a-redis-that-restarted")
    kernel.reconcile()
    assert sent.count(("provisioning.tasks.run_job", queued.pk)) == 1
    kernel.reconcile()
    assert sent.count(("provisioning.tasks.run_job", queued.pk)) == 1  # not a flood: once per loss

    Job.objects.filter(pk=queued.pk).update(dispatched_at=timezone.now() - timedelta(seconds=301))
    kernel.reconcile()
    assert sent.count(("provisioning.tasks.run_job", queued.pk)) == 2


def test_work_queued_while_redis_was_down_is_sent_by_the_reconciler(product, settings, monkeypatch,
                                                                      django_capture_on_commit_callbacks):
    monkeypatch.setattr("portal.work.dispatch.send", lambda *a, **kw: False)  # the broker refuses
    with django_capture_on_commit_callbacks(execute=True):
        job = Job.objects.create(product=product, action="apply")
        kernel.dispatch(job)
    job.refresh_from_db()
    assert job.dispatched_at is None  # the send failed, and the request that queued it never knew

    calls = []
    monkeypatch.setattr("portal.work.dispatch.send", lambda task, *args, **kw: calls.append(args[0]) or True)
    kernel.reconcile()
    assert job.pk in calls


def test_the_dispatch_is_recorded_before_the_wake_up_is_sent(product, monkeypatch, django_capture_on_commit_callbacks):
    """A worker may take the task at once: the row must not be held by the dispatcher's update then
    (the worker's claim skips locked rows and would give the call up, leaving it to the reconciler)."""
    seen = []
    monkeypatch.setattr("portal.work.dispatch.send", lambda task, pk, **kw: seen.append(
        Job.objects.filter(pk=pk).values_list("dispatched_at", flat=True).get()) or True)
    with django_capture_on_commit_callbacks(execute=True):
        job = Job.objects.create(product=product, action="apply")
        kernel.dispatch(job)
    assert len(seen) == 1 and seen[0] is not None
    kernel.dispatch_later(job, 30)
    assert len(seen) == 2 and seen[1] > seen[0]


def test_a_log_is_capped_with_one_line_saying_so(product, settings):
    settings.LOG_MAX_BYTES = 100
    job = _running(product)
    for n in range(20):
        kernel.append(job, f"line {n:02d} " + "x" * 10)
    job.refresh_from_db()
    texts = list(JobLogLine.objects.filter(job=job).order_by("number").values_list("text", flat=True))
    assert texts[-1].startswith("[log cut at 100 bytes") and job.log_truncated
    assert len(texts) < 20 and job.log_bytes <= 100 + len(texts[-1]) + 1
    assert texts[:-1] == [f"line {n:02d} " + "x" * 10 for n in range(len(texts) - 1)]


def test_secrets_are_redacted_from_the_log(product):
    job = _running(product)
    kernel.append(job, "connecting with hunter2-password", redact=("hunter2-password",))
    assert JobLogLine.objects.get(job=job).text == "connecting with ***"


def test_logs_of_work_finished_before_the_retention_are_removed(product, settings):
    settings.LOG_RETENTION_DAYS = 30
    old = _running(product)
    kernel.append(old, "old line")
    Job.objects.filter(pk=old.pk).update(status="succeeded", finished_at=timezone.now() - timedelta(days=31))
    recent = Job.objects.create(product=product, action="plan", status="succeeded", finished_at=timezone.now())
    kernel.append(recent, "recent line")

    assert kernel.prune_logs() == 1
    assert not JobLogLine.objects.filter(job=old).exists() and Job.objects.get(pk=old.pk).log_pruned_at
    assert JobLogLine.objects.filter(job=recent).count() == 1
    assert kernel.prune_logs() == 0


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_keeps_a_row_alive_and_sees_a_cancel(product):
    job = _running(product, heartbeat_at=timezone.now() - timedelta(minutes=5), cancel_requested=False)
    with kernel.Beat(job, interval=0.1, cancel_field="cancel_requested") as beat:
        time.sleep(0.5)
        assert Job.objects.get(pk=job.pk).heartbeat_at > timezone.now() - timedelta(seconds=2)
        assert not beat.should_cancel()
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        deadline = time.monotonic() + 3
        while not beat.should_cancel() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert beat.should_cancel()


def test_a_run_waits_for_a_free_slot_of_its_product_without_holding_a_worker(product, member, sent, settings):
    settings.RUN_WAIT_SECONDS = 5
    Provisioning.objects.update_or_create(product=product, defaults={"provisioned": True,
                                                                     "outputs": {"concurrency": 1}})
    Run.objects.create(product=product, requested_by=member, status="running", heartbeat_at=timezone.now())
    waiting = Run.objects.create(product=product, requested_by=member)

    assert runs.run_execute(waiting.pk) == "waiting"
    waiting.refresh_from_db()
    assert waiting.status == "queued" and waiting.available_at > timezone.now() + timedelta(seconds=4)
    assert ("provisioning.tasks.execute_run", waiting.pk) in sent  # it calls itself back for then
    assert runs.run_execute(waiting.pk) == "waiting"  # an early call does nothing


def test_a_receiver_answering_garbage_is_retried_then_given_up(member, settings, sent):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def garbage():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"\x00\xffnot http at all\r\n\r\n")
            conn.close()

    threading.Thread(target=garbage, daemon=True).start()
    settings.NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    settings.NOTIFY_WEBHOOK_SECRET = "a-secret-of-sixteen-chars"
    settings.NOTIFY_WEBHOOK_MAX_ATTEMPTS = 3
    try:
        delivery = deliveries.record("webhook", "wid.submitted", {"x": 1}, url=settings.NOTIFY_WEBHOOK_URL)
        outcomes = []
        for _ in range(4):
            Delivery.objects.filter(pk=delivery.pk).update(available_at=timezone.now())
            outcomes.append(deliveries.deliver(delivery.pk))
    finally:
        server.close()
    assert outcomes[:2] == ["retry in 10 s", "retry in 20 s"] and outcomes[2:] == ["failed", "not due"]
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 3 and delivery.lines.count() == 3


def test_review_e_mails_go_through_the_outbox_and_a_mail_server_failure_is_retried(
        member, platform, settings, mailoutbox, monkeypatch):
    onboarding_services.wid_create(user=member, data=wid_payload(slug="mailed", classification="confidential"))
    onboarding_services.wid_submit(user=member, slug="mailed")
    email = Delivery.objects.get(channel="email", event="wid.submitted")
    assert email.payload["subject"] == "[mailed] submitted for review" and len(email.recipients) >= 2
    assert mailoutbox == []  # nothing is sent inside the request

    import smtplib

    def refuse(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("the mail server went away")

    monkeypatch.setattr("portal.work.deliveries.send_mail", refuse)
    assert deliveries.deliver(email.pk).startswith("retry in")
    monkeypatch.undo()
    Delivery.objects.filter(pk=email.pk).update(available_at=timezone.now())
    assert deliveries.deliver(email.pk) == "delivered"
    assert [m.subject for m in mailoutbox] == ["[mailed] submitted for review"]


def test_time_limits_out_of_order_fail_the_checks(settings):
    assert "work.E001" not in {e.id for e in run_checks()}
    settings.CELERY_TASK_SOFT_TIME_LIMIT = settings.JOB_TIMEOUT_SECONDS - 1
    assert "work.E001" in {e.id for e in run_checks()}


def test_site_build_requests_of_one_site_coalesce(settings, sent):
    from docs_site import services

    for _ in range(5):
        services.site_request_build("edit")
    assert SiteBuild.objects.filter(status="queued", site=services.site_key()).count() == 1


def test_a_lost_run_and_a_lost_site_build_are_failed_once_with_the_reason_in_their_log(product, member, settings,
                                                                                      sent):
    settings.WORK_LOST_AFTER_SECONDS = 30
    stale = timezone.now() - timedelta(seconds=31)
    run = Run.objects.create(product=product, requested_by=member, status="running", heartbeat_at=stale)
    build = SiteBuild.objects.create(site="s", queue="q", status="running", heartbeat_at=stale)

    assert kernel.reconcile()["lost"] == 2
    run.refresh_from_db()
    build.refresh_from_db()
    assert run.status == build.status == "failed" and "stopped answering" in run.error
    assert "stopped answering" in run.lines.get().text and "stopped answering" in build.lines.get().text
    assert kernel.reconcile()["lost"] == 0
