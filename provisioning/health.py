"""Freshness and quality of a product's outputs, measured by the worker after every run (docs/adr/0023).

A `table` or `feed` output port may declare `freshness` (`30m`, `24h`, `7d`) and `checks`
(`rows_min`, `not_null` columns, a `unique` key). When a run ends, succeeded or failed, `after_run`
measures each such port itself and never asks the pipeline, which could lie: a table in the
product's published schema through the warehouse's admin login (rows, nulls, duplicate keys, and
whether this run wrote it, from the warehouse's own counters), a feed's files under
LAKE_ROOT/<slug>/curated/<name>/ (files, CSV rows, the newest file's time). One `PortMeasurement`
per run and port.

A product is `failing` when its last run failed or its last checks failed, `stale` when an output
was last updated longer ago than its freshness, else `ok`. `evaluate` stores the state in
`ProductHealth` in the transaction that records the e-mails and webhooks announcing a change
(`signals.health_changed`), so each change of state is told once however often it is evaluated.
Beat (`evaluate_due`, every HEALTH_CHECK_SECONDS) evaluates again the products whose outputs may
have turned stale since, and measures a run whose worker was lost before it could.
"""
import csv
import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone

import psycopg
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.utils import timezone
from psycopg import sql

from onboarding import selectors as onboarding
from onboarding.signals import wid_approved
from onboarding.widfile import SLUG_RE
from portal.work import deliveries
from provisioning import signals
from provisioning.models import PortMeasurement, ProductHealth, Provisioning, Run
from provisioning.rendering import published_schema

logger = logging.getLogger(__name__)

MEASURED_KINDS = ("table", "feed")
ENDED = (Run.Status.SUCCEEDED, Run.Status.FAILED)
FRESHNESS = re.compile(r"([1-9][0-9]{0,5})([mhd])")
UNITS = {"m": 60, "h": 3600, "d": 86400}
# A run that ended this long ago without its ports measured lost its worker in between: beat
# measures it (sooner, it could still be the worker measuring it).
MISSED_AFTER = timedelta(minutes=2)
MISSED_WITHIN = timedelta(days=1)
FEED_DEPTH = 8  # sub-folders of a feed's folder read, at most


def freshness_of(output: dict) -> timedelta | None:
    match = FRESHNESS.fullmatch(str(output.get("freshness") or ""))
    return timedelta(seconds=int(match[1]) * UNITS[match[2]]) if match else None


def _now() -> datetime:
    return timezone.now()


def _live(product) -> dict:
    """The approved version's front matter. From the index when it holds that version (no amendment
    open): beat reads hundreds of products and should not read git for each; else from git."""
    if product.approved_version is not None and product.version == product.approved_version:
        return {"outputs": product.outputs, "contacts": product.contacts}
    from provisioning.services import live_meta

    return live_meta(product)


def measured_outputs(product) -> list[dict]:
    return [dict(o) for o in _live(product).get("outputs") or () if o.get("kind") in MEASURED_KINDS]


# --- measuring ---------------------------------------------------------------------------------
@dataclass
class Measured:
    rows: int | None = None
    files: int | None = None
    newest_at: datetime | None = None
    write_mark: str = ""
    checks: list[dict] = field(default_factory=list)


def _check(name: str, passed: bool, detail: str) -> dict:
    return {"check": name, "passed": bool(passed), "detail": detail}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _declared(output: dict) -> tuple[int | None, list[str], list[str]]:
    checks = output.get("checks") or {}
    rows_min = checks.get("rows_min")
    rows_min = rows_min if isinstance(rows_min, int) and not isinstance(rows_min, bool) else None
    return rows_min, [str(c) for c in checks.get("not_null") or ()], [str(c) for c in checks.get("unique") or ()]


def _check_names(output: dict) -> list[str]:
    rows_min, not_null, unique = _declared(output)
    return ([] if rows_min is None else ["rows_min"]) + [f"not_null:{c}" for c in not_null] + (
        [f"unique:{','.join(unique)}"] if unique else [])


