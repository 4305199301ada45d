"""Archives of destroyed products (docs/adr/0020): made by the destroy job before Terraform deletes
anything, deleted by the sweep after their retention date, brought back by `manage.py restore_archive`.

One folder per product and job, ARCHIVE_ROOT/<slug>/job-<id>/:
- `schemas.dump`: pg_dump (custom format) of the product's private and published schemas;
- `lake.tar.gz`, `pipeline.tar.gz`: its lake folder (LAKE_ROOT/<slug>) and pipeline repository
  (PIPELINES_ROOT/<slug>), each under its slug;
- `manifest.json`: slug, job, who, when, the retention date, and each file's sha256 and size.

The folder is written under a temporary name and renamed once complete, so a `job-<id>` folder is
always whole; it is 0700 and its files 0600 (an archive may hold personal data). pg_dump and
pg_restore run as child processes with the job's deadline (portal/work/process.py) and get the
warehouse admin's password through a PGPASSFILE of their own, never on a command line.
"""
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
from django.conf import settings
from django.utils import timezone
from psycopg import sql

from onboarding.widfile import SLUG_RE
from portal.work import process
from provisioning.models import Archive
from provisioning.rendering import private_schema, published_schema

logger = logging.getLogger(__name__)

SCHEMAS = "schemas.dump"
LAKE = "lake.tar.gz"
PIPELINE = "pipeline.tar.gz"
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024
# What an archive can hold: the local target's warehouse schemas, lake folder and pipeline repository.
TARGETS = ("local",)


class ArchiveError(Exception):
    """The archive could not be made (or restored); a destroy stops before deleting anything."""


class Cancelled(ArchiveError):
    """The job was cancelled while archiving."""


# --- the warehouse's tools -------------------------------------------------------------------
def pg_binary(name: str) -> str:
    """pg_dump or pg_restore of the warehouse's major version (PG_BINDIR, else the newest installed)."""
    if settings.PG_BINDIR:
        return str(Path(settings.PG_BINDIR) / name)

    def version(path: Path) -> tuple:
        return tuple(int(part) for part in path.parent.parent.name.split(".") if part.isdigit())

    installed = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=version)
    if installed:
        return str(installed[-1])
    found = shutil.which(name)
    if not found:
        raise ArchiveError(f"{name} is not installed (set PG_BINDIR to the PostgreSQL binaries' folder)")
    return found


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextmanager
def _client_env(warehouse: dict):
    """The environment of pg_dump and pg_restore: connection values, and the password in a 0600 file
    that lives as long as they run (libpq reads PGPASSFILE; a command line is readable by anyone)."""
    with tempfile.TemporaryDirectory(prefix="portal-pgpass-") as private:
        passfile = Path(private) / "pgpass"
        descriptor = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(f"*:*:*:{_pgpass_field(warehouse['user'])}:{_pgpass_field(warehouse['password'])}\n")
        yield {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": private,
               "PGHOST": warehouse["host"], "PGPORT": str(warehouse["port"]), "PGUSER": warehouse["user"],
               "PGDATABASE": warehouse["dbname"], "PGPASSFILE": str(passfile), "PGCONNECT_TIMEOUT": "10",
               "PGAPPNAME": "portal-archive"}


def _connect(warehouse: dict, dbname: str | None = None) -> psycopg.Connection:
    return psycopg.connect(host=warehouse["host"], port=warehouse["port"], user=warehouse["user"],
                           password=warehouse["password"], dbname=dbname or warehouse["dbname"],
                           autocommit=True, connect_timeout=10, application_name="portal-archive")


def _existing_schemas(warehouse: dict, names: list[str], dbname: str | None = None) -> list[str]:
    with _connect(warehouse, dbname) as conn:
        found = {name for (name,) in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [names])}
    return [name for name in names if name in found]


class _Clock:
    """The job's deadline and cancel request, asked between files and while hashing."""

    def __init__(self, deadline: float, should_cancel: Callable[[], bool]):
        self.ends_at = time.monotonic() + deadline
        self.should_cancel = should_cancel

    def left(self) -> float:
        return max(self.ends_at - time.monotonic(), 1.0)

    def check(self) -> None:
        if self.should_cancel():
            raise Cancelled("cancelled while archiving")
        if time.monotonic() >= self.ends_at:
            raise ArchiveError("the archive ran past the job's deadline")


