"""Runs of a product's scaffolded pipeline, on the product's own compute quota.

A run is a row of long work (portal.work): queued by `run_start`, claimed by a worker of the runs
queue (settings.RUNS_QUEUE: provisioning never waits behind a run), kept alive by a heartbeat and
stopped at its deadline (RUN_TIMEOUT_SECONDS) with its whole process group.

The product's queue (`runs.<slug>`, registered by the local provider with its quotas) is enforced
here: at most `concurrency` runs of one product run at a time (counted in PostgreSQL under the
product's provisioning row lock, so on every machine alike); a run that finds no free slot waits
`RUN_WAIT_SECONDS` without holding a worker. Each run is confined (provisioning/confinement.py,
docs/adr/0016): it sees only its lake folder, its dependencies' curated/ folders and a working copy
of its commit, reaches only the warehouse, as the product's own role (under its connection limit and
statement timeout), and runs under the tier's memory, CPU, process and disk limits. A flood of runs
of one product therefore uses at most its own quota.
"""
import functools
import json
import os
import signal
import subprocess
from datetime import timedelta
from functools import partial
from pathlib import Path

import psycopg

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from onboarding import selectors as onboarding
from onboarding.widfile import SLUG_RE
from portal.errors import Conflict, NotAllowed, NotFound
from portal.work import kernel
from provisioning import confinement, health, ingestion, terraform, triggers
from provisioning.models import Provisioning, Run, RunLogLine
from provisioning.services import product_spec, state_conn_str, user_can_read_credentials, warehouse_dsn


RUNS = kernel.register(kernel.Kind(
    name="run", model=Run, task="provisioning.tasks.execute_run", queue=lambda run: settings.RUNS_QUEUE,
    waiting=Q(status=Run.Status.QUEUED), running=Q(status=Run.Status.RUNNING), log_model=RunLogLine, log_fk="run",
))


def run_start(*, user, product, trigger: str = Run.MANUAL, wave: int | None = None) -> Run:
    """Queue a run. `user` is None when the portal starts it by itself (provisioning/triggers.py says
    why in `trigger`); a run that no other run started begins a wave of its own."""
    if user is not None and not user_can_read_credentials(user, product):
        raise NotAllowed("Only the product's team and the platform run its pipeline.")
    state = Provisioning.objects.filter(product=product, provisioned=True, retired=False).first()
    if state is None:
        raise Conflict(f"{product.slug} is not provisioned: there is no pipeline to run yet.")
    if product.suspended:
        raise Conflict(f"{product.slug} is suspended: its login is switched off, so its pipeline does not run "
                       "until the platform resumes it.")
    with transaction.atomic():
        run = Run.objects.create(product=product, requested_by=user, queue=state.outputs.get("queue", ""),
                                 trigger=trigger, wave=wave)
        if wave is None:
            run.wave = run.pk
            run.save(update_fields=["wave"])
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
        health.after_run(run)
    finally:
        _wake_next(run)
    triggers.after_run(run)
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
        ingestion.stage(run, values)  # its sources copied into raw/ (a run cannot reach them); StagingError fails it
        strict = settings.RUN_CONFINEMENT == "strict"
        sandbox = _sandbox(run, values, repo, commit, strict=strict)
        limits = sandbox.limits
        kernel.append(run, f"Running {repo.name} at {commit[:10]} on {run.queue} as {values['storage_role']} "
                           f"(memory {limits.memory_mb} MB, CPU {limits.cpu_seconds} s, {limits.processes} processes, "
                           f"disk {limits.disk_mb} MB; confinement {settings.RUN_CONFINEMENT}).")
        outcome = confinement.run(
            sandbox, strict=strict, on_line=lambda line: kernel.append(run, line, redact=secrets),
            deadline=kernel.seconds_left(run), should_cancel=beat.should_cancel,
            on_start=partial(kernel.record_process_group, run),
        )
        result = outcome.result
        if result.timed_out:
            return _end(run, Run.Status.FAILED, result.exit_code,
                        f"the pipeline ran past its deadline ({settings.RUN_TIMEOUT_SECONDS} s) and was stopped")
        if result.cancelled:
            return _end(run, Run.Status.CANCELLED, result.exit_code, "cancelled")
        if outcome.lake_mb > limits.disk_mb:
            return _end(run, Run.Status.FAILED, result.exit_code,
                        f"its lake folder holds {outcome.lake_mb:.0f} MB, over its quota of {limits.disk_mb} MB; "
                        "no run starts until it is cleaned up")
        if result.exit_code == 0:
            return _end(run, Run.Status.SUCCEEDED, 0, "")
        return _end(run, Run.Status.FAILED, result.exit_code, _failure(result.exit_code, limits))
    except Exception as exc:
        message = str(exc) if isinstance(exc, confinement.Refused) else f"{type(exc).__name__}: {exc}"
        for secret in secrets:
            if secret:
                message = message.replace(secret, "***")
        return _end(run, Run.Status.FAILED, None, message)