def _all_failed(output: dict, detail: str, **values) -> Measured:
    return Measured(checks=[_check(name, False, detail) for name in _check_names(output)], **values)


def measure_table(conn: psycopg.Connection, schema: str, output: dict) -> Measured:
    """Rows, nulls and duplicate keys of `schema`.<name>, in one snapshot; identifiers quoted by psycopg."""
    name = output["name"]
    rows_min, not_null, unique = _declared(output)
    found = conn.execute("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                         " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                         [schema, name]).fetchone()
    if found is None:
        return _all_failed(output, f"{schema}.{name} does not exist")
    oid = found[0]
    columns = {row[0] for row in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped", [oid])}
    table = sql.Identifier(schema, name)
    nullable = [c for c in dict.fromkeys(not_null) if c in columns]
    counts = conn.execute(sql.SQL("SELECT count(*){} FROM {}").format(
        sql.SQL("").join(sql.SQL(", count(*) FILTER (WHERE {} IS NULL)").format(sql.Identifier(c)) for c in nullable),
        table)).fetchone()
    rows, nulls = counts[0], dict(zip(nullable, counts[1:]))
    checks = []
    if rows_min is not None:
        checks.append(_check("rows_min", rows >= rows_min, f"{_n(rows, 'row')}; at least {rows_min} expected"))
    for column in not_null:
        if column not in columns:
            checks.append(_check(f"not_null:{column}", False, f"{schema}.{name} has no column {column}"))
        else:
            checks.append(_check(f"not_null:{column}", nulls[column] == 0, f"{_n(nulls[column], 'row')} where {column} is null"))
    if unique:
        check, absent = f"unique:{','.join(unique)}", [c for c in unique if c not in columns]
        if absent:
            checks.append(_check(check, False, f"{schema}.{name} has no column {', '.join(absent)}"))
        else:
            keys, involved = conn.execute(sql.SQL(
                "SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {} GROUP BY {}"
                " HAVING count(*) > 1) AS duplicates").format(
                table, sql.SQL(", ").join(sql.Identifier(c) for c in unique))).fetchone()
            key = ", ".join(unique)
            checks.append(_check(check, keys == 0, f"{_n(keys, 'value')} of ({key}) {'appears' if keys == 1 else 'appear'} more than once, in {_n(involved, 'row')}"
                                 if keys else f"every value of ({key}) appears once"))
    # The warehouse's own count of the rows inserted, updated and deleted (a view has none): when it
    # moved since the last measurement, a run wrote the table. The table's oid changes when it is
    # created again, counters and all.
    changes = conn.execute("SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_all_tables WHERE relid = %s",
                           [oid]).fetchone()
    return Measured(rows=rows, write_mark=f"{oid}:{changes[0]}" if changes else "", checks=checks)


def measure_tables(slug: str, outputs: list[dict]) -> dict[str, Measured]:
    """Each table port of `slug` in a read-only snapshot of its own, under HEALTH_MEASURE_SECONDS each."""
    from provisioning.services import warehouse_dsn

    results = {}
    schema = published_schema(slug)
    timeout_ms = int(settings.HEALTH_MEASURE_SECONDS * 1000)
    with psycopg.connect(warehouse_dsn(), connect_timeout=10, application_name="portal-health",
                         options=f"-c statement_timeout={timeout_ms}") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        for output in outputs:
            try:
                with conn.transaction():
                    results[output["name"]] = measure_table(conn, schema, output)
            except psycopg.errors.QueryCanceled:
                results[output["name"]] = _all_failed(
                    output, f"not measured within {settings.HEALTH_MEASURE_SECONDS:g} s (HEALTH_MEASURE_SECONDS)")
    return results


class _OutOfTime(Exception):
    pass


@dataclass
class _FeedScan:
    output: dict
    deadline: float
    files: int = 0
    rows: int = 0
    newest: float | None = None
    nulls: dict = field(default_factory=dict)
    keys: set = field(default_factory=set)
    duplicates: int = 0
    lacking: dict = field(default_factory=dict)  # {column: files without it}
    problems: list = field(default_factory=list)  # what keeps every check from passing


def measure_feed(slug: str, output: dict, *, deadline: float | None = None) -> Measured:
    """Files, CSV rows and the newest file's time under LAKE_ROOT/<slug>/curated/<name>/, read as the
    worker (root) reads them: no link is followed and only regular files are opened (a pipeline may
    plant a link to the portal's files or a FIFO that would block), so the feed is only what is in it."""
    name = output["name"]
    deadline = time.monotonic() + settings.HEALTH_MEASURE_SECONDS if deadline is None else deadline
    if not SLUG_RE.fullmatch(slug) or "/" in name or name in (".", "..") or "\0" in name:
        return _all_failed(output, f"{name!r} is not a feed's folder name")
    folder = f"{settings.LAKE_ROOT}/{slug}/curated/{name}/"
    fds = []
    try:
        fd = os.open(settings.LAKE_ROOT, os.O_RDONLY | os.O_DIRECTORY)
        fds.append(fd)
        for part in (slug, "curated", name):
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            fds.append(fd)
    except OSError as exc:
        return _all_failed(output, f"{folder} is not a folder ({exc.strerror})")
    _, not_null, unique = _declared(output)
    scan = _FeedScan(output, deadline, nulls={c: 0 for c in not_null})
    try:
        _scan_folder(scan, fd, "", depth=0)
    except _OutOfTime:
        return _all_failed(output, f"not measured within {settings.HEALTH_MEASURE_SECONDS:g} s (HEALTH_MEASURE_SECONDS)")
    finally:
        for opened in fds:
            os.close(opened)
    newest = datetime.fromtimestamp(scan.newest, tz=dt_timezone.utc) if scan.newest is not None else None
    return Measured(rows=scan.rows, files=scan.files, newest_at=newest, checks=_feed_checks(scan))


def _scan_folder(scan: _FeedScan, dir_fd: int, prefix: str, depth: int) -> None:
    with os.scandir(dir_fd) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if time.monotonic() > scan.deadline:
                raise _OutOfTime
            if entry.name.startswith("."):  # a pipeline's file being written (`.name.tmp`), not yet published
                continue
            if entry.is_dir(follow_symlinks=False):
                if depth >= FEED_DEPTH:
                    scan.problems.append(f"{prefix}{entry.name}/ is deeper than {FEED_DEPTH} folders: not read")
                    continue
                try:
                    sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                except OSError:
                    continue  # replaced meanwhile
                try:
                    _scan_folder(scan, sub, f"{prefix}{entry.name}/", depth + 1)
                finally:
                    os.close(sub)
            elif entry.is_file(follow_symlinks=False):
                _scan_file(scan, dir_fd, entry.name, f"{prefix}{entry.name}")


def _scan_file(scan: _FeedScan, dir_fd: int, name: str, path: str) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return  # replaced meanwhile by a link or removed
    with open(fd, newline="", encoding="utf-8", errors="replace") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return
        scan.files += 1
        scan.newest = info.st_mtime if scan.newest is None else max(scan.newest, info.st_mtime)
        if name.lower().endswith(".csv"):
            try:
                _scan_csv(scan, csv.reader(file), path)
            except csv.Error as exc:
                scan.problems.append(f"{path} is not readable as CSV ({exc})")


def _scan_csv(scan: _FeedScan, reader, path: str) -> None:
    header = next(reader, None)
    if header is None:
        return
    columns = {column.strip(): index for index, column in enumerate(header)}
    _, not_null, unique = _declared(scan.output)
    for column in dict.fromkeys((*not_null, *unique)):
        if column not in columns:
            scan.lacking.setdefault(column, []).append(path)
    null_at = [(c, columns[c]) for c in dict.fromkeys(not_null) if c in columns]
    key_at = [columns[c] for c in unique] if unique and all(c in columns for c in unique) else None
    for number, row in enumerate(reader):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number % 10_000 == 0 and time.monotonic() > scan.deadline:
            raise _OutOfTime
        scan.rows += 1
        for column, index in null_at:
            if index >= len(row) or not row[index].strip():
                scan.nulls[column] += 1
        if key_at is not None:
            # The key's 64-bit hash, not the key: a feed of millions of rows is checked in little memory.
            key = hash(tuple(row[i] if i < len(row) else "" for i in key_at))
            if key in scan.keys:
                scan.duplicates += 1
            else:
                scan.keys.add(key)


def _feed_checks(scan: _FeedScan) -> list[dict]:
    rows_min, not_null, unique = _declared(scan.output)
    problem = "; ".join(scan.problems[:3])

    def lacking(columns) -> str:
        files = sorted({path for column in columns for path in scan.lacking.get(column, ())})
        if not files:
            return ""
        more = f" and {_n(len(files) - 1, 'more file')}" if len(files) > 1 else ""
        return f"no column {', '.join(c for c in columns if c in scan.lacking)} in {files[0]}{more}"

    checks = []
    if rows_min is not None:
        checks.append(_check("rows_min", scan.rows >= rows_min,
                             f"{_n(scan.rows, 'CSV row')} in {_n(scan.files, 'file')}; at least {rows_min} expected"))
    for column in not_null:
        trouble = lacking([column]) or problem
        checks.append(_check(f"not_null:{column}", not trouble and scan.nulls[column] == 0,
                             trouble or f"{_n(scan.nulls[column], 'row')} where {column} is empty"))
    if unique:
        trouble, key = lacking(unique) or problem, ", ".join(unique)
        checks.append(_check(f"unique:{','.join(unique)}", not trouble and scan.duplicates == 0, trouble or (
            f"{_n(scan.duplicates, 'row')} repeating a value of ({key})" if scan.duplicates
            else f"every value of ({key}) appears once")))
    return checks


def measure(slug: str, outputs: list[dict]) -> dict[str, Measured]:
    tables = [o for o in outputs if o["kind"] == "table"]
    results = measure_tables(slug, tables) if tables else {}
    deadline = time.monotonic() + settings.HEALTH_MEASURE_SECONDS
    for output in outputs:
        if output["kind"] == "feed":
            results[output["name"]] = measure_feed(slug, output, deadline=deadline)
    return results


def latest_measurements(product) -> dict[str, PortMeasurement]:
    """{port name: its newest measurement}, in one query."""
    rows = (PortMeasurement.objects.filter(product=product).order_by("name", "-measured_at", "-id")
            .distinct("name").select_related("run"))
    return {m.name: m for m in rows}


def measure_run(run: Run) -> dict[str, tuple[dict, Measured]]:
    """The run's product's ports, measured now: {name: (port, what was measured)}."""
    outputs = measured_outputs(run.product)
    results = measure(run.product.slug, outputs) if outputs else {}
    return {o["name"]: (o, results[o["name"]]) for o in outputs}


def _store(run: Run, results: dict[str, tuple[dict, Measured]], now: datetime) -> None:
    """The run's measurements, once (a second measurement of a run, by beat, is dropped)."""
    if PortMeasurement.objects.filter(run=run).exists():
        return
    previous = latest_measurements(run.product)
    rows = []
    for name, (output, m) in results.items():
        before = previous.get(name)
        if output["kind"] == "feed":
            updated = m.newest_at
        elif m.rows is None:
            updated = None  # no table: nothing is fresh
        elif run.status == Run.Status.SUCCEEDED and (before is None or not m.write_mark
                                                     or m.write_mark != before.write_mark):
            updated = run.finished_at or now
        else:
            updated = before.updated_at if before else None
        rows.append(PortMeasurement(run=run, product=run.product, name=name, kind=output["kind"], rows=m.rows,
                                    files=m.files, newest_at=m.newest_at, write_mark=m.write_mark, updated_at=updated,
                                    checks=m.checks, measured_at=now))
    PortMeasurement.objects.bulk_create(rows)


# --- the product's health ----------------------------------------------------------------------
def _run_values(run: Run | None) -> dict | None:
    if run is None:
        return None
    error = (run.error or "").strip().split("\n", 1)[0][:300]
    return {"id": run.pk, "status": run.status, "exit_code": run.exit_code, "error": error,
            "started_at": run.started_at, "finished_at": run.finished_at, "url": f"/api/v1/runs/{run.pk}/"}


def _stamp(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "never"


def report(product, *, now: datetime | None = None) -> dict:
    """The product's health as of `now`: state, reasons, each measured port and the last run."""
    now = now or _now()
    outputs = measured_outputs(product)
    latest = latest_measurements(product) if outputs else {}
    last_run = (Run.objects.filter(product=product, status__in=ENDED)
                .order_by(F("finished_at").desc(nulls_last=True), "-id").first())
    state_row = Provisioning.objects.filter(product=product, provisioned=True, retired=False).first()
    since_provisioned = state_row.provisioned_at if state_row else None
    failing, stale, ports, due = [], [], [], []
    if last_run is not None and last_run.status == Run.Status.FAILED:
        failing.append(f"run #{last_run.pk} failed" + (f": {_run_values(last_run)['error']}" if last_run.error else ""))
    for output in outputs:
        m = latest.get(output["name"])
        freshness = freshness_of(output)
        last_updated = m.updated_at if m else None
        is_stale = False
        if freshness is not None and state_row is not None:
            reference = last_updated or since_provisioned
            if reference is not None and now - reference > freshness:
                is_stale = True
                stale.append(f"{output['name']} is stale: last updated {_stamp(last_updated)}, "
                             f"older than its freshness of {output['freshness']}")
            elif reference is not None:
                due.append(reference + freshness)
        checks = m.checks if m else []
        for check in checks:
            if not check.get("passed"):
                failing.append(f"{output['name']}: {check['check']} failed ({check['detail']})")
        ports.append({"name": output["name"], "kind": output["kind"], "freshness": output.get("freshness"),
                      "last_updated": last_updated, "stale": is_stale, "checks": checks,
                      "rows": m.rows if m else None, "files": m.files if m else None,
                      "measured_at": m.measured_at if m else None, "run": m.run_id if m else None})
    state = ProductHealth.State.FAILING if failing else ProductHealth.State.STALE if stale else ProductHealth.State.OK
    return {"state": state, "reasons": failing + stale, "outputs": ports, "last_run": _run_values(last_run),
            "due_at": min(due) if due else None}


def evaluate(product, *, now: datetime | None = None, run: Run | None = None,
             measured: dict[str, tuple[dict, Measured]] | None = None) -> ProductHealth:
    """Store the run's measurements (if given) and the product's state, in one transaction with the
    e-mails and webhooks announcing a change of state: nobody sees one without the other."""
    now = now or _now()
    ProductHealth.objects.get_or_create(product=product)
    with transaction.atomic():
        health = ProductHealth.objects.select_for_update().get(product=product)
        if run is not None and measured is not None:
            _store(run, measured, now)
            if (health.last_run_id or 0) < run.pk:
                health.last_run = run
        current = report(product, now=now)
        previous = health.state
        health.reasons, health.evaluated_at, health.due_at = current["reasons"], now, current["due_at"]
        if current["state"] != previous:
            health.state, health.since = current["state"], now
            _announce(product, previous, current)
        health.save()
    return health


def _announce(product, previous: str, current: dict) -> None:
    run = current["last_run"]
    signals.health_changed.send(sender=ProductHealth, product=product, previous=previous, state=current["state"],
                                reasons=list(current["reasons"]),
                                run={**run, "started_at": _iso(run["started_at"]),
                                     "finished_at": _iso(run["finished_at"])} if run else None)
    contacts = _live(product).get("contacts") or product.contacts or {}
    recipients = [m.user.email for m in onboarding.team_memberships(product.team) if m.user.email]
    recipients += [(contacts.get(role) or {}).get("email", "") for role in ("business", "technical")]
    headline = {"failing": "is failing", "stale": "is stale", "ok": "has recovered"}[current["state"]]
    deliveries.record_email(f"health.{current['state']}", recipients=sorted(set(filter(None, recipients))),
                            subject=f"[{product.slug}] {product.name} {headline}",
                            body=render_to_string("provisioning/email/health_changed.txt", {
                                "product": product, "previous": previous, "headline": headline, **current,
                                "base_url": settings.PORTAL_BASE_URL}))


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def after_run(run: Run) -> None:
    """Measure a run's ports and evaluate its product, for every run that ends (runs.py calls it).

    Never raises: the run's end stands whatever happens here. If the ports could not be measured
    (the warehouse unreachable), the product is evaluated all the same (a failed run still alerts)
    and beat measures the run again later (`evaluate_due`)."""
    try:
        run = Run.objects.select_related("product", "product__team").get(pk=run.pk)
        if run.status not in ENDED:
            return
        try:
            measured = measure_run(run)
        except Exception:
            logger.exception("run %s: its ports could not be measured; beat tries again", run.pk)
            measured = None
        evaluate(run.product, run=run, measured=measured)
    except Exception:
        logger.exception("run %s: its product's health could not be evaluated", run.pk)


def evaluate_due(*, now: datetime | None = None) -> int:
    """Beat's sweep: products whose outputs may have turned stale, provisioned products never
    evaluated, and runs whose ports nobody measured (their worker was lost). Returns how many."""
    now = now or _now()
    live = Q(product__provisioning__provisioned=True, product__provisioning__retired=False)
    missed = (Run.objects.filter(live, status__in=ENDED, finished_at__lte=now - MISSED_AFTER,
                                 finished_at__gte=now - MISSED_WITHIN)
              .filter(Q(product__health__isnull=True) | Q(product__health__last_run__isnull=True)
                      | Q(product__health__last_run_id__lt=F("pk")))
              .order_by("product_id", "-pk").distinct("product_id").values_list("pk", flat=True))
    done = set()
    for run_id in list(missed):
        run = Run.objects.select_related("product", "product__team").get(pk=run_id)
        after_run(run)
        done.add(run.product_id)
    due = ProductHealth.objects.filter(live, due_at__lte=now).values_list("product_id", flat=True)
    never = (Provisioning.objects.filter(provisioned=True, retired=False)
             .filter(Q(product__health__isnull=True) | Q(product__health__evaluated_at=None))
             .values_list("product_id", flat=True))
    from onboarding.models import Product

    for product in Product.objects.filter(pk__in={*due, *never} - done).select_related("team"):
        try:
            evaluate(product, now=now)
        except Exception:
            logger.exception("%s: its health could not be evaluated", product.slug)
    return len(done | {*due, *never})


@receiver(wid_approved, dispatch_uid="health-approved-version")
def _approved(sender, product, actor, **kwargs):
    """An approved amendment may change the ports' freshness: beat evaluates the product again at once."""
    ProductHealth.objects.filter(product=product).update(due_at=_now())


# --- reads for pages -----------------------------------------------------------------------------
def needs_attention(limit: int = 50):
    """Live products that are stale or failing, failing first, oldest trouble first; and how many."""
    rows = (ProductHealth.objects.filter(state__in=[ProductHealth.State.FAILING, ProductHealth.State.STALE],
                                         product__provisioning__provisioned=True,
                                         product__provisioning__retired=False)
            .select_related("product", "product__team").defer(*(f"product__{f}" for f in (
                "sections", "contacts", "data_custodian", "outputs", "depends_on"))))
    return list(rows.order_by("state", "since")[:limit]), rows.count()  # "failing" sorts first


def summaries() -> dict[int, dict]:
    """{product id: its health for the public WID site}: state, since and reasons, none of which
    moves while the state holds, so an unchanged product's page is not built again."""
    return {h.product_id: {"state": h.state, "since": h.since, "reasons": h.reasons}
            for h in ProductHealth.objects.exclude(evaluated_at=None)}
