"""Usage of output ports, measured in the local warehouse (docs/adr/0019).

PostgreSQL keeps no last-read time per table, but it knows who ran what: `pg_stat_statements`
counts the calls of every statement per role. Every USAGE_SAMPLE_SECONDS, beat's `sample-usage`
reads the entries of readers' logins (each consumer product's own login, each person's `a_<request>`
login), keeps their calls for the next sample, and attributes what grew to the published tables
the statement names (`pub_<slug>.<port>`, quoted or not) and to the login's owner. A refused read
never reaches pg_stat_statements: the warehouse writes its errors as JSON lines (with the role and
the statement), read here through the admin connection, and a `permission denied` naming a port
counts as a failed read. For a feed, a consumer's successful run is its read: its confinement
mounts the producer's curated/ folder. Everything lands in `PortRead`, one row per port and reader.

What is measured is a statement that finished or was refused, at the time of the sample that saw
it (a refused one at its own time): a read through a view, a function or `search_path` without the
schema's name is not attributed, and a login used by several people is one reader.
"""
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import psycopg
from django.db import transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from provisioning import access, signals
from provisioning.models import AccessRequest, PortRead, Provisioning, Run, StatementCount, UsageCursor

logger = logging.getLogger(__name__)

MEASURED_KINDS = ("table", "feed")
# A run's finished_at is written just before its transaction commits: runs are counted a little
# after they end, so that none commits behind the cursor.
RUN_SETTLE = timedelta(seconds=5)
LOG_BUDGET_BYTES = 8 * 1024 * 1024  # of the warehouse's log read per sample; the rest waits for the next
WAREHOUSE_TIMEOUT_MS = 30_000
PERSONAL_ROLE = re.compile(r"^a_([0-9]+)$")
# schema.table, each part quoted or not. A lookahead, so that `db.schema.table` is seen at `schema`
# too; the lookbehind keeps it from starting inside a word or a quoted name.
QUALIFIED = re.compile(r'(?<![\w"$])(?=("?)([A-Za-z_][\w$]*)\1\s*\.\s*("?)([A-Za-z_][\w$]*)\3)')
INSUFFICIENT_PRIVILEGE = "42501"

STATEMENTS = """
SELECT s.userid, r.rolname, s.dbid, s.queryid, s.toplevel, s.calls, s.query
  FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
 WHERE s.queryid IS NOT NULL AND (r.rolname = ANY(%s) OR r.rolname ~ '^a_[0-9]+$')
"""
LOG_FILES = """
SELECT current_setting('log_directory') || '/' || name, name, size, modification
  FROM pg_ls_logdir() WHERE name LIKE '%%.json' ORDER BY modification, name
"""


def mentioned_tables(query: str) -> set[tuple[str, str]]:
    """The (schema, table) pairs a statement names; unquoted names fold to lower case, as PostgreSQL does."""
    return {(schema if q1 else schema.lower(), table if q2 else table.lower())
            for q1, schema, q2, table in QUALIFIED.findall(query)}


# --- who is who -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reader:
    kind: str
    who: str
    role: str
    product_id: int | None = None  # the reader's own product (a consumer), or the product a person may read


_LIVE_OUTPUTS: dict[tuple, list[dict]] = {}


def live_outputs(product) -> list[dict]:
    """The outputs of the product's approved version. Read from git once per approved version: the
    sampler asks for them every minute, and a version never changes."""
    from provisioning.services import live_meta

    key = (product.pk, product.approved_version, product.version if product.approved_version is None else 0)
    if key not in _LIVE_OUTPUTS:
        if len(_LIVE_OUTPUTS) > 10_000:
            _LIVE_OUTPUTS.clear()
        _LIVE_OUTPUTS[key] = list(live_meta(product)["outputs"])
    return _LIVE_OUTPUTS[key]


