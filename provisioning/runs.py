"""Runs of a product's scaffolded pipeline, on the product's own compute quota.

A run is a row of long work (portal.work): queued by `run_start`, claimed by a worker of the runs
queue (settings.RUNS_QUEUE: provisioning never waits behind a run), kept alive by a heartbeat and
stopped at its deadline (RUN_TIMEOUT_SECONDS) with its whole process group.

The product's queue (`runs.<slug>`, registered by the local provider with its quotas) is enforced
here: at most `concurrency` runs of one product run at a time (counted in PostgreSQL under the
product's provisioning row lock, so on every machine alike); a run that finds no free slot waits
`RUN_WAIT_SECONDS` without holding a worker. Each run is a process limited to the product's
`memory_mb` that connects with the product's own credentials, under its role's connection limit
and statement timeout. A flood of runs of one product therefore uses at most its own quota.
"""
import os
import resource
import subprocess
import sys
from datetime import timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.errors import Conflict, NotAllowed, NotFound
from portal.work import kernel, process
from provisioning import terraform
from provisioning.models import Provisioning, Run, RunLogLine
from provisioning.services import state_conn_str, user_can_read_credentials


RUNS = kernel.register(kernel.Kind(
    name="run", model=Run, task="provisioning.tasks.execute_run", queue=lambda run: settings.RUNS_QUEUE,
    waiting=Q(status=Run.Status.QUEUED), running=Q(status=Run.Status.RUNNING), log_model=RunLogLine, log_fk="run",
))


def run_start(*, user, product) -> Run:
    if not user_can_read_credentials(user, product):
        raise NotAllowed("Only the product's team and the platform run its pipeline.")
    state = Provisioning.objects.filter(product=product, provisioned=True, retired=False).first()
    if state is None:
        raise Conflict(f"{product.slug} is not provisioned: there is no pipeline to run yet.")
    run = Run.objects.create(product=product, requested_by=user, queue=state.outputs.get("queue", ""))
    kernel.dispatch(run)
    return run


def run_get(run_id: int) -> Run:
    try:
        return Run.objects.select_related("product", "product__team", "requested_by").get(pk=run_id)
    except Run.DoesNotExist:
        raise NotFound(f"No run {run_id}.") from None


def run_log(run: Run, *, offset: int = 0, limit: int = 1000) -> list[RunLogLine]:
    return kernel.log_from(run, offset=offset, limit=limit)


def _claim_slot(run: Run) -> bool:
    """Claim the run if its product has a free slot; otherwise it waits RUN_WAIT_SECONDS."""
    with transaction.atomic():
        state = Provisioning.objects.select_for_update().get(product_id=run.product_id)
        limit = int(state.outputs.get("concurrency") or 1)
        if Run.objects.filter(product_id=run.product_id, status=Run.Status.RUNNING).count() >= limit:
            Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
                available_at=timezone.now() + timedelta(seconds=settings.RUN_WAIT_SECONDS))
            return False
        return kernel.claim(Run, run.pk, timeout=settings.RUN_TIMEOUT_SECONDS)


def _limit_memory(megabytes: int) -> None:
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_execute(run_id: int) -> str:
    """Run it if the product has a free slot; otherwise leave it queued ("waiting")."""
    run = run_get(run_id)
    if run.status != Run.Status.QUEUED:
        return run.status
    if run.available_at > timezone.now():
        return "waiting"  # an early call: the one sent for its time comes
    if not _claim_slot(run):
        kernel.dispatch_later(run, settings.RUN_WAIT_SECONDS)
        return "waiting"
    run.refresh_from_db()
    try:
        with kernel.Beat(run, cancel_field="cancel_requested") as beat:
            status = _execute(run, beat)
    finally:
        _wake_next(run)
    return status


def _execute(run: Run, beat: kernel.Beat) -> str:
    secrets: tuple[str, ...] = ()
    try:
        state = terraform.read_state(state_conn_str(), workspace=run.product.slug)
        values = {name: o.get("value") for name, o in (state.outputs if state else {}).items()}
        secrets = (values.get("storage_password") or "",)
        repo = Path(values["pipeline_repo"])
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=30).stdout.strip()
        Run.objects.filter(pk=run.pk).update(commit=commit[:40])
        dsn = (f"postgresql://{values['storage_role']}:{values['storage_password']}@{values['warehouse_host']}:"
               f"{values['warehouse_port']}/{values['warehouse_database']}")
        memory = int(Provisioning.objects.get(product_id=run.product_id).outputs.get("memory_mb") or 512)
        kernel.append(run, f"Running {repo.name} at {commit[:10]} on {run.queue} "
                           f"(memory {memory} MB, as {values['storage_role']}).")
        result = process.run(
            [sys.executable, "pipeline.py"], cwd=repo,
            env={"PATH": os.environ.get("PATH", ""), "LAKE_PATH": values["lake_path"], "PRODUCT_DSN": dsn,
                 "PYTHONUNBUFFERED": "1"},
            on_line=lambda line: kernel.append(run, line, redact=secrets),
            deadline=kernel.seconds_left(run), should_cancel=beat.should_cancel,
            preexec=partial(_limit_memory, memory), on_start=partial(kernel.record_process_group, run),
        )
        if result.timed_out:
            return _end(run, Run.Status.FAILED, result.exit_code,
                        f"the pipeline ran past its deadline ({settings.RUN_TIMEOUT_SECONDS} s) and was stopped")
        if result.cancelled:
            return _end(run, Run.Status.CANCELLED, result.exit_code, "cancelled")
        if result.exit_code == 0:
            return _end(run, Run.Status.SUCCEEDED, 0, "")
        return _end(run, Run.Status.FAILED, result.exit_code, f"the pipeline exited with {result.exit_code}")
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        for secret in secrets:
            if secret:
                message = message.replace(secret, "***")
        return _end(run, Run.Status.FAILED, None, message)


def _end(run: Run, status: str, code: int | None, error: str) -> str:
    if error:
        kernel.append(run, f"Error: {error}")
    Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(
        status=status, exit_code=code, finished_at=timezone.now(), error=kernel.storable(error[:2000]))
    return status


def _wake_next(run: Run) -> None:
    """A slot is free: the product's next waiting run need not wait for the reconciler."""
    try:
        following = (Run.objects.filter(product_id=run.product_id, status=Run.Status.QUEUED)
                     .order_by("created_at").first())
        if following is not None:
            Run.objects.filter(pk=following.pk).update(available_at=timezone.now())
            kernel.dispatch(following)
    except Exception:  # the reconciler wakes it anyway
        pass
