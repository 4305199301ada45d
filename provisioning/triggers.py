"""Schedules and choreography: what starts a product's runs besides a person (docs/adr/0021).

A WID names its triggers (`schedule`, `triggers: {on_file, on_upstream}`). Provisioning honours them
at the approved version, like everything it builds, and copies them into the product's
`TriggerState` row (`sync`), so that beat's frequent ticks read PostgreSQL and never git. Only a
provisioned product that is neither retired nor suspended runs by trigger. Each run records what
started it (`Run.trigger`):

- `schedule`: `start_scheduled_runs` (beat, every RUN_SCHEDULE_INTERVAL) starts each product whose
  `next_run` (croniter, UTC) has come. It claims the slot with a conditional UPDATE of `next_run`,
  so two schedulers, or a beat that restarted, start it once; slots missed while nothing ran make
  one run, not one each.
- `file`: `watch_raw_folders` (beat, every RUN_WATCH_INTERVAL) lists each watching product's raw/
  and compares names, sizes and mtimes with what it stored: a high-water mark in PostgreSQL, the
  same for every machine. A new or changed file makes the product pending; a run starts once
  RUN_QUIET_SECONDS have passed since the last file was written with no run of the product queued
  or running (a look is sent for that moment, so it does not wait for a tick). So a flood of files
  makes one run, a file still being written none until it is complete, and files that arrive during
  a run exactly one more after it.
- `upstream:<slug>#<run id>`: `after_run`, called by the worker the moment a run ends, starts the
  runs of the products that name its product in `on_upstream`. Whoever claims the run's
  `chained_at` first does it, once; the schedule tick's sweep does it for a worker that died
  between the run's end and that call.

Waves. Every run belongs to a wave, named by the id of the run that began it: a manual, scheduled
or file run begins one, a run started by an upstream inherits its upstream's. The wave's reach is
what it can run: its first product and every runnable product that names one in the reach in
`on_upstream`. A product runs once per wave (a partial unique index) and only once each of its
upstreams within the reach has succeeded in the wave, so in a diamond it waits for both sides. A
run that fails or is cancelled stops the chain there: what lies beyond it gets no run in the
wave, and the failed run records which products those are (`stopped_chain`).
"""
import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

from croniter import croniter
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.errors import PortalError
from portal.work import dispatch, kernel
from provisioning import runs, services
from provisioning.models import Provisioning, Run, TriggerState

logger = logging.getLogger(__name__)

# An end not handed on this long after the run finished was lost with its worker: the sweep hands it on.
SWEEP_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class Config:
    schedule: str = ""
    on_file: bool = False
    on_upstream: tuple[str, ...] = ()


def config_of(meta: dict) -> Config:
    """The triggers of a WID's front matter (validated when it was saved). An upstream that is not in
    `depends_on` is ignored: the product has no grant to read it, so it has nothing to run after."""
    triggers = meta.get("triggers") or {}
    upstream = set(triggers.get("on_upstream") or []) & set(meta.get("depends_on") or [])
    return Config(schedule=str(meta.get("schedule") or "").strip(), on_file=bool(triggers.get("on_file")),
                  on_upstream=tuple(sorted(upstream)))


def next_slot(schedule: str, after: datetime) -> datetime | None:
    """The first slot of `schedule` (cron, UTC) strictly after `after`; None without a usable one."""
    if not schedule:
        return None
    try:
        return croniter(schedule, after.astimezone(dt_timezone.utc)).get_next(datetime)
    except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors; validated at save anyway
        logger.warning("schedule %r is not a cron expression croniter reads (%s): no scheduled runs", schedule, exc)
        return None


# --- the configuration, from the approved WID -----------------------------------------------------
def sync(now: datetime | None = None) -> int:
    """Copy the triggers of each provisioned product's approved WID into its `TriggerState` when the
    approved version changed since (a product just provisioned, an amendment approved)."""
    now = now or timezone.now()
    stale = (Provisioning.objects.filter(provisioned=True, retired=False, product__approved_version__isnull=False)
             .exclude(product__trigger_state__config_version=F("product__approved_version"))
             .select_related("product", "product__team"))
    changed = 0
    for state in stale[:500]:
        product = state.product
        try:
            store(product, config_of(services.live_meta(product)), version=product.approved_version, now=now)
            changed += 1
        except Exception:  # git unreadable for a moment: the next tick tries again; the others go on
            logger.exception("%s: could not read the triggers of its approved WID", product.slug)
    return changed


