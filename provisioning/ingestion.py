"""Ingestion: the worker, not the pipeline, brings a product's data into its raw/ area (docs/adr/0022).

A WID chooses `ingestion`. The run executor calls `stage` once, before the sandboxed pipeline starts:
- `database_extract`: the table or the query that `source` names runs against the registered
  database in a READ ONLY transaction, as one statement (PostgreSQL parses it alone first: a second
  statement is refused there, whatever a client-side parser thinks), under a statement timeout, at
  most INGEST_MAX_ROWS rows; its CSV (COPY TO STDOUT) replaces raw/extract.csv only when it is whole.
- `spreadsheet`: each new or changed `.csv` and `.xlsx` file at the top of the registered share
  folder is copied into raw/, each sheet of a workbook converted to a CSV of its own (openpyxl);
  links, hard links, anything but a plain file and files over INGEST_MAX_MB are refused.
- `file_drop` and `none`: nothing to copy (teams put files into raw/ themselves).
A run's sandbox sees only its lake folder (docs/adr/0016), so this is how data from elsewhere reaches
it, and the WID names a source, never an address, a path or a credential. The log names the source
and what was copied; an error has the source's secrets and path taken out.

The lake folder is the run's to write, so it is handled as hostile too: raw/ is opened without
following a link (a run may have put one there, pointing anywhere on the machine) and every file is
written through that descriptor, to a hidden temporary name first, then renamed; each file staged
belongs to the product's uid, which the run has inside its sandbox.
"""
import csv
import errno
import hashlib
import io
import os
import re
import stat
import threading
import time
import uuid
import zipfile
from contextlib import contextmanager, suppress
from datetime import date, datetime, time as day_time
from pathlib import Path

import psycopg
from django.conf import settings
from django.utils import timezone
from psycopg import sql

from onboarding.widfile import SLUG_RE
from portal.work import kernel
from provisioning import sources
from provisioning.confinement import Refused
from provisioning.models import Source, StagedFile
from provisioning.services import live_meta

EXTRACT_FILE = "extract.csv"
SHARE_SUFFIXES = (".csv", ".xlsx")
# An .xlsx is a zip of XML: what it may unpack to, as a multiple of INGEST_MAX_MB (a zip bomb stops here).
XLSX_UNPACKED_FACTOR = 10


class StagingError(Refused):
    """The run cannot start: its data could not be staged. The message is safe to show anyone."""


def stage(run, values: dict) -> None:
    """Copy what the product's ingestion brings into its raw/ area, logging what was copied."""
    meta = live_meta(run.product)
    ingestion = meta.get("ingestion") or "none"
    if ingestion == "file_drop":
        kernel.append(run, "Ingestion file_drop: files arrive in raw/ from the team; nothing to copy.")
    if ingestion not in sources.PATTERN_KINDS:
        return
    name = (meta.get("source") or {}).get("name") or ""
    source = Source.objects.filter(name=name).first()
    wanted = sources.PATTERN_KINDS[ingestion]
    if source is None:
        raise StagingError(f"ingestion {ingestion}: no source named {name!r} is registered (the platform "
                           "removed it, or the WID came from git without the portal's checks)")
    if source.kind != wanted:
        raise StagingError(f"ingestion {ingestion}: source {name} is a {source.get_kind_display()}, "
                           f"not a {Source.Kind(wanted).label}")
    uid = settings.RUN_UID_BASE + run.product_id if os.geteuid() == 0 else None
    with _raw_folder(run.product.slug, values.get("lake_path"), uid) as raw:
        if ingestion == "database_extract":
            _extract(run, source, meta["source"], raw, uid)
        else:
            _copy_share(run, source, raw, uid)


@contextmanager
def _raw_folder(slug: str, lake_path: str | None, uid: int | None):
    """A descriptor of LAKE_ROOT/<slug>/raw, reached without following any link."""
    lake = os.path.abspath(Path(settings.LAKE_ROOT, slug))
    if not SLUG_RE.fullmatch(slug) or os.path.abspath(lake_path or "") != lake:
        raise StagingError(f"the product's state names {lake_path!r} as its lake folder, not {lake}")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        lake_fd = os.open(lake, flags)
    except OSError as exc:
        raise StagingError(f"its lake folder cannot be opened ({exc.strerror})") from None
    try:
        try:
            raw = os.open("raw", flags, dir_fd=lake_fd)
        except FileNotFoundError:
            os.mkdir("raw", 0o755, dir_fd=lake_fd)
            raw = os.open("raw", flags, dir_fd=lake_fd)
            if uid is not None:
                os.fchown(raw, uid, uid)
        except OSError as exc:
            raise StagingError(f"raw/ in its lake folder is not a folder ({exc.strerror}); nothing was staged"
                               ) from None
        try:
            yield raw
        finally:
            os.close(raw)
    finally:
        os.close(lake_fd)


