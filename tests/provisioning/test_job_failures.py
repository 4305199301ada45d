"""Jobs that cannot succeed fail with the error in their log and a clear status; nothing is left
untracked. The worker's code runs in-process here (`job_run`), with real terraform."""
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone

from onboarding import services as onboarding_services
from portal.work import kernel
from provisioning import services
from provisioning.models import Job
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


def approved_product(member, **overrides):
    slug = f"fail-{uuid.uuid4().hex[:6]}"
    onboarding_services.wid_create(user=member, data=wid_payload(slug=slug, **{**LOW_RISK, **overrides}))
    return onboarding_services.wid_submit(user=member, slug=slug)


def run(platform, product, action="apply"):
    job = services.job_start(user=platform, product=product, action=action)
    services.job_run(job.pk)
    job.refresh_from_db()
    return job


def log_text(job):
    return "\n".join(line.text for line in services.job_log(job))


@pytest.fixture
def template_with_a_missing_provider(settings, tmp_path):
    """A `local` template that needs a provider nobody can install here (no network, not mirrored)."""
    target = tmp_path / "templates" / "local"
    target.mkdir(parents=True)
    (target / "main.tf").write_text(
        'terraform {\n  backend "pg" {}\n  required_providers {\n'
        '    nosuch = {\n      source = "portal.local/platform/nosuch"\n    }\n  }\n}\n'
        'resource "nosuch_thing" "x" {}\n'
    )
    settings.TERRAFORM_TEMPLATES = tmp_path / "templates"


def test_a_provider_that_cannot_be_installed_fails_the_job_at_init(member, platform,
                                                                   template_with_a_missing_provider):
    product = approved_product(member)

    job = run(platform, product)

    assert (job.status, job.step) == ("failed", "init")
    assert "terraform init failed" in job.error
    assert "Error:" in log_text(job)
    assert "fail the same way until the template or the WID changes" in log_text(job)  # a retry cannot help
    assert services.job_start(user=platform, product=product, action="plan")  # the lock was released


def test_a_template_that_fails_to_render_fails_the_job(member, platform, settings, tmp_path):
    product = approved_product(member)
    settings.TERRAFORM_TEMPLATES = tmp_path / "no-templates"

    job = run(platform, product)

    assert (job.status, job.step) == ("failed", "render")
    assert "no template for target 'local'" in log_text(job)


def test_a_held_state_lock_fails_the_job_after_the_lock_timeout_and_a_retry_completes_it(member, platform, settings):
    product = approved_product(member)
    first = run(platform, product, "plan")  # creates the workspace's state row
    assert first.status == "succeeded", log_text(first)
    settings.TERRAFORM_LOCK_TIMEOUT = "1s"
    with psycopg.connect(services.state_conn_str(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(id) FROM terraform_remote_state.states WHERE name = %s",
                       [product.slug])
        locked = run(platform, product)

    assert locked.status == "failed"
    assert "state lock" in log_text(locked).lower()
    assert "may pass on a retry" in log_text(locked)
    retried = services.job_retry(user=platform, job=locked)
    services.job_run(retried.pk)
    retried.refresh_from_db()
    try:
        assert retried.status == "succeeded", log_text(retried)
        assert retried.retry_of_id == locked.pk
    finally:
        settings.TERRAFORM_LOCK_TIMEOUT = "60s"  # the clean-up waits as a job normally would
        destroy = services.job_start(user=platform, product=product, action="destroy")
        services.job_run(destroy.pk)
        services.job_confirm(user=platform, job=Job.objects.get(pk=destroy.pk))
        services.job_run(destroy.pk)
        destroyed = Job.objects.get(pk=destroy.pk)
        assert destroyed.status == "succeeded", log_text(destroyed)


def test_the_reconciler_fails_a_job_whose_worker_died_and_frees_the_product(member, platform):
    product = approved_product(member)
    job = services.job_start(user=platform, product=product, action="apply")
    Job.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now() - timedelta(minutes=5))

    result = kernel.reconcile()

    job.refresh_from_db()
    assert result["lost"] == 1
    assert job.status == "failed" and "worker" in job.error
    assert services.job_start(user=platform, product=product, action="plan").status == "queued"


def test_a_job_that_is_still_heartbeating_is_left_alone(member, platform):
    product = approved_product(member)
    job = services.job_start(user=platform, product=product, action="apply")
    Job.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now())

    assert kernel.reconcile()["lost"] == 0
    assert Job.objects.get(pk=job.pk).status == "running"


def test_running_a_job_twice_does_nothing_the_second_time(member, platform, template_with_a_missing_provider):
    product = approved_product(member)
    job = run(platform, product)
    lines = job.log_lines

    services.job_run(job.pk)  # e.g. a redelivered task

    job.refresh_from_db()
    assert job.status == "failed" and job.log_lines == lines


def test_a_worker_that_comes_back_after_the_reconciler_failed_its_job_changes_nothing(member, platform):
    product = approved_product(member)
    job = services.job_start(user=platform, product=product, action="apply")
    Job.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert kernel.reconcile()["lost"] == 1
    finished = []
    from provisioning.signals import job_finished

    def count(sender, job, **kwargs):
        finished.append(job.status)

    job_finished.connect(count)
    try:
        late = Job.objects.get(pk=job.pk)
        services._set(late, status="applying", step="apply")  # the old worker, still going
        services._finish(late, "succeeded", step="")
    finally:
        job_finished.disconnect(count)
    job.refresh_from_db()
    assert job.status == "failed" and "stopped answering" in job.error
    assert finished == []  # announced once, by the reconciler, not again
