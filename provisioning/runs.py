"""Runs of a product's scaffolded pipeline, on the product's own compute quota.

The product's queue (`runs.<slug>`, registered by the local provider with its quotas) is enforced
here: a Redis semaphore holds at most `concurrency` runs of one product at a time, a run that
finds no free slot goes back to wait without holding a worker, and each run is a process limited
to the product's `memory_mb` that connects with the product's own credentials, under its role's
connection limit and statement timeout. A flood of runs of one product therefore uses at most
its own quota, and other products' runs go past it.
"""
import os
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import Conflict, NotAllowed, NotFound
from provisioning import terraform
from provisioning.models import Provisioning, Run, RunLogLine
from provisioning.services import state_conn_str, user_can_read_credentials

SLOT_TTL = 3600  # a slot whose run died is given back after this long


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def run_start(*, user, product) -> Run:
    if not user_can_read_credentials(user, product):
        raise NotAllowed("Only the product's team and the platform run its pipeline.")
    state = Provisioning.objects.filter(product=product, provisioned=True, retired=False).first()
    if state is None:
        raise Conflict(f"{product.slug} is not provisioned: there is no pipeline to run yet.")
    run = Run.objects.create(product=product, requested_by=user, queue=state.outputs.get("queue", ""))
    transaction.on_commit(partial(_enqueue, run.pk))
    return run


def _enqueue(run_id: int, countdown: float = 0) -> None:
    from provisioning.tasks import execute_run

    execute_run.apply_async(args=[run_id], countdown=countdown)


def run_get(run_id: int) -> Run:
    try:
        return Run.objects.select_related("product", "product__team", "requested_by").get(pk=run_id)
    except Run.DoesNotExist:
        raise NotFound(f"No run {run_id}.") from None


def run_log(run: Run, *, offset: int = 0, limit: int = 1000) -> list[RunLogLine]:
    return list(RunLogLine.objects.filter(run=run, number__gt=offset).order_by("number")[:limit])


def _append(run: Run, text: str) -> None:
    run.log_lines += 1
    RunLogLine.objects.create(run=run, number=run.log_lines, text=text[:10_000])
    Run.objects.filter(pk=run.pk).update(log_lines=run.log_lines)


def _acquire_slot(key: str, run_id: int, limit: int) -> bool:
    """Take one of `limit` slots; atomic in Redis (a Lua script), and expired slots are reclaimed."""
    script = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[3])
    if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 1 end
    if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
      redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) return 1
    end
    return 0
    """
    return bool(_redis().eval(script, 1, key, time.time(), run_id, SLOT_TTL, limit))


def _limit_memory(megabytes: int) -> None:
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_execute(run_id: int) -> str:
    """Run it if the product has a free slot; otherwise put it back in the queue ("waiting")."""
    run = run_get(run_id)
    if run.status != Run.Status.QUEUED:
        return run.status
    outputs = Provisioning.objects.get(product=run.product).outputs
    key = f"portal:runs:{run.product.slug}:slots"
    if not _acquire_slot(key, run.pk, int(outputs.get("concurrency") or 1)):
        _enqueue(run.pk, countdown=settings.RUN_WAIT_SECONDS)
        return "waiting"
    try:
        if not Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
                status=Run.Status.RUNNING, started_at=timezone.now()):
            return "taken"
        run.refresh_from_db()
        state = terraform.read_state(state_conn_str(), workspace=run.product.slug)
        values = {name: o.get("value") for name, o in (state.outputs if state else {}).items()}
        repo = Path(values["pipeline_repo"])
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
        Run.objects.filter(pk=run.pk).update(commit=commit.stdout.strip()[:40])
        dsn = (f"postgresql://{values['storage_role']}:{values['storage_password']}@{values['warehouse_host']}:"
               f"{values['warehouse_port']}/{values['warehouse_database']}")
        memory = int(outputs.get("memory_mb") or 512)
        _append(run, f"Running {repo.name} at {commit.stdout.strip()[:10]} on {run.queue} "
                     f"(memory {memory} MB, as {values['storage_role']}).")
        process = subprocess.Popen(
            [sys.executable, "pipeline.py"], cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, preexec_fn=partial(_limit_memory, memory),
            env={"PATH": os.environ.get("PATH", ""), "LAKE_PATH": values["lake_path"], "PRODUCT_DSN": dsn,
                 "PYTHONUNBUFFERED": "1"},
        )
        for line in process.stdout:
            _append(run, line.rstrip("\n").replace(values["storage_password"], "***"))
        code = process.wait(timeout=settings.RUN_TIMEOUT_SECONDS)
        status = Run.Status.SUCCEEDED if code == 0 else Run.Status.FAILED
        Run.objects.filter(pk=run.pk).update(status=status, exit_code=code, finished_at=timezone.now(),
                                             error="" if code == 0 else f"the pipeline exited with {code}")
        return status
    except Exception as exc:
        _append(run, f"Error: {type(exc).__name__}: {exc}")
        Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED, finished_at=timezone.now(),
                                             error=f"{type(exc).__name__}: {exc}"[:2000])
        return Run.Status.FAILED
    finally:
        _redis().zrem(key, run.pk)