def _run(argv: list[str], *, env: dict, clock: _Clock, on_line: Callable[[str], None],
         on_start: Callable[[int], None] | None = None) -> None:
    result = process.run(argv, env=env, on_line=on_line, deadline=clock.left(), should_cancel=clock.should_cancel,
                         cancel_signal=signal.SIGTERM, grace=5, on_start=on_start)
    name = Path(argv[0]).name
    if result.cancelled:
        raise Cancelled(f"cancelled while {name} ran")
    if result.timed_out:
        raise ArchiveError(f"{name} ran past the deadline and was stopped")
    if result.exit_code != 0:
        last = next((line for line in reversed(result.lines_tail) if line.strip()), "")
        raise ArchiveError(f"{name} exited with {result.exit_code}: {last}")


def _tables_and_errors(on_line: Callable[[str], None]) -> Callable[[str], None]:
    """pg_dump --verbose, without its progress chatter: the tables it dumps, and anything it complains of."""
    def keep(line: str) -> None:
        if not line.startswith("pg_dump: ") or "dumping contents of table" in line \
                or line.startswith(("pg_dump: error", "pg_dump: warning", "pg_dump: detail", "pg_dump: hint")):
            on_line(line)
    return keep


# --- making one --------------------------------------------------------------------------------
def _sha256(path: Path, clock: _Clock) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            clock.check()
    return digest.hexdigest()


def _tar(source: Path, target: Path, arcname: str, clock: _Clock) -> None:
    """`source` as `arcname/...` in a gzipped tar; symbolic links are kept as links, never followed."""
    def each(member: tarfile.TarInfo) -> tarfile.TarInfo:
        clock.check()
        return member

    with tarfile.open(target, "w:gz", compresslevel=6) as tar:
        tar.add(source, arcname=arcname, recursive=True, filter=each)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def folder_for(slug: str, job_id: int) -> Path:
    if not SLUG_RE.fullmatch(slug):
        raise ArchiveError(f"{slug!r} is not a product slug")
    return Path(settings.ARCHIVE_ROOT) / slug / f"job-{job_id}"


