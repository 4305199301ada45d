"""Building and publishing the WID site: generate the sources, run MkDocs, publish.

A build is incremental when the site would have the same pages as the published one: only the
sources whose content changed are rewritten, and `mkdocs build --dirty` renders just those, into a
copy of the published directory. Otherwise (a WID, team or domain came or went, the site's own
code changed, nothing is published yet, the manifest is unreadable) it is a full build into a
fresh directory. Either way the result is published by swapping a symlink, so readers never see a
half-built site and a build that fails (a full disk) leaves the published one as it was. A file
lock makes builds on this machine take turns; the worker's task also coalesces requests
(services.py).
"""
import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from docs_site import generate
from onboarding.widrepo import get_repository

logger = logging.getLogger(__name__)
CONFIG = Path(__file__).with_name("mkdocs.yml")


@dataclass(frozen=True)
class BuildResult:
    kind: str  # full, incremental or unchanged
    pages: int
    rendered: int
    seconds: float


class SiteError(Exception):
    pass


def site_root() -> Path:
    return Path(settings.WID_SITE_ROOT)


def published() -> Path | None:
    """The directory the site is served from, or None before the first build."""
    current = site_root() / "current"
    return current.resolve() if current.is_dir() else None


@contextmanager
def _locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".build.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _mkdocs(src: Path, out: Path, *, dirty: bool) -> None:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    logging.getLogger("mkdocs").setLevel(logging.WARNING)
    # It warns on every --dirty build that navigation may be stale; ours is fixed and not per page.
    logging.getLogger("mkdocs.commands.build").setLevel(logging.ERROR)
    config = load_config(str(CONFIG), docs_dir=str(src), site_dir=str(out), site_url=settings.WID_SITE_URL or None)
    config.plugins.on_startup(command="build", dirty=dirty)
    try:
        build(config, dirty=dirty)
    finally:
        config.plugins.on_shutdown()


def _sources(data: generate.SiteData, *, changed, histories) -> tuple[dict, list[str]]:
    """(pages to write, every page the site has)."""
    index = generate.index_pages(data)
    assets = generate.assets()
    everything = sorted([*index, *(generate.wid_page(p) for p in data.products), *assets])
    return {**index, **generate.wid_pages(data, changed, histories), **assets}, everything


def build(*, full: bool = False) -> BuildResult:
    """Bring the published site in line with the WID repository and the portal's status."""
    start = time.monotonic()
    root = site_root()
    with _locked(root):
        data = generate.load()
        manifest_path = root / "manifest.json"
        manifest = _read_manifest(manifest_path)
        fingerprints = {p.slug: generate.wid_fingerprint(data, p) for p in data.products}
        current = published()
        pages_now = sorted([*generate.index_page_paths(data), *(generate.wid_page(p) for p in data.products),
                            *generate.assets()])
        full = (full or current is None or manifest.get("version") != generate.VERSION
                or manifest.get("pages") != pages_now)
        if full:
            changed, histories = list(fingerprints), get_repository().histories("wids")
        else:
            old = manifest["fingerprints"]
            changed, histories = [s for s, fp in fingerprints.items() if old.get(s) != fp], None
        src, out = root / "src", None
        try:
            pages, everything = _sources(data, changed=changed, histories=histories)
            written = generate.write(src, pages)
            if full or written:
                out = root / "builds" / str(time.time_ns())
                if full:
                    _remove_stale(src, set(everything))
                else:
                    _copy_published(current, out)
                _mkdocs(src, out, dirty=not full)
                _publish(root, out)
                kind, rendered = ("full", len(everything)) if full else ("incremental", len(written))
            else:
                kind, rendered = "unchanged", 0
            _write_atomically(manifest_path, json.dumps(
                {"version": generate.VERSION, "pages": everything, "fingerprints": fingerprints}))
        except BaseException as exc:
            manifest_path.unlink(missing_ok=True)  # the next build starts from scratch
            if out is not None and published() != out:
                _discard(out)
            if _disk_full(exc):
                raise SiteError(f"the disk under the site ({root}) is full: {_disk_full(exc)}; the published "
                                "site is unchanged, and the next build after space is freed rebuilds it whole"
                                ) from exc
            raise
    result = BuildResult(kind, len(everything), rendered, time.monotonic() - start)
    logger.info("WID site: %s build, %d pages, %d rendered, %.2f s", *vars(result).values())
    return result


def _read_manifest(path: Path) -> dict:
    """The last build's manifest, or {} (a full build) when it is missing, truncated or not ours."""
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("WID site: the manifest %s is unreadable (%s); building in full", path, exc)
        return {}
    valid = (isinstance(manifest, dict) and isinstance(manifest.get("pages"), list)
             and isinstance(manifest.get("fingerprints"), dict))
    if not valid:
        logger.warning("WID site: the manifest %s is not a build manifest; building in full", path)
    return manifest if valid else {}


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_published(current: Path, out: Path) -> None:
    """A copy to build into: pages keep their times (what `--dirty` goes by), the published ones
    are never written."""
    shutil.copytree(current, out, symlinks=True)
    cache = Path(f"{current}.search.json")
    if cache.exists():
        shutil.copy2(cache, f"{out}.search.json")


def _discard(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    Path(f"{out}.search.json").unlink(missing_ok=True)


def _disk_full(exc: BaseException) -> str:
    """The system's words when `exc` (or what caused it) is a write refused for want of space."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return exc.strerror or os.strerror(exc.errno)
        exc = exc.__cause__ or exc.__context__
    return ""


def _remove_stale(src: Path, keep: set[str]) -> None:
    for path in sorted(src.rglob("*"), reverse=True):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and rel not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _publish(root: Path, out: Path) -> None:
    link, tmp = root / "current", root / f".current-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(out.relative_to(root))
    os.replace(tmp, link)
    # Keep the previous build too: a reader may be half-way through fetching its pages.
    builds = sorted((p for p in out.parent.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    for old in builds[:-2]:
        shutil.rmtree(old, ignore_errors=True)
        Path(f"{old}.search.json").unlink(missing_ok=True)


def export(output: Path) -> BuildResult:
    """A complete copy of the site in `output`, to host anywhere; the served site is untouched."""
    start = time.monotonic()
    output = Path(output).resolve()
    if output.exists() and any(output.iterdir()) and not (output / "sitemap.xml").exists():
        raise SiteError(f"{output} is not empty and not a WID site: choose an empty or new directory.")
    data = generate.load()
    with tempfile.TemporaryDirectory(prefix="wid-site-") as tmp:
        pages, everything = _sources(data, changed=[p.slug for p in data.products],
                                     histories=get_repository().histories("wids"))
        generate.write(Path(tmp), pages)
        _mkdocs(Path(tmp), output, dirty=False)
    Path(f"{output}.search.json").unlink(missing_ok=True)
    return BuildResult("full", len(everything), len(everything), time.monotonic() - start)
