"""Building and publishing the WID site: generate the sources, run MkDocs, publish.

A build is incremental when the site would have the same pages as the published one: only the
sources whose content changed are rewritten, and `mkdocs build --dirty` renders just those, in
place. Otherwise (a WID, team or domain came or went, the site's own code changed, nothing is
published yet) it is a full build into a fresh directory, published by swapping a symlink, so
readers never see a half-built site. A file lock makes builds on this machine take turns; the
worker's task also coalesces requests (services.py).
"""
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
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        fingerprints = {p.slug: generate.wid_fingerprint(data, p) for p in data.products}
        current = published()
        pages_now = sorted([*generate.index_page_paths(data), *(generate.wid_page(p) for p in data.products),
                            *generate.assets()])
        full = (full or current is None or manifest.get("version") != generate.VERSION
                or manifest.get("pages") != pages_now)
        if full:
            changed, histories = list(fingerprints), get_repository().histories("wids")
        else:
            old = manifest.get("fingerprints", {})
            changed, histories = [s for s, fp in fingerprints.items() if old.get(s) != fp], None
        src = root / "src"
        try:
            pages, everything = _sources(data, changed=changed, histories=histories)
            written = generate.write(src, pages)
            if full:
                _remove_stale(src, set(everything))
                out = root / "builds" / str(time.time_ns())
                _mkdocs(src, out, dirty=False)
                _publish(root, out)
                kind, rendered = "full", len(everything)
            elif written:
                _mkdocs(src, current, dirty=True)
                kind, rendered = "incremental", len(written)
            else:
                kind, rendered = "unchanged", 0
        except BaseException:
            manifest_path.unlink(missing_ok=True)  # the next build starts from scratch
            raise
        manifest_path.write_text(json.dumps(
            {"version": generate.VERSION, "pages": everything, "fingerprints": fingerprints}))
    result = BuildResult(kind, len(everything), rendered, time.monotonic() - start)
    logger.info("WID site: %s build, %d pages, %d rendered, %.2f s", *vars(result).values())
    return result


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