def archive_make(*, job, warehouse: dict, on_line: Callable[[str], None], deadline: float,
                 should_cancel: Callable[[], bool] = lambda: False,
                 on_start: Callable[[int], None] | None = None) -> Archive:
    """Archive the job's product as it is now; raises ArchiveError (nothing kept) when any part fails.

    A part that does not exist (a retry after a destroy that got halfway) is left out and named in
    the manifest's `missing`: the earlier attempt's archive holds it.
    """
    slug = job.product.slug
    if job.product.target not in TARGETS:
        raise ArchiveError(f"a {job.product.target} product is not archived here (destroy it with archive: false)")
    clock = _Clock(deadline, should_cancel)
    final = folder_for(slug, job.pk)
    try:
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if final.exists():
            raise ArchiveError(f"{final} exists already")
        building = Path(tempfile.mkdtemp(prefix=f".job-{job.pk}-", dir=final.parent))
    except OSError as exc:
        raise ArchiveError(f"cannot write under ARCHIVE_ROOT: {exc}") from exc
    try:
        parts, missing = {}, []
        try:
            schemas = _existing_schemas(warehouse, [private_schema(slug), published_schema(slug)])
        except psycopg.Error as exc:
            raise ArchiveError(f"cannot read the warehouse: {str(exc).strip()}") from exc
        if schemas:
            on_line(f"pg_dump of {', '.join(schemas)} (custom format) into {final / SCHEMAS}")
            with _client_env(warehouse) as env:
                _run([pg_binary("pg_dump"), "--format=custom", "--no-password", "--verbose", "--strict-names",
                      "--lock-wait-timeout=60000", *[f"--schema={name}" for name in schemas],
                      f"--file={building / SCHEMAS}"], env=env, clock=clock, on_line=_tables_and_errors(on_line),
                     on_start=on_start)
            parts[SCHEMAS] = schemas
        else:
            missing.append("schemas")
        for name, folder, what in ((LAKE, Path(settings.LAKE_ROOT) / slug, "lake folder"),
                                   (PIPELINE, Path(settings.PIPELINES_ROOT) / slug, "pipeline repository")):
            if folder.is_dir() and not folder.is_symlink():
                on_line(f"Archiving the {what} {folder}")
                _tar(folder, building / name, slug, clock)
                parts[name] = str(folder)
            else:
                missing.append(what)
        files = {}
        for name in parts:
            path = building / name
            os.chmod(path, 0o600)
            _fsync(path)
            files[name] = {"sha256": _sha256(path, clock), "size": path.stat().st_size}
        created = timezone.now()
        manifest = {
            "format": 1, "slug": slug, "job": job.pk, "target": job.product.target,
            "requested_by": job.requested_by.username if job.requested_by else None,
            "confirmed_by": job.confirmed_by.username if job.confirmed_by else None,
            "created_at": created.isoformat(),
            "delete_after": (created + timedelta(days=settings.ARCHIVE_RETENTION_DAYS)).isoformat(),
            "force": job.force, "reason": job.destroy_reason, "dependants": list(job.dependants),
            "schemas": parts.get(SCHEMAS, []), "lake": parts.get(LAKE), "pipeline": parts.get(PIPELINE),
            "missing": missing, "files": files,
        }
        manifest_path = building / MANIFEST
        descriptor = os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(manifest, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.rename(building, final)
        _fsync(final.parent)
    except BaseException as exc:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ArchiveError(f"cannot write the archive: {exc}") from exc
        raise
    size = sum(f["size"] for f in files.values()) + (final / MANIFEST).stat().st_size
    try:
        return Archive.objects.create(product=job.product, job=job, path=str(final), created_at=created,
                                      delete_after=created + timedelta(days=settings.ARCHIVE_RETENTION_DAYS),
                                      size=size, manifest=manifest)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)  # an archive nobody can find is no archive
        raise


def describe(archive: Archive | None) -> dict | None:
    """An archive as the API, the job page and the tombstone show it."""
    if archive is None:
        return None
    manifest = archive.manifest
    return {"id": archive.pk, "job": archive.job_id, "path": archive.path, "created_at": archive.created_at,
            "delete_after": archive.delete_after, "deleted_at": archive.deleted_at, "size": archive.size,
            "schemas": manifest.get("schemas", []), "lake": bool(manifest.get("lake")),
            "pipeline": bool(manifest.get("pipeline")), "missing": manifest.get("missing", [])}