@contextmanager
def _new_file(raw: int, name: str, uid: int | None, *, binary: bool = False, skip_same: bool = False):
    """A file that replaces raw/<name> when the block ends without an error, and never otherwise. With
    `skip_same`, one whose content raw/<name> has already is dropped (`file.same` says so): the file
    in raw/ keeps its time, and nothing there looks new."""
    temporary = f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=raw)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="", encoding="utf-8")) as file:
            file.same = False
            yield file
            file.flush()
            if uid is not None:
                os.fchown(file.fileno(), uid, uid)
            file.same = skip_same and _digest(raw, temporary) == _digest(raw, name)
        if file.same:
            os.unlink(temporary, dir_fd=raw)
        else:
            os.replace(temporary, name, src_dir_fd=raw, dst_dir_fd=raw)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=raw)
        raise


def _digest(folder: int, name: str) -> str | None:
    """The SHA-256 of a plain file in the folder, read without following a link; None if there is none."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest() if stat.S_ISREG(os.fstat(fd).st_mode) else None


class _TooBig(Exception):
    pass


class _Capped(io.TextIOBase):
    """Writes through to `file` until `limit` bytes (of UTF-8) are reached, then raises _TooBig."""

    def __init__(self, file, limit: int):
        self.file, self.limit, self.written = file, limit, 0

    def write(self, text: str) -> int:
        self.written += len(text.encode("utf-8", errors="replace"))
        if self.written > self.limit:
            raise _TooBig()
        return self.file.write(text)


# --- database extracts -------------------------------------------------------------------------------
def _extract(run, source: Source, spec: dict, raw: int, uid: int | None) -> None:
    try:
        url = sources.connection_url(source)
    except sources.Unresolvable as exc:
        raise StagingError(f"source {source.name}: {exc}") from None
    secrets = _secrets_of(source, url)
    select, what = _select(spec)
    limit, max_bytes = settings.INGEST_MAX_ROWS, settings.INGEST_MAX_MB * 1024 * 1024
    timeout = max(1, int(min(settings.INGEST_STATEMENT_TIMEOUT, kernel.seconds_left(run))))
    started = time.monotonic()
    try:
        # Read-only from the connection's first transaction on, and ours explicitly.
        with psycopg.connect(url, connect_timeout=10, autocommit=True, application_name="portal-ingestion",
                             options="-c default_transaction_read_only=on") as conn:
            # A query that turned its own timeout off is still stopped, from here, a little later.
            watchdog = threading.Timer(timeout + 5, conn.cancel_safe)
            watchdog.start()
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    # A query from here on cannot make the transaction writable again: its snapshot is taken.
                    conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{timeout}s"])
                    wrapped = _wrapped(select, limit + 1)
                    parsed = conn.pgconn.prepare(b"", wrapped.as_bytes(conn))
                    if parsed.status != psycopg.pq.ExecStatus.COMMAND_OK:
                        message = parsed.error_message.decode("utf-8", "replace").strip()
                        raise StagingError(_redacted(f"source {source.name}: {what} was refused: {message}",
                                                     secrets))
                    with _new_file(raw, EXTRACT_FILE, uid, binary=True, skip_same=True) as file:
                        written = 0
                        with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)")
                                                .format(wrapped)) as copy:
                            for chunk in copy:
                                written += len(chunk)
                                if written > max_bytes:
                                    raise _TooBig()
                                file.write(chunk)
                        file.flush()
                        rows = _count_rows(file)
                        if rows > limit:
                            raise StagingError(f"source {source.name}: {what} gave more than {limit:,} rows "
                                               "(INGEST_MAX_ROWS); raw/ was left as it was")
            finally:
                watchdog.cancel()
    except StagingError:
        raise
    except _TooBig:
        raise StagingError(f"source {source.name}: {what} gave more than {settings.INGEST_MAX_MB} MB of CSV "
                           "(INGEST_MAX_MB); raw/ was left as it was") from None
    except psycopg.Error as exc:
        message = str(exc).strip() or type(exc).__name__
        raise StagingError(_redacted(f"source {source.name}: {message}; raw/ was left as it was", secrets)) from None
    kept = " (the same as the last extract: raw/ left as it was)" if file.same else ""
    kernel.append(run, f"Extracted {rows:,} rows from source {source.name}, {what}, into raw/{EXTRACT_FILE} "
                       f"in {time.monotonic() - started:.1f} s{kept}.", redact=secrets)


def _select(spec: dict) -> tuple[sql.Composable, str]:
    """The SELECT of a table, or the WID's query checked for one statement (PostgreSQL checks again)."""
    table, query = spec.get("table"), spec.get("query")
    if bool(table) == bool(query):
        raise StagingError("a database extract names a table or a query: its WID gives "
                           + ("both" if table else "neither"))
    if table:
        schema, _, name = str(table).partition(".")
        if not (schema and name):
            raise StagingError(f"the extract's table {table!r} is not schema.table")
        return sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, name)), f"the table {schema}.{name}"
    import sqlparse  # Django's own dependency

    text = str(query).strip().rstrip(";").rstrip()
    statements = [s for s in sqlparse.split(text) if s.strip().rstrip(";").strip()]
    if len(statements) != 1:
        raise StagingError("the extract's query holds several statements; it must be one SELECT")
    return sql.SQL(text), "the query"