def _sandbox(run: Run, values: dict, repo: Path, commit: str, *, strict: bool) -> confinement.Sandbox:
    """What the run may see and use (docs/adr/0016), from the product's state and its live tier."""
    spec = product_spec(run.product)
    tier = spec.compute_tier
    producers = sorted((values.get("reads") or {}).items())
    # A suspended producer's curated/ files are switched off with its schema (docs/adr/0024).
    off = {slug for slug, notice in onboarding.product_notices([p for p, _ in producers]).items() if notice["suspended"]}
    memory = int(Provisioning.objects.get(product_id=run.product_id).outputs.get("memory_mb") or 512)
    return confinement.Sandbox(
        slug=run.product.slug, uid=settings.RUN_UID_BASE + run.product_id,
        lake=_inside_lake(values["lake_path"], run.product.slug), repo=str(repo), commit=commit,
        limits=confinement.Limits(memory_mb=memory, cpu_seconds=settings.RUN_CPU_SECONDS[tier],
                                  processes=settings.RUN_PROCESSES[tier], disk_mb=settings.RUN_DISK_MB[tier],
                                  scratch_mb=settings.RUN_SCRATCH_MB),
        database={"user": values["storage_role"], "password": values["storage_password"],
                  "dbname": values["warehouse_database"], "port": int(values["warehouse_port"]),
                  "host": values["warehouse_host"]},
        warehouse_socket=_warehouse_socket(int(values["warehouse_port"])) if strict else "",
        reads={producer: {"schema": (read or {}).get("schema") or "",
                          "curated_path": _inside_lake((read or {}).get("curated_path"), producer, "curated")}
               for producer, read in producers if producer not in off},
        env={"PUBLISHED_SCHEMA": values.get("published_schema") or "",
             "OUTPUT_PORTS": json.dumps([{"name": o.get("name"), "kind": o.get("kind")} for o in spec.outputs])},
    )


def _inside_lake(path: str | None, slug: str, *parts: str) -> str:
    """LAKE_ROOT/<slug>/<parts>, which `path` from the state must be if it is given: a state naming
    anything else (another product's folder, the portal's var/) never gets it into a sandbox."""
    expected = os.path.abspath(Path(settings.LAKE_ROOT, slug, *parts))
    if not SLUG_RE.fullmatch(slug) or (path is not None and os.path.abspath(path) != expected):
        raise confinement.Refused(f"the product's state names {path!r} where {expected} was expected")
    return expected


@functools.lru_cache(maxsize=4)
def _warehouse_socket(port: int) -> str:
    """The local warehouse's Unix socket: a run has no network, and reaches the warehouse only there."""
    with psycopg.connect(warehouse_dsn(), connect_timeout=10) as conn:
        folders = conn.execute("SHOW unix_socket_directories").fetchone()[0]
    for folder in folders.split(","):
        path = Path(folder.strip()) / f".s.PGSQL.{port}"
        if path.is_socket():
            return str(path)
    raise confinement.Refused(f"the warehouse has no Unix socket for port {port} (unix_socket_directories: {folders})")


def _failure(code: int, limits: confinement.Limits) -> str:
    if code == -signal.SIGXCPU:
        return f"the pipeline used up its CPU time ({limits.cpu_seconds} s) and was stopped"
    if code == -signal.SIGXFSZ:
        return f"the pipeline wrote a file larger than its limit ({limits.disk_mb} MB) and was stopped"
    if code < 0:
        return f"the pipeline was ended by signal {-code} ({signal.strsignal(-code)})"
    return f"the pipeline exited with {code}"


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