class Known:
    """The provisioned products, by login and by published schema (from their applied outputs), and
    the people behind personal logins, for one sample."""

    def __init__(self):
        states = list(Provisioning.objects.filter(provisioned=True, retired=False)
                      .select_related("product", "product__team"))
        self.states = {s.product_id: s for s in states}
        self.by_role = {s.outputs["storage_role"]: s.product for s in states if s.outputs.get("storage_role")}
        self.by_schema = {s.outputs["published_schema"]: s.product for s in states if s.outputs.get("published_schema")}
        self.by_slug = {s.product.slug: s.product for s in states}
        self.people: dict[str, AccessRequest] = {}

    def load_people(self, roles) -> None:
        ids = {int(m.group(1)) for m in map(PERSONAL_ROLE.match, roles) if m}
        for request in AccessRequest.objects.filter(pk__in=ids, kind=AccessRequest.Kind.PERSON).select_related(
                "requester"):
            self.people[request.role_name] = request

    def reader(self, role: str) -> Reader | None:
        if role in self.by_role:
            product = self.by_role[role]
            return Reader(PortRead.ReaderKind.PRODUCT, product.slug, role, product.pk)
        request = self.people.get(role)
        if request is not None:
            return Reader(PortRead.ReaderKind.PERSON, request.requester.username, role, request.product_id)
        return None

    def ports(self, product, kind: str) -> set[str]:
        return {o["name"] for o in live_outputs(product) if o["kind"] == kind}

    def port_read(self, reader: Reader, schema: str, table: str):
        """The producer whose port `schema.table` is, when `reader` reads someone else's port; else None."""
        producer = self.by_schema.get(schema)
        if producer is None or table not in self.ports(producer, "table"):
            return None
        if reader.kind == PortRead.ReaderKind.PRODUCT and reader.product_id == producer.pk:
            return None  # a product reading its own port is not a consumer
        if reader.kind == PortRead.ReaderKind.PERSON and reader.product_id != producer.pk:
            return None  # a personal login reads its own product's schema only
        return producer


@dataclass
class Tally:
    """What one sample saw, by (producer id, port, reader kind, reader)."""

    reads: dict = field(default_factory=lambda: defaultdict(lambda: {"n": 0, "at": None, "role": ""}))
    failures: dict = field(default_factory=lambda: defaultdict(lambda: {"n": 0, "at": None, "error": "", "role": ""}))

    def read(self, producer, port: str, kind: str, who: str, role: str, n: int, at: datetime) -> None:
        seen = self.reads[(producer.pk, port, kind, who)]
        seen["n"] += n
        if seen["at"] is None or at >= seen["at"]:
            seen["at"], seen["role"] = at, role or seen["role"]

    def fail(self, producer, port: str, reader: Reader, at: datetime, error: str) -> None:
        seen = self.failures[(producer.pk, port, reader.kind, reader.who)]
        seen["n"] += 1
        if seen["at"] is None or at >= seen["at"]:
            seen.update(at=at, error=error[:300], role=reader.role)


# --- the sampler ----------------------------------------------------------------------------------
def sample(*, now: datetime | None = None) -> dict:
    """Beat's `sample-usage`: count what readers read since the last sample. Samples never overlap
    (the cursor's row lock) and a second one with nothing new read adds nothing. A warehouse that
    cannot be read is logged and skipped; the runs are counted all the same."""
    UsageCursor.objects.get_or_create(pk=1)
    with transaction.atomic():
        cursor = UsageCursor.objects.select_for_update().get(pk=1)
        now = now or timezone.now()
        known, tally = Known(), Tally()
        try:
            from provisioning.services import warehouse_dsn

            with psycopg.connect(warehouse_dsn(), connect_timeout=10, autocommit=True,
                                 options=f"-c statement_timeout={WAREHOUSE_TIMEOUT_MS}") as conn:
                for source, part in (("pg_stat_statements", _statements), ("the JSON log", _refusals)):
                    try:
                        part(conn, cursor, known, tally, now)
                    except psycopg.Error as exc:
                        # Not loaded, not installed, no JSON log: scripts/services.py sets them up (ADR 0019).
                        logger.warning("usage: %s of the warehouse could not be read: %s", source, exc)
        except (psycopg.Error, OSError) as exc:
            logger.warning("usage: the warehouse could not be sampled (%s); runs are counted, reads wait", exc)
        _runs(cursor, known, tally, now)
        cursor.save()
        changed = _record(tally, now)
    if changed:
        signals.usage_changed.send(sender=PortRead, slugs=sorted(changed))
    return {"reads": sum(v["n"] for v in tally.reads.values()),
            "failed_reads": sum(v["n"] for v in tally.failures.values()), "products": sorted(changed)}