# --- the sweep -------------------------------------------------------------------------------
def _manifest_of(path: Path) -> dict | None:
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def archives_sweep(*, now=None) -> int:
    """Delete the archives whose retention date has passed (files first, then the row says so).

    A folder is deleted only when its manifest names the row's product and job: a path that now
    holds something else (ARCHIVE_ROOT moved, a hand-made folder) is logged and left alone."""
    now = now or timezone.now()
    deleted = 0
    for archive in Archive.objects.filter(deleted_at__isnull=True, delete_after__lte=now).select_related("product"):
        path = Path(archive.path)
        if path.exists():
            manifest = _manifest_of(path)
            if not manifest or manifest.get("job") != archive.job_id or manifest.get("slug") != archive.product.slug:
                logger.error("archive %s: %s does not hold its manifest; left alone", archive.pk, path)
                continue
            shutil.rmtree(path)
            try:
                path.parent.rmdir()  # the product's folder, once its last archive is gone
            except OSError:
                pass
        deleted += Archive.objects.filter(pk=archive.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    return deleted


# --- restoring -------------------------------------------------------------------------------
def _verify(archive: Archive) -> dict:
    path = Path(archive.path)
    manifest = _manifest_of(path)
    if manifest is None:
        raise ArchiveError(f"{path / MANIFEST} cannot be read")
    if manifest.get("slug") != archive.product.slug or manifest.get("job") != archive.job_id:
        raise ArchiveError(f"{path} holds the archive of {manifest.get('slug')} job {manifest.get('job')}, "
                           f"not of {archive.product.slug} job {archive.job_id}")
    clock = _Clock(float(settings.JOB_TIMEOUT_SECONDS), lambda: False)
    for name, expected in manifest["files"].items():
        if Path(name).name != name:
            raise ArchiveError(f"the manifest names {name!r}, which is not a file of the archive")
        try:
            actual = _sha256(path / name, clock)
        except OSError as exc:
            raise ArchiveError(f"{name} cannot be read: {exc}") from exc
        if actual != expected["sha256"]:
            raise ArchiveError(f"{name} does not match its sha256 in the manifest: the archive was changed")
    return manifest


def _reserved_schemas(slug: str) -> set[str]:
    """Schema names of every other product: a restore never touches them, --force or not."""
    from onboarding.models import Product

    return {name for other in Product.objects.exclude(slug=slug).values_list("slug", flat=True)
            for name in (private_schema(other), published_schema(other))}


def _extract(tar_path: Path, slug: str, target: Path, *, force: bool) -> None:
    """Extract `slug/...` of the tar into `target` (beside it first, then renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".restore-{slug}-", dir=target.parent))
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                if member.name != slug and not member.name.startswith(f"{slug}/"):
                    raise ArchiveError(f"{tar_path.name} holds {member.name!r}, outside {slug}/")
            tar.extractall(scratch, members=members, filter="data")
        aside = None
        if target.exists() or target.is_symlink():
            if not force:
                raise ArchiveError(f"{target} exists (--force replaces it)")
            aside = target.with_name(f".replaced-{target.name}-{uuid.uuid4().hex[:8]}")
            os.rename(target, aside)
        os.rename(scratch / slug, target)
        if aside is not None:
            shutil.rmtree(aside) if aside.is_dir() and not aside.is_symlink() else aside.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _restore_schemas(archive_dir: Path, renames: dict[str, str], *, warehouse: dict, force: bool,
                     say: Callable[[str], None]) -> None:
    """pg_restore into a scratch database first (the dump proves whole before the warehouse is
    touched, and schemas are renamed there for a suffix), then into the warehouse in one transaction.
    Restored schemas belong to the warehouse admin: the product's roles went with its destroy."""
    clock = _Clock(float(settings.JOB_TIMEOUT_SECONDS), lambda: False)
    scratch_db = f"portal_restore_{uuid.uuid4().hex[:12]}"
    dump = archive_dir / SCHEMAS
    with _client_env(warehouse) as env, tempfile.TemporaryDirectory(prefix="portal-restore-") as work:
        with _connect(warehouse) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch_db)))
        try:
            _run([pg_binary("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                  f"--dbname={scratch_db}", str(dump)], env=env, clock=clock, on_line=say)
            if any(old != new for old, new in renames.items()):
                with _connect(warehouse, scratch_db) as conn:
                    for old, new in renames.items():
                        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(old),
                                                                                   sql.Identifier(new)))
                dump = Path(work) / SCHEMAS
                _run([pg_binary("pg_dump"), "--format=custom", "--no-password", "--strict-names",
                      *[f"--schema={name}" for name in renames.values()], f"--dbname={scratch_db}",
                      f"--file={dump}"], env=env, clock=clock, on_line=say)
            aside = {}
            with _connect(warehouse) as conn:
                existing = _existing_schemas(warehouse, list(renames.values()))
                if existing and not force:
                    raise ArchiveError(f"schemas {', '.join(existing)} exist (--force replaces them)")
                with conn.transaction():
                    for name in existing:
                        aside[name] = f"{name[:40]}_replaced_{uuid.uuid4().hex[:8]}"
                        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(name),
                                                                                   sql.Identifier(aside[name])))
            try:
                _run([pg_binary("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                      "--single-transaction", f"--dbname={warehouse['dbname']}", str(dump)],
                     env=env, clock=clock, on_line=say)
            except BaseException:
                with _connect(warehouse) as conn, conn.transaction():
                    for name, moved in aside.items():
                        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(moved),
                                                                                   sql.Identifier(name)))
                raise
            with _connect(warehouse) as conn:
                for moved in aside.values():
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(moved)))
        finally:
            with _connect(warehouse) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch_db)))