def store(product, config: Config, *, version: int | None, now: datetime | None = None) -> TriggerState:
    """Record `config` as the product's triggers. The next slot is computed again only when the
    schedule changed, and never at or before the slot last started: no slot runs twice."""
    now = now or timezone.now()
    with transaction.atomic():
        state, _ = TriggerState.objects.select_for_update().get_or_create(product=product)
        if state.schedule != config.schedule or (config.schedule and state.next_run is None):
            since = max(now, state.schedule_slot) if state.schedule_slot else now
            state.next_run = next_slot(config.schedule, since)
        state.schedule, state.on_file = config.schedule, config.on_file
        state.on_upstream = list(config.on_upstream)
        state.config_version = version
        state.save()
    return state


def _runnable():
    """Trigger states of the products that may run by trigger: provisioned, not retired, not suspended
    (the WID's `suspended` is set at its head, not in an approved version: the index has it)."""
    return TriggerState.objects.filter(product__provisioning__provisioned=True, product__provisioning__retired=False,
                                       product__suspended=False).exclude(product__status="retired")


def paused(state: TriggerState) -> str:
    """Why the product's triggers start nothing now, or ''."""
    if not _runnable().filter(pk=state.pk).exists():
        product = state.product
        if product.suspended:
            return "suspended"
        if product.status == "retired" or Provisioning.objects.filter(product=product, retired=True).exists():
            return "retired"
        return "not provisioned"
    return ""


# --- schedules -----------------------------------------------------------------------------------------
def start_scheduled_runs(*, now: datetime | None = None) -> int:
    """Beat's schedule tick: start the runs whose slot has come; hand on ends a dead worker left."""
    now = now or timezone.now()
    sync(now)
    follow_unchained(now=now)
    started = 0
    for state in TriggerState.objects.filter(next_run__lte=now).exclude(schedule="").select_related("product"):
        following = next_slot(state.schedule, now)
        with transaction.atomic():
            # The claim: whoever moves next_run on from the slot it read starts the slot's run.
            if not TriggerState.objects.filter(pk=state.pk, next_run=state.next_run).update(
                    schedule_slot=state.next_run, next_run=following):
                continue
            if not _runnable().filter(pk=state.pk).exists():
                continue  # the slot passes unrun: a suspended product catches up on nothing
            if _start(state.product, trigger=Run.SCHEDULE) is not None:
                started += 1
    return started


# --- files in raw/ ------------------------------------------------------------------------------------
def raw_listing(slug: str) -> dict[str, list[int]]:
    """{path under raw/: [mtime_ns, size]} of the product's raw/ folder, subfolders included.

    Names starting with a dot are left out: copiers write there first and rename when done. Symbolic
    links are neither followed nor listed. At most RUN_WATCH_MAX_FILES files are looked at."""
    root = Path(settings.LAKE_ROOT, slug, "raw")
    listing: dict[str, list[int]] = {}
    for folder, folders, files in os.walk(root):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:  # gone between the listing and here
                continue
            if stat.S_ISREG(info.st_mode):
                listing[os.path.relpath(path, root)] = [info.st_mtime_ns, info.st_size]
                if len(listing) >= settings.RUN_WATCH_MAX_FILES:
                    return listing
    return listing


def arrival(before: dict, after: dict, *, now: datetime) -> datetime | None:
    """When the last file that arrived between two listings was written, or None if none did (a file
    `after` holds and `before` did not, or held otherwise: written to, replaced). Its mtime, kept
    within the time since the previous look: a copy that kept an old mtime arrived since then, and a
    file server's clock ahead of ours cannot put it in the future."""
    written = [signature[0] for path, signature in after.items() if before.get(path) != signature]
    if not written:
        return None
    newest = datetime.fromtimestamp(max(written) / 1e9, tz=dt_timezone.utc)
    return min(max(newest, now - timedelta(seconds=settings.RUN_WATCH_INTERVAL)), now)


