"""One model of long work: claim, heartbeat, deadline, capped log, dispatch and reconciliation.

Each kind of work registers a `Kind`: its model (a `portal.work.models.Work`), the Celery task that
runs one row by id, the queue, which rows wait and which run, and what to do with a row whose
worker is gone. Then:

- `dispatch(kind, pk)` sends the task once the transaction commits; a send that fails is only
  logged, because the row is the truth and `reconcile` sends it again.
- `claim` is a conditional UPDATE: two deliveries of the same task start the work once.
- `Beat` (a context manager) keeps `heartbeat_at` fresh from a thread and reads a cancel request.
- `append` writes the log, redacted and capped at `LOG_MAX_BYTES` per row.
- `reconcile` (beat, every few seconds) fails rows whose worker stopped beating or ran past its
  deadline (once: the row leaves the running state), and sends again the wake-up call of queued
  rows when Redis lost it (it restarted: its run id changed) or long ago.
- `prune_logs` removes the log lines of work finished more than `LOG_RETENTION_DAYS` ago.
"""
import functools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import (DatabaseError, InterfaceError, OperationalError, close_old_connections, connection,
                       transaction)
from django.db.models import Count, F, Q
from django.utils import timezone

from portal.work import dispatch as broker

logger = logging.getLogger(__name__)
CANCEL_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Kind:
    name: str
    model: type
    task: str
    queue: Callable[["object"], str | None] = lambda row: None
    waiting: Q = field(default_factory=lambda: Q(status="queued"))
    running: Q = field(default_factory=lambda: Q(status="running"))
    on_lost: Callable[["object", str], None] | None = None  # default: fail it with the message
    log_model: type | None = None
    log_fk: str = ""


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


def kind_of(model) -> Kind:
    for kind in KINDS.values():
        if kind.model is model or isinstance(model, kind.model):
            return kind
    raise LookupError(f"no kind of work registered for {model}")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- dispatch ----------------------------------------------------------------------------------
def _mark_sent(kind: Kind, row, at, identity: str, send) -> bool:
    """Record the dispatch, then send: a worker that takes the task at once must not find the row
    locked by this update (its claim skips locked rows and would give the call up). A send that
    fails leaves the row undispatched, to the reconciler."""
    kind.model.objects.filter(pk=row.pk).update(dispatched_at=at, dispatched_to=identity)
    if send():
        return True
    kind.model.objects.filter(pk=row.pk).update(dispatched_at=None, dispatched_to="")
    return False


def _send(kind: Kind, row) -> bool:
    return _mark_sent(kind, row, timezone.now(), broker.broker_identity(),
                      lambda: broker.send(kind.task, row.pk, queue=kind.queue(row)))


def dispatch_later(row, seconds: float) -> bool:
    """Wake a worker for this row in `seconds` (now, not after a commit): a retry, a wait for a slot.

    The row's `dispatched_at` is set to when the call is due, so the reconciler sends it again only
    if Redis loses it (a restart) or it is long overdue."""
    kind = kind_of(row)
    return _mark_sent(kind, row, timezone.now() + timedelta(seconds=seconds), broker.broker_identity(),
                      lambda: broker.send(kind.task, row.pk, countdown=seconds, queue=kind.queue(row)))


def dispatch(row) -> None:
    """Wake a worker for this row once the transaction commits; never raises."""
    kind = kind_of(row)

    def go() -> None:
        try:
            _send(kind, row)
        except Exception:  # the database went away between commit and here: the reconciler sends it
            logger.exception("could not dispatch %s %s", kind.name, row.pk)

    transaction.on_commit(go)