def _statements(conn, cursor: UsageCursor, known: Known, tally: Tally, now: datetime) -> None:
    """What grew in pg_stat_statements since the last sample. The first sample is a baseline (when its
    calls happened is not known); a reset of the statistics (or an entry evicted and back) counts
    from zero."""
    info = conn.execute("SELECT stats_reset FROM pg_stat_statements_info").fetchone()
    rows = conn.execute(STATEMENTS, [list(known.by_role)]).fetchall()
    known.load_people({row[1] for row in rows})
    stored = {(c.userid, c.dbid, c.queryid, c.toplevel): c for c in StatementCount.objects.all()}
    baseline = cursor.statements_at is None
    reset = not baseline and info[0] != cursor.stats_reset
    current = {}
    for userid, role, dbid, queryid, toplevel, calls, query in rows:
        tables = [t for t in mentioned_tables(query) if t[0] in known.by_schema]
        if not tables:
            continue
        key = (userid, dbid, queryid, toplevel)
        current[key] = calls
        before = 0 if reset or key not in stored else stored[key].calls
        grown = calls - before if calls >= before else calls
        reader = known.reader(role)
        if baseline or grown <= 0 or reader is None:
            continue
        for schema, table in tables:
            producer = known.port_read(reader, schema, table)
            if producer is not None:
                tally.read(producer, table, reader.kind, reader.who, role, grown, now)
    StatementCount.objects.filter(pk__in=[c.pk for key, c in stored.items() if key not in current]).delete()
    StatementCount.objects.bulk_create(
        [StatementCount(userid=k[0], dbid=k[1], queryid=k[2], toplevel=k[3], calls=calls)
         for k, calls in current.items() if k not in stored or stored[k].calls != calls],
        update_conflicts=True, unique_fields=["userid", "dbid", "queryid", "toplevel"], update_fields=["calls"])
    cursor.statements_at, cursor.stats_reset = now, info[0]


def _refusals(conn, cursor: UsageCursor, known: Known, tally: Tally, now: datetime) -> None:
    """`permission denied` errors naming a port, from the warehouse's JSON log (one file per weekday,
    overwritten a week later), read from where the last sample stopped. The first sample starts at
    the end. A file that shrank or was rewritten (its time moved by more than a day) is read again
    from its start, skipping what is older than what was read of it before."""
    files = conn.execute(LOG_FILES).fetchall()
    if cursor.log_positions is None:
        cursor.log_positions = {name: {"offset": size, "modified": modified.isoformat()}
                                for _, name, size, modified in files}
        return
    positions, entries, budget = {}, [], LOG_BUDGET_BYTES
    for path, name, size, modified in files:
        seen = cursor.log_positions.get(name)
        offset, older_than = (seen["offset"], None) if seen else (0, None)
        if seen and (size < offset or modified - datetime.fromisoformat(seen["modified"]) > timedelta(days=1)):
            offset, older_than = 0, datetime.fromisoformat(seen["modified"])
        positions[name] = {"offset": offset, "modified": (seen or {}).get("modified", modified.isoformat())}
        if offset >= size or budget <= 0:
            continue
        data = conn.execute("SELECT pg_read_binary_file(%s, %s, %s, true)",
                            [path, offset, min(size - offset, budget)]).fetchone()[0]
        if data is None:
            continue  # rotated away meanwhile
        data = bytes(data)
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) == budget:
            logger.warning("usage: a line of %s longer than %s bytes is skipped", name, budget)
            end = len(data)
        budget -= end
        positions[name] = {"offset": offset + end, "modified": modified.isoformat()}
        for line in data[:end].splitlines():
            entry = _refusal(line)
            if entry and not (older_than and entry["at"] <= older_than):
                entries.append(entry)
    cursor.log_positions = positions
    known.load_people({e["user"] for e in entries})
    for entry in entries:
        reader = known.reader(entry["user"])
        if reader is None:
            continue
        for schema, table in mentioned_tables(entry["statement"]):
            producer = known.port_read(reader, schema, table)
            if producer is not None:
                tally.fail(producer, table, reader, entry["at"], entry["message"])


def _refusal(line: bytes) -> dict | None:
    try:
        entry = json.loads(line)
        if entry.get("state_code") != INSUFFICIENT_PRIVILEGE or not entry.get("statement"):
            return None
        # "2026-12-02 04:33:43.190 UTC": the warehouse logs in UTC (scripts/services.py sets log_timezone).
        stamp, _, zone = entry["timestamp"].rpartition(" ")
        if zone not in ("UTC", "GMT"):
            return None
        at = datetime.fromisoformat(stamp).replace(tzinfo=dt_timezone.utc)
        return {"user": str(entry.get("user") or ""), "statement": str(entry["statement"]), "at": at,
                "message": str(entry.get("message") or "")}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _runs(cursor: UsageCursor, known: Known, tally: Tally, now: datetime) -> None:
    """Each successful run of a product whose applied grants name a producer reads its feeds."""
    until = now - RUN_SETTLE
    runs = Run.objects.filter(status=Run.Status.SUCCEEDED, finished_at__lte=until)
    if cursor.runs_until is not None:
        runs = runs.filter(finished_at__gt=cursor.runs_until)
    for row in runs.values("product_id").annotate(n=Count("id"), last=Max("finished_at")).order_by():
        state = known.states.get(row["product_id"])
        if state is None:
            continue
        for producer_slug in sorted(state.outputs.get("reads") or {}):
            producer = known.by_slug.get(producer_slug)
            if producer is None:
                continue
            for port in sorted(known.ports(producer, "feed")):
                tally.read(producer, port, PortRead.ReaderKind.RUN, state.product.slug, "", row["n"], row["last"])
    cursor.runs_until = until