def file_run_due(*, pending: bool, changed_at: datetime | None, now: datetime, busy: bool) -> bool:
    """A file run starts when files are waiting, raw/ has been quiet for RUN_QUIET_SECONDS, and no run
    of the product is queued or running (files that came during a run wait for its end, then make one)."""
    if not pending or busy or changed_at is None:
        return False
    return (now - changed_at).total_seconds() >= settings.RUN_QUIET_SECONDS


def watch_raw_folders(*, now: datetime | None = None) -> int:
    """Beat's watch tick: look at the raw/ folder of every product with `on_file`; start the runs due."""
    now = now or timezone.now()
    sync(now)
    started = 0
    for state in _runnable().filter(on_file=True).select_related("product"):
        try:
            started += _watch(state, now)
        except Exception:  # one product's folder (or database row) must not keep the others waiting
            logger.exception("%s: could not watch its raw/ folder", state.product.slug)
    return started


def _watch(state: TriggerState, now: datetime) -> int:
    listing = raw_listing(state.product.slug)
    if listing == state.raw_seen and not state.raw_pending:
        return 0  # the usual tick: nothing new, nothing waiting, nothing written
    with transaction.atomic():
        state = (TriggerState.objects.select_for_update(skip_locked=True).select_related("product")
                 .filter(pk=state.pk).first())
        if state is None:
            return 0  # another watcher is at it
        if listing != state.raw_seen:
            written = arrival(state.raw_seen, listing, now=now)
            if written is not None:
                if not state.raw_pending or state.raw_changed_at is None or written > state.raw_changed_at:
                    state.raw_changed_at = written
                state.raw_pending = True
                # A look at the moment the quiet period ends, not up to a tick later.
                wait = settings.RUN_QUIET_SECONDS - (now - state.raw_changed_at).total_seconds()
                transaction.on_commit(lambda: dispatch.send("provisioning.tasks.watch_raw_folders",
                                                            countdown=max(wait, 0) + 0.05))
            state.raw_seen = listing
        busy = Run.objects.filter(product_id=state.product_id, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]
                                  ).exists()
        run = None
        if file_run_due(pending=state.raw_pending, changed_at=state.raw_changed_at, now=now, busy=busy):
            run = _start(state.product, trigger=Run.FILE)
            state.raw_pending = run is None
        state.save(update_fields=["raw_seen", "raw_pending", "raw_changed_at"])
    return int(run is not None)


# --- upstreams and waves ----------------------------------------------------------------------------------
def after_run(run: Run) -> list[Run]:
    """Hand a finished run on: start what its success starts in its wave, or record where its failure
    stopped the chain. Once per run (the first to claim `chained_at`); never raises: an end that could
    not be handed on now is handed on by the sweep."""
    try:
        with transaction.atomic():
            if not Run.objects.filter(pk=run.pk, chained_at__isnull=True, status__in=Run.FINISHED).update(
                    chained_at=timezone.now()):
                return []
            run = Run.objects.select_related("product").get(pk=run.pk)
            if run.status == Run.Status.SUCCEEDED:
                return _start_downstream(run)
            _stop_chain(run)
            return []
    except Exception:
        logger.exception("run %s: its end was not handed on to its downstream products; the sweep will", run.pk)
        return []


def follow_unchained(*, now: datetime | None = None) -> int:
    """Hand on the ends no worker handed on (it died between the run's end and `after_run`, or the
    reconciler failed the run for it)."""
    now = now or timezone.now()
    ids = list(Run.objects.filter(chained_at__isnull=True, status__in=Run.FINISHED, finished_at__lt=now - SWEEP_AFTER)
               .order_by("finished_at").values_list("pk", flat=True)[:200])
    for pk in ids:
        after_run(Run(pk=pk))
    return len(ids)


def _edges() -> dict[str, set[str]]:
    """{upstream: {products that run after it}}, among the products that may run by trigger."""
    edges: dict[str, set[str]] = {}
    for slug, upstreams in _runnable().exclude(on_upstream=[]).values_list("product__slug", "on_upstream"):
        for upstream in upstreams:
            edges.setdefault(upstream, set()).add(slug)
    return edges