def _wrapped(select: sql.Composable, limit: int) -> sql.Composed:
    """The query as a subquery, so that it can only be a SELECT, and can only end where it should: the
    line break closes any comment it ends with."""
    return sql.SQL("SELECT * FROM (\n{}\n) AS extract LIMIT {}").format(select, sql.Literal(limit))


def _count_rows(file) -> int:
    """Records (not lines: a value may hold line breaks) in the CSV being written, header aside."""
    reread = os.open(f"/proc/self/fd/{file.fileno()}", os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(reread, newline="", encoding="utf-8") as text:
        return max(0, sum(1 for _ in csv.reader(text)) - 1)


def _secrets_of(source: Source, url: str) -> tuple[str, ...]:
    """What must not reach a log: the URL as stored and as resolved, its password, a share's path."""
    found = [source.connection, url, source.path]
    with suppress(Exception):
        from psycopg.conninfo import conninfo_to_dict

        found.append(str(conninfo_to_dict(url).get("password") or ""))
    if source.path:
        found.append(os.path.realpath(source.path))
    return tuple(sorted({s for s in found if s and len(s) >= 3}, key=len, reverse=True))


def _redacted(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


# --- share folders -----------------------------------------------------------------------------------
def _copy_share(run, source: Source, raw: int, uid: int | None) -> None:
    secrets = _secrets_of(source, "")
    try:
        share = os.open(source.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise StagingError(f"source {source.name}: its share folder cannot be opened on this worker "
                           f"({exc.strerror})") from None
    copied, unchanged, refused = [], 0, []
    try:
        records = {r.name: r for r in StagedFile.objects.filter(product_id=run.product_id, source=source.name)}
        taken: set[str] = set()
        with os.scandir(share) as entries:
            names = sorted(e.name for e in entries)
        for name in names:
            if name.startswith((".", "~$")) or not name.lower().endswith(SHARE_SUFFIXES):
                continue  # hidden files, Office's lock files, anything else
            try:
                outcome = _stage_file(run, source, share, raw, name, records.get(name), taken, uid)
            except _Refusal as exc:
                refused.append(f"{name} ({exc})")
                continue
            if outcome is None:
                unchanged += 1
            else:
                copied.append(outcome)
    finally:
        os.close(share)
    for line in copied:
        kernel.append(run, f"Copied from source {source.name}: {line}", redact=secrets)
    for line in refused:
        kernel.append(run, f"Refused from source {source.name}: {line}", redact=secrets)
    kernel.append(run, f"Ingestion spreadsheet from source {source.name}: {len(copied)} file(s) copied, "
                       f"{unchanged} unchanged, {len(refused)} refused.", redact=secrets)


class _Refusal(Exception):
    """One file of a share is not copied; the others are."""


def _stage_file(run, source: Source, share: int, raw: int, name: str, record: StagedFile | None,
                taken: set[str], uid: int | None) -> str | None:
    """Copy one file if it is new or changed: a line saying what it became, or None when unchanged."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=share)
    except OSError as exc:
        raise _Refusal("a link" if exc.errno == errno.ELOOP else exc.strerror) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _Refusal("not a plain file")
    with os.fdopen(fd, "rb") as file:
        max_bytes = settings.INGEST_MAX_MB * 1024 * 1024
        if info.st_nlink > 1:
            raise _Refusal("a hard link, which may be a file from outside the share")
        if info.st_size > max_bytes:
            raise _Refusal(f"over {settings.INGEST_MAX_MB} MB (INGEST_MAX_MB)")
        present = record is not None and all(_exists(raw, t) for t in record.targets)
        if present and (record.size, record.mtime_ns) == (info.st_size, info.st_mtime_ns):
            taken.update(record.targets)
            return None
        digest = hashlib.file_digest(file, "sha256").hexdigest()
        file.seek(0)
        if present and record.sha256 == digest:
            StagedFile.objects.filter(pk=record.pk).update(size=info.st_size, mtime_ns=info.st_mtime_ns)
            taken.update(record.targets)
            return None
        stem = _safe_name(name.rsplit(".", 1)[0])
        if name.lower().endswith(".csv"):
            targets = {f"{stem}.csv": None}
            _claim(targets, taken)
            with _new_file(raw, f"{stem}.csv", uid, binary=True) as out:
                remaining = info.st_size  # as it is, bytes and encoding
                while chunk := file.read(min(1 << 20, remaining)):
                    out.write(chunk)
                    remaining -= len(chunk)
                _unchanged_since(file, info)
            said = f"{name} → raw/{stem}.csv ({info.st_size:,} bytes)"
        else:
            targets = _convert_workbook(file, info, stem, raw, taken, uid, max_bytes)
            said = f"{name} → " + ", ".join(f"raw/{t} ({rows:,} rows)" for t, rows in targets.items())
    for gone in set(record.targets if record else ()) - set(targets):
        with suppress(FileNotFoundError):
            os.unlink(gone, dir_fd=raw)  # a sheet the workbook no longer has
    StagedFile.objects.update_or_create(
        product_id=run.product_id, source=source.name, name=name,
        defaults={"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": digest, "targets": sorted(targets),
                  "staged_at": timezone.now()})
    return said


def _convert_workbook(file, info: os.stat_result, stem: str, raw: int, taken: set[str], uid: int | None,
                      max_bytes: int) -> dict[str, int]:
    """Each worksheet of the workbook as raw/<stem>.<sheet>.csv: {file name: rows}. All of them or none."""
    import openpyxl

    try:
        with zipfile.ZipFile(file) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        raise _Refusal("not an .xlsx workbook") from None
    if unpacked > XLSX_UNPACKED_FACTOR * max_bytes:
        raise _Refusal(f"it unpacks to over {XLSX_UNPACKED_FACTOR * settings.INGEST_MAX_MB} MB")
    file.seek(0)
    try:
        workbook = openpyxl.load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001  (openpyxl raises many kinds on a broken file)
        raise _Refusal(f"not a readable .xlsx workbook ({type(exc).__name__})") from None
    try:
        names, used = {}, set()
        for sheet in workbook.worksheets:
            base = f"{stem}.{_safe_name(sheet.title).lower() or 'sheet'}"
            target, n = f"{base}.csv", 1
            while target in used:
                n += 1
                target = f"{base}-{n}.csv"
            used.add(target)
            names[target] = sheet
        _claim(dict.fromkeys(names), taken)
        temporary = {}
        try:
            for target, sheet in names.items():
                temporary[target] = _sheet_to_csv(sheet, raw, target, max_bytes)
            _unchanged_since(file, info)
        except BaseException:
            for written, _ in temporary.values():
                with suppress(FileNotFoundError):
                    os.unlink(written, dir_fd=raw)
            raise
    finally:
        workbook.close()
    for target, (written, _) in temporary.items():
        if uid is not None:
            os.chown(written, uid, uid, dir_fd=raw, follow_symlinks=False)
        os.replace(written, target, src_dir_fd=raw, dst_dir_fd=raw)
    return {target: rows for target, (_, rows) in temporary.items()}


def _sheet_to_csv(sheet, raw: int, target: str, max_bytes: int) -> tuple[str, int]:
    """The sheet's values (not formulas) as a hidden temporary CSV: (its name, rows)."""
    temporary = f".{target}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=raw)
    rows = 0
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(_Capped(out, max_bytes))
            for row in sheet.iter_rows(values_only=True):
                rows += 1
                if rows > settings.INGEST_MAX_ROWS:
                    raise _Refusal(f"sheet {sheet.title!r} has over {settings.INGEST_MAX_ROWS:,} rows "
                                   "(INGEST_MAX_ROWS)")
                writer.writerow([_cell(value) for value in row])
    except _TooBig:
        with suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=raw)
        raise _Refusal(f"sheet {sheet.title!r} makes over {settings.INGEST_MAX_MB} MB of CSV") from None
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=raw)
        raise
    return temporary, rows


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date, day_time)):
        return value.isoformat()
    return str(value)


def _unchanged_since(file, info: os.stat_result) -> None:
    """A file still being written at the share is left for a later run: its copy would be half of it."""
    now = os.fstat(file.fileno())
    if (now.st_size, now.st_mtime_ns) != (info.st_size, info.st_mtime_ns):
        raise _Refusal("it changed while it was being copied; a later run copies it")


def _claim(targets: dict, taken: set[str]) -> None:
    """Two share files that would become the same file in raw/: the first keeps it."""
    clash = sorted(set(targets) & taken)
    if clash:
        raise _Refusal(f"it would overwrite raw/{clash[0]}, which another file of the share became")
    taken.update(targets)


def _safe_name(name: str) -> str:
    """A file name in raw/ made of the share's: letters, digits, `_`, `.` and `-`, no leading dot."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._-")[:120] or "file"


def _exists(raw: int, name: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=raw, follow_symlinks=False).st_mode)
    except OSError:
        return False