def _record(tally: Tally, now: datetime) -> set[str]:
    """Add the sample to `PortRead`; the slugs of producers whose usage changed by more than its counts
    (a new reader or failure, a day of last read)."""
    keys = set(tally.reads) | set(tally.failures)
    if not keys:
        return set()
    rows = {(r.product_id, r.port, r.reader_kind, r.reader): r for r in PortRead.objects.filter(
        product_id__in={k[0] for k in keys})}
    changed = set()
    for key in sorted(keys, key=str):
        row = rows.get(key) or PortRead(product_id=key[0], port=key[1], reader_kind=key[2], reader=key[3],
                                        first_seen=now)
        day = (row.last_read_at and row.last_read_at.date(), row.last_failed_at and row.last_failed_at.date())
        if key in tally.reads:
            seen = tally.reads[key]
            row.reads += seen["n"]
            row.last_read_at = max(filter(None, (row.last_read_at, seen["at"])))
            row.role = seen["role"] or row.role
        if key in tally.failures:
            seen = tally.failures[key]
            row.failed_reads += seen["n"]
            if row.last_failed_at is None or seen["at"] >= row.last_failed_at:
                row.last_failed_at, row.last_error, row.role = seen["at"], seen["error"], seen["role"] or row.role
        if row.pk is None or day != (row.last_read_at and row.last_read_at.date(),
                                     row.last_failed_at and row.last_failed_at.date()):
            changed.add(key[0])
        row.save()
    from onboarding.models import Product

    return set(Product.objects.filter(pk__in=changed).values_list("slug", flat=True))


# --- reading it -----------------------------------------------------------------------------------
def port_usage(product, *, user) -> list[dict]:
    """Per output port of the live version: who can read it (grants and approved people), who did and
    when last, whose reads were refused. People's names only for the product's team and the platform
    (the access report's rule); anyone else sees their own name and "a person" for the others."""
    names = access.user_may_see_report(user, product)
    can = access.readers_now(product)
    reads = defaultdict(list)
    for row in PortRead.objects.filter(product=product).order_by(F("last_read_at").desc(nulls_last=True), "reader"):
        reads[row.port].append(row)

    def who(kind: str, name: str) -> str | None:
        return name if kind != PortRead.ReaderKind.PERSON or names or name == user.username else None

    ports = []
    for output in live_outputs(product):
        kind, rows = output["kind"], reads.get(output["name"], [])
        can_read = []
        if kind in MEASURED_KINDS:
            can_read = [{"kind": "product", "who": p["product"], "team": p["team"], "until": None}
                        for p in can["products"]]
        if kind == "table":
            can_read += [{"kind": "person", "who": who("person", p["username"]), "team": None, "until": p["until"]}
                         for p in can["people"]]
        ports.append({
            "name": output["name"], "kind": kind, "measured": kind in MEASURED_KINDS, "can_read": can_read,
            "read_by": [{"kind": r.reader_kind, "who": who(r.reader_kind, r.reader), "first_read_at": r.first_seen,
                         "last_read_at": r.last_read_at, "reads": r.reads} for r in rows if r.reads],
            "failed_reads": [{"kind": r.reader_kind, "who": who(r.reader_kind, r.reader),
                              "last_failed_at": r.last_failed_at, "failed_reads": r.failed_reads,
                              "error": r.last_error} for r in rows if r.failed_reads],
        })
    return ports


def fingerprint() -> str:
    """Changes with every sample that saw a read or a refusal (for cached pages that show usage)."""
    row = PortRead.objects.aggregate(n=Count("id"), read=Max("last_read_at"), failed=Max("last_failed_at"))
    return f"{row['n']}.{row['read']}.{row['failed']}.{timezone.now().date()}"