def reach(start: str, edges: dict[str, set[str]] | None = None) -> set[str]:
    """`start` and every product that runs after it, directly or through others."""
    edges = _edges() if edges is None else edges
    found, todo = {start}, [start]
    while todo:
        for following in edges.get(todo.pop(), ()):
            if following not in found:
                found.add(following)
                todo.append(following)
    return found


def ready(on_upstream, *, in_reach: set[str], succeeded: set[str]) -> bool:
    """A product runs in a wave once every upstream of it within the wave's reach has succeeded in it."""
    return all(upstream in succeeded for upstream in on_upstream if upstream in in_reach)


def _wave_start(run: Run) -> str:
    """The product whose run began the run's wave."""
    first = Run.objects.filter(pk=run.wave).values_list("product__slug", flat=True).first()
    return first or run.product.slug


def _start_downstream(run: Run) -> list[Run]:
    slug, wave = run.product.slug, run.wave or run.pk
    candidates = list(_runnable().filter(on_upstream__contains=[slug]).select_related("product"))
    if not candidates:
        return []
    in_reach = reach(_wave_start(run))
    in_wave = Run.objects.filter(wave=wave)
    succeeded = set(in_wave.filter(status=Run.Status.SUCCEEDED).values_list("product__slug", flat=True))
    ran = set(in_wave.values_list("product_id", flat=True))
    started = []
    for state in candidates:
        if state.product_id in ran or not ready(state.on_upstream, in_reach=in_reach, succeeded=succeeded):
            continue  # ran in this wave already, or an upstream of it in the wave has not succeeded yet
        started_run = _start(state.product, trigger=f"{Run.UPSTREAM}{slug}#{run.pk}", wave=wave)
        if started_run is not None:
            started.append(started_run)
    return started


def _stop_chain(run: Run) -> None:
    slug, wave = run.product.slug, run.wave or run.pk
    ran = set(Run.objects.filter(wave=wave).values_list("product__slug", flat=True))
    beyond = sorted(reach(slug) - {slug} - ran)
    if not beyond:
        return
    Run.objects.filter(pk=run.pk).update(stopped_chain=beyond)
    kernel.append(run, f"Chain stopped at {slug}: {', '.join(beyond)} get no run in wave {wave}.")


def _start(product, *, trigger: str, wave: int | None = None) -> Run | None:
    """Queue a run the portal starts by itself; None if it may not (no longer provisioned) or if
    another worker started this product in this wave a moment earlier."""
    try:
        with transaction.atomic():
            return runs.run_start(user=None, product=product, trigger=trigger, wave=wave)
    except IntegrityError:
        return None
    except PortalError as exc:
        logger.info("%s: no %s run (%s)", product.slug, trigger, exc)
        return None


# --- reads -----------------------------------------------------------------------------------------------
def summary(product) -> dict:
    """The product's triggers and where they stand, for its page and the API."""
    state = TriggerState.objects.filter(product=product).select_related("product").first()
    if state is None:
        return {"schedule": "", "next_run": None, "last_scheduled_run": None, "on_file": False, "on_upstream": [],
                "files_waiting": False, "files_changed_at": None, "paused": ""}
    why = paused(state)
    return {"schedule": state.schedule, "next_run": None if why else state.next_run,
            "last_scheduled_run": state.schedule_slot, "on_file": state.on_file, "on_upstream": list(state.on_upstream),
            "files_waiting": state.raw_pending, "files_changed_at": state.raw_changed_at, "paused": why}


def chains_stopped(runs_: list[Run]) -> dict[int, str]:
    """{wave: the product where it stopped} for the waves of these runs that a failure stopped."""
    waves = {r.wave for r in runs_ if r.wave is not None}
    stops = (Run.objects.filter(wave__in=waves).exclude(stopped_chain=[]).order_by("finished_at", "pk")
             .values_list("wave", "product__slug"))
    found: dict[int, str] = {}
    for wave, slug in stops:
        found.setdefault(wave, slug)
    return found