# Short enough that pub_<the longest slug>_<suffix> stays within PostgreSQL's 63-byte names.
SUFFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")


def restore_targets(slug: str, suffix: str) -> dict:
    """Where a restore puts each part: the original names, or each with `_<suffix>`."""
    end = f"_{suffix}" if suffix else ""
    return {"schemas": {name: f"{name}{end}" for name in (private_schema(slug), published_schema(slug))},
            "lake": Path(settings.LAKE_ROOT) / f"{slug}{end}",
            "pipeline": Path(settings.PIPELINES_ROOT) / f"{slug}{end}"}


def archive_restore(*, archive: Archive, warehouse: dict, suffix: str = "", force: bool = False,
                    provisioned: bool = False, say: Callable[[str], None] = lambda line: None) -> dict:
    """Bring an archive back: its schemas into the warehouse, its lake folder and pipeline repository
    into their roots, under their own names or with `_<suffix>`. Refuses (changing nothing) when the
    archive does not match its manifest, when a target exists and `force` is not given, when a target
    is another product's schema, or when the product is provisioned and no suffix keeps its live data
    apart."""
    slug = archive.product.slug
    if suffix and not SUFFIX_RE.fullmatch(suffix):
        raise ArchiveError("the suffix is 1 to 16 lowercase letters, digits and underscores, starting with a "
                           "letter or digit")
    if archive.deleted_at is not None:
        raise ArchiveError(f"archive #{archive.pk} was deleted on {archive.deleted_at:%Y-%m-%d} (retention)")
    if provisioned and not suffix:
        raise ArchiveError(f"{slug} is provisioned: restore beside its live data with --into-schema-suffix")
    manifest = _verify(archive)
    try:
        return _restore_checked(archive, manifest, warehouse=warehouse, suffix=suffix, force=force, say=say)
    except psycopg.Error as exc:
        raise ArchiveError(f"the warehouse: {str(exc).strip()}") from exc


def _restore_checked(archive: Archive, manifest: dict, *, warehouse: dict, suffix: str, force: bool,
                     say: Callable[[str], None]) -> dict:
    slug = archive.product.slug
    say(f"Archive #{archive.pk} of {slug} (job #{archive.job_id}, {archive.path}): files match the manifest.")
    targets = restore_targets(slug, suffix)
    renames = {old: new for old, new in targets["schemas"].items() if old in manifest.get("schemas", [])}
    clash = set(renames.values()) & _reserved_schemas(slug)
    if clash:
        raise ArchiveError(f"{', '.join(sorted(clash))} would be another product's schema: choose another suffix")
    present = {"lake": LAKE in manifest["files"], "pipeline": PIPELINE in manifest["files"]}
    existing = [str(targets[part]) for part, there in present.items() if there and targets[part].exists()]
    if renames:
        existing += _existing_schemas(warehouse, list(renames.values()))
    if existing and not force:
        raise ArchiveError(f"{', '.join(existing)} exist(s): --force replaces them")
    archive_dir = Path(archive.path)
    restored = {"schemas": [], "lake": None, "pipeline": None, "missing": manifest.get("missing", [])}
    try:
        if renames:
            _restore_schemas(archive_dir, renames, warehouse=warehouse, force=force, say=say)
            restored["schemas"] = list(renames.values())
        for part, name in (("lake", LAKE), ("pipeline", PIPELINE)):
            if present[part]:
                _extract(archive_dir / name, slug, targets[part], force=force)
                restored[part] = str(targets[part])
    except (ArchiveError, OSError, psycopg.Error, tarfile.TarError) as exc:
        done = [*restored["schemas"], *(restored[part] for part in ("lake", "pipeline") if restored[part])]
        raise ArchiveError(f"{exc} (restored before it stopped: {', '.join(done) or 'nothing'})") from exc
    return restored
