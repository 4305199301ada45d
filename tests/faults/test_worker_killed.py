"""The worker SIGKILLed at a random moment of an apply (with its pool, as the OOM killer or a
machine losing power would): the job ends `failed` saying why, the product's lock and Terraform's
state lock are free, no process of the dead job lives on, and a retry converges to exactly one of
each resource.

`make test` runs one trial; `make trials` runs FAULT_TRIALS=10 (the moments are random; the seed is
printed so a failing trial can be replayed with FAULT_SEED).
"""
import os
import random
import signal
import subprocess
import time
import uuid

import pytest
from django.db.models import Q
from rest_framework.authtoken.models import Token

from provisioning.models import Job, JobLogLine
from tests.factories import TeamFactory, member_of, platform_user, wid_payload
from tests.faults.portal import Portal, PrivateRedis
from tests.provisioning.test_local_provider import admin_dsn  # noqa: F401  (fixture)
from tests.provisioning.test_provider_adoption import count_of_each

pytestmark = pytest.mark.e2e

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}
TRIALS = int(os.environ.get("FAULT_TRIALS", "1"))
SEED = int(os.environ.get("FAULT_SEED", str(int(time.time()))))


@pytest.fixture
def portal(transactional_db, tmp_path):
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    portal = Portal(tmp_path, redis)
    portal.start()
    yield portal
    portal.stop()
    redis.stop()


def _worker_group(portal) -> int:
    """The process group of the worker that the supervisor runs now (its pool and all)."""
    supervisor = portal.processes["worker"].pid
    children = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True).stdout.split()
    assert children, "the supervisor runs no worker"
    return os.getpgid(int(children[0]))


def _processes_in(workdir) -> list[int]:
    """Processes (terraform, its provider) still running in a product's working directory."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd").startswith(str(workdir)):
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _first(rows, timeout: float = 60):
    """The first row as soon as there is one: polled every 20 ms, so a quick apply is caught mid-way."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        row = rows.first()
        if row is not None:
            return row
        time.sleep(0.02)
    raise AssertionError("the apply never got going")


def _apply(portal, token, slug):
    status, _, body = portal.request("POST", f"/api/v1/products/{slug}/submit/", token=token, body={})
    assert status == 200, body
    return Job.objects.get(product__slug=slug, status__in=Job.ACTIVE)


def test_a_worker_killed_mid_apply_fails_the_job_clearly_frees_every_lock_and_a_retry_converges(portal, admin_dsn):
    rng = random.Random(SEED)
    print(f"FAULT_SEED={SEED} FAULT_TRIALS={TRIALS}")
    team = TeamFactory()
    alice, priya = member_of(team), platform_user()
    token, platform_token = Token.objects.create(user=alice).key, Token.objects.create(user=priya).key

    killed, attempts = 0, 0
    while killed < TRIALS:
        attempts += 1
        assert attempts <= 3 * TRIALS, f"only {killed} of {attempts} applies could be caught running"
        trial = killed
        slug = f"kill-{trial}-{uuid.uuid4().hex[:5]}"
        status, _, body = portal.request("POST", "/api/v1/products/", token=token,
                                         body=wid_payload(slug=slug, team=team.slug, **LOW_RISK))
        assert status == 201, body
        job = _apply(portal, token, slug)
        # A random moment of the apply, by its progress: after the n-th line of its log (render, init,
        # workspace, the resources being created), so a fast machine is caught as well as a slow one.
        moment = rng.randint(2, 24)
        progress = _first(Job.objects.filter(pk=job.pk).filter(Q(log_lines__gte=moment) | Q(status__in=Job.FINISHED)))
        if progress.status in Job.FINISHED:
            continue  # it ended first: nothing was killed, so this attempt proves nothing
        os.killpg(_worker_group(portal), signal.SIGKILL)
        killed_at = time.monotonic()
        ended = portal.wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=Job.FINISHED).first(), 120,
                                f"trial {trial}: the killed job to end")
        if ended.status == "succeeded":
            continue  # it finished in the instant before the kill
        killed += 1

        failed = portal.wait_for(lambda: Job.objects.filter(pk=job.pk, status="failed").first(), 120,
                                 f"trial {trial}: the killed job to fail")
        assert time.monotonic() - killed_at < 120
        assert "stopped answering" in failed.error, failed.error
        assert JobLogLine.objects.filter(job=failed, text__contains="retry").exists()
        portal.wait_for(lambda: not _processes_in(portal.workdir / slug), 10,
                        f"trial {trial}: the dead job's processes to end")

        # The product's lock is free (a retry is accepted) and so is Terraform's (it applies).
        status, _, body = portal.request("POST", f"/api/v1/jobs/{job.pk}/retry/", token=platform_token, body={})
        assert status == 202, body
        retry = Job.objects.get(retry_of=job)
        done = portal.wait_for(lambda: Job.objects.filter(pk=retry.pk, status__in=Job.FINISHED + ("planned",))
                               .first(), 120, f"trial {trial}: the retry")
        if done.status == "planned":  # it changes what the killed apply left: a person confirms
            assert portal.request("POST", f"/api/v1/jobs/{retry.pk}/confirm/", token=platform_token,
                                  body={})[0] == 202
            done = portal.wait_for(lambda: Job.objects.filter(pk=retry.pk, status__in=Job.FINISHED).first(),
                                   120, f"trial {trial}: the confirmed retry")
        log = "\n".join(JobLogLine.objects.filter(job=done).values_list("text", flat=True))
        assert done.status == "succeeded", f"trial {trial} (killed after log line {moment}):\n{log}"
        assert count_of_each(admin_dsn, slug) == {"roles": 1, "schemas": 1, "queues": 1}
        print(f"trial {trial}: killed after log line {moment} of the apply; failed after "
              f"{(failed.finished_at - failed.started_at).total_seconds():.1f} s of job time; retry converged")