def outlasting_db_restarts(write: Callable) -> Callable:
    """For writes of running work: one the database cut off (a restart, a failover) is tried again
    on a new connection until WORK_DB_RETRY_SECONDS have passed. Inside a caller's transaction
    nothing is retried: what it wrote went with the connection."""

    @functools.wraps(write)
    def retrying(*args, **kwargs):
        give_up = time.monotonic() + settings.WORK_DB_RETRY_SECONDS
        while True:
            try:
                return write(*args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                if connection.in_atomic_block or time.monotonic() >= give_up:
                    raise
                logger.warning("%s: the database is unavailable (%s); trying again", write.__qualname__,
                               str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                try:
                    connection.close()
                except DatabaseError:
                    pass
                time.sleep(0.5)

    return retrying


# --- claiming and running ----------------------------------------------------------------------
def claim(model, pk: int, *, timeout: float) -> bool:
    """Take a queued row for this process: True if this call took it."""
    now = timezone.now()
    return bool(model.objects.filter(pk=pk, status="queued").update(
        status="running", worker=worker_name(), started_at=now, heartbeat_at=now,
        deadline_at=now + timedelta(seconds=timeout), process_group=None))


class Beat:
    """Keeps a running row's heartbeat fresh while the block runs, and notices a cancel request.

    The thread has a database connection of its own; a failed beat (the database restarting) is
    logged and tried again at the next interval, and the block is never interrupted by it.
    """

    def __init__(self, row, *, interval: float | None = None, cancel_field: str | None = None):
        self.model, self.pk = type(row), row.pk
        self.interval = settings.WORK_HEARTBEAT_SECONDS if interval is None else interval
        self.cancel_field = cancel_field
        self.cancelled = threading.Event()
        self._next_cancel_check = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"beat-{self.model.__name__}-{self.pk}", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        try:
            rows = self.model.objects.filter(pk=self.pk)
            rows.update(heartbeat_at=timezone.now())
            if self.cancel_field and rows.filter(**{self.cancel_field: True}).exists():
                self.cancelled.set()
        except Exception as exc:
            logger.warning("heartbeat of %s %s failed: %s", self.model.__name__, self.pk, exc)
            close_old_connections()

    def should_cancel(self) -> bool:
        """Asked often by the process runner: reads the cancel flag at most once a second."""
        if self.cancel_field and not self.cancelled.is_set() and time.monotonic() >= self._next_cancel_check:
            self._next_cancel_check = time.monotonic() + CANCEL_POLL_SECONDS
            try:
                if self.model.objects.filter(pk=self.pk, **{self.cancel_field: True}).exists():
                    self.cancelled.set()
            except Exception as exc:  # the database restarting: the next check or the beat sees it
                logger.warning("cancel check of %s %s failed: %s", self.model.__name__, self.pk, exc)
        return self.cancelled.is_set()

    def __enter__(self) -> "Beat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


def seconds_left(row) -> float:
    """Seconds until the row's deadline (at least 1)."""
    if row.deadline_at is None:
        return float(settings.JOB_TIMEOUT_SECONDS)
    return max((row.deadline_at - timezone.now()).total_seconds(), 1.0)


@outlasting_db_restarts
def record_process_group(row, pgid: int) -> None:
    type(row).objects.filter(pk=row.pk).update(process_group=pgid)


# --- the log -----------------------------------------------------------------------------------
def storable(text: str) -> str:
    """Text from outside (a process's output, a receiver's answer) as PostgreSQL can store it."""
    return text.replace("\x00", "\ufffd")


@outlasting_db_restarts
def append(row, text: str, *, redact: tuple[str, ...] = ()) -> None:
    """Append one line to the row's log: redacted, at most 10,000 characters, within the row's cap."""
    kind = kind_of(row)
    for secret in redact:
        if secret:
            text = text.replace(secret, "***")
    text = storable(text[:10_000])
    size = len(text.encode("utf-8", errors="replace")) + 1
    with transaction.atomic():
        lines, used, truncated = (kind.model.objects.select_for_update().filter(pk=row.pk)
                                  .values_list("log_lines", "log_bytes", "log_truncated").get())
        if truncated:
            return
        if used + size > settings.LOG_MAX_BYTES:
            text, truncated = (f"[log cut at {settings.LOG_MAX_BYTES:,} bytes: later lines are not kept; "
                               "the work goes on]"), True
        kind.log_model.objects.create(**{f"{kind.log_fk}_id": row.pk}, number=lines + 1, text=text)
        kind.model.objects.filter(pk=row.pk).update(log_lines=lines + 1, log_bytes=used + size,
                                                    log_truncated=truncated, heartbeat_at=timezone.now())
    row.log_lines = lines + 1


def log_from(row, *, offset: int = 0, limit: int = 1000) -> list:
    kind = kind_of(row)
    return list(kind.log_model.objects.filter(**{f"{kind.log_fk}_id": row.pk}, number__gt=offset)
                .order_by("number")[:limit])


def prune_logs(*, days: int | None = None) -> int:
    """Delete the log lines of work finished more than `days` (LOG_RETENTION_DAYS) ago."""
    days = settings.LOG_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    removed = 0
    for kind in KINDS.values():
        if kind.log_model is None:
            continue
        old = kind.model.objects.filter(finished_at__lt=cutoff, log_pruned_at__isnull=True)
        ids = list(old.values_list("pk", flat=True)[:5000])
        if not ids:
            continue
        with transaction.atomic():
            removed += kind.log_model.objects.filter(**{f"{kind.log_fk}_id__in": ids}).delete()[0]
            kind.model.objects.filter(pk__in=ids).update(log_pruned_at=timezone.now())
    return removed


# --- reconciliation ----------------------------------------------------------------------------
def _kill_group_here(row) -> None:
    """If the lost row's child process group runs on this host, end it (its worker cannot)."""
    host, _, _ = (row.worker or "").rpartition(":")
    if row.process_group and host == socket.gethostname():
        try:
            os.killpg(row.process_group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _lost_reason(row, now) -> str:
    if row.deadline_at and row.deadline_at + timedelta(seconds=settings.WORK_DEADLINE_GRACE_SECONDS) < now:
        return f"it ran past its deadline ({row.deadline_at:%Y-%m-%d %H:%M:%S} UTC) and was stopped"
    return (f"the worker running it ({row.worker or 'unknown'}) stopped answering: no heartbeat since "
            f"{row.heartbeat_at:%H:%M:%S} UTC")


def _fail_lost(kind: Kind, row, reason: str) -> bool:
    """Fail a lost row, once (only as the reconciler saw it), with the line saying why in its log."""
    with transaction.atomic():
        if not kind.model.objects.filter(kind.running, pk=row.pk, heartbeat_at=row.heartbeat_at).update(
                status="failed", finished_at=timezone.now(), error=f"Failed: {reason}."[:2000]):
            return False
        if kind.log_model is not None:
            append(row, f"Error: {reason}.")
    return True


def reconcile(*, now=None) -> dict:
    """Fail what dead workers left, send again what Redis lost. Safe to run anywhere, any time."""
    now = now or timezone.now()
    lost_after = timedelta(seconds=settings.WORK_LOST_AFTER_SECONDS)
    grace = timedelta(seconds=settings.WORK_DEADLINE_GRACE_SECONDS)
    counts = {"lost": 0, "dispatched": 0}
    for kind in KINDS.values():
        if kind.running is not None:
            stale = kind.model.objects.filter(kind.running).filter(
                Q(heartbeat_at__lt=now - lost_after) | Q(heartbeat_at__isnull=True, started_at__lt=now - lost_after)
                | Q(deadline_at__lt=now - grace))
            for row in stale[:500]:
                reason = _lost_reason(row, now)
                _kill_group_here(row)
                handled = kind.on_lost(row, reason) if kind.on_lost else _fail_lost(kind, row, reason)
                if handled:
                    counts["lost"] += 1
                    logger.warning("%s %s: %s", kind.name, row.pk, reason)
    identity = broker.broker_identity()
    if not identity:
        return counts  # Redis is down: nothing can be sent; the next round will
    redispatch = now - timedelta(seconds=settings.WORK_REDISPATCH_AFTER_SECONDS)
    for kind in KINDS.values():
        due = kind.model.objects.filter(kind.waiting, available_at__lte=now).filter(
            Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=F("available_at")) | ~Q(dispatched_to=identity)
            | Q(dispatched_at__lt=redispatch))
        for row in due.order_by("available_at")[:500]:
            if _send(kind, row):
                counts["dispatched"] += 1
    return counts


def health() -> dict:
    """For the platform dashboard: is Redis there to carry wake-up calls, and what waits or runs."""
    counts = {}
    for kind in KINDS.values():
        figures = {"waiting": Count("pk", filter=kind.waiting)}
        if kind.running is not None:
            figures["running"] = Count("pk", filter=kind.running)
        counts[kind.name] = {"running": 0, **kind.model.objects.aggregate(**figures)}
    return {"broker_up": bool(broker.broker_identity()), "work": counts}
