"""Benchmark: a WID edit until it is live on the static site, with 1,000 WIDs, against a full build.

    make bench-site       (or: .venv/bin/python bench/site.py [--wids 1000] [--edits 15])

1. Seeds a WID repository with N realistic WIDs (one bulk commit), indexes it, and times a full
   build of the site (generate every page, MkDocs, publish) in this process.
2. Starts a real Celery worker on the site's queue (as `make run` does) and times, for each of
   `--edits` edits made through the service a PATCH calls, the wall time from the call until the
   published page holds the new text (so: commit, on_commit, broker, worker, incremental build).
3. A burst: 20 edits of different WIDs at once; how many builds the worker ran for them.
Uses a database of its own (portal_bench_site) and a temporary directory; cleans up after.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="bench-site-"))
RUN = uuid.uuid4().hex[:6]
ENV = {
    "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
    "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench_site"),
    "WID_REPO_PATH": str(TMP / "repo"),
    "WID_SITE_ROOT": str(TMP / "site"),
    "WID_SITE_QUEUE": f"portal-bench-site-{RUN}",
    "WID_SITE_AUTO_BUILD": "true",
    "PROVISION_ON_APPROVAL_TARGETS": "",
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wids", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=15)
    args = parser.parse_args()
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS portal_bench_site WITH (FORCE)")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "services.py")], check=True, stdout=subprocess.DEVNULL)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    log = TMP / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", ENV["WID_SITE_QUEUE"], "--concurrency", "1",
         "--loglevel", "INFO", "-n", f"bench-site-{RUN}@%h"],
        cwd=ROOT, env={**os.environ, "LOG_LEVEL": "INFO"}, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        bench(args, log)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        subprocess.run(["rm", "-rf", str(TMP)], check=False)


def seed(n: int):
    from django.contrib.auth import get_user_model

    from onboarding import services, widfile
    from onboarding.management.commands.load_demo import _wid
    from onboarding.models import Membership, Team
    from onboarding.widrepo import Author, get_repository

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"email": "bench@example.com"})
    team, _ = Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench"})
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": "owner"})
    repo = get_repository()
    repo.head()  # made before the files are written: it is never made over files it does not hold
    for i in range(n):
        depends = [f"product-{j:05d}" for j in (i // 3, i // 7) if j < i][:2]
        data = _wid(f"product-{i:05d}", f"Product {i}", f"domain-{i % 20:02d}", "bench-team", "internal", False,
                    "small", sorted(set(depends)), [{"name": "table_a", "kind": "table"}], f"Value of product {i}. " * 20)
        doc = services._document(data, status=["draft", "submitted", "approved"][i % 3], version=1, reviews=[])
        path = repo.path / doc.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(widfile.render(doc))
    repo.commit_tree(author=Author("Bench", "bench@example.com"), message=f"Seed {n} WIDs")
    services.index_rebuild()
    return user


def _live(slug: str, domain: str, text: str) -> bool:
    from docs_site import builder

    root = builder.published()
    try:
        return text in (root / domain / slug / "index.html").read_text()
    except (OSError, TypeError):
        return False


def bench(args, log: Path) -> None:
    from django.db import transaction

    from docs_site import builder
    from onboarding import services
    from onboarding.models import Product

    t0 = time.perf_counter()
    user = seed(args.wids)
    print(f"seeded {args.wids} WIDs in {time.perf_counter() - t0:.1f} s")
    full = []
    for _ in range(2):
        result = builder.build(full=True)
        full.append(result.seconds)
    print(f"full build of {result.pages} pages: {statistics.mean(full):.2f} s (runs: "
          + ", ".join(f"{s:.2f}" for s in full) + ")")

    latencies = []
    for i in range(args.edits + 2):
        slug = f"product-{(i * 37) % (args.wids // 3) * 3:05d}"  # every third WID is a draft, editable
        product = Product.objects.get(slug=slug)
        marker = f"Edit {i} of the benchmark {uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        with transaction.atomic():
            services.wid_update(user=user, slug=slug, data={"version": product.version,
                                                            "sections": {"architecture": marker}})
        while not _live(slug, product.domain, marker):
            if time.perf_counter() - start > 120:
                sys.exit(f"edit {i} not live after 120 s; worker log:\n{log.read_text()[-3000:]}")
            time.sleep(0.01)
        if i >= 2:  # the first two warm the worker's caches and connections
            latencies.append(time.perf_counter() - start)
    median, worst = statistics.median(latencies), max(latencies)
    p90 = statistics.quantiles(latencies, n=10)[-1]
    print(f"edit -> live on the site: median {median:.2f} s, p90 {p90:.2f} s, max {worst:.2f} s "
          f"({len(latencies)} edits; goal under 2 s)")
    print(f"ratio full build / edit-to-live median: {statistics.mean(full) / median:.1f}x faster")

    builds_before = log.read_text().count("WID site:")
    slugs = [f"product-{(170 + i * 11) % (args.wids // 3) * 3:05d}" for i in range(20)]
    markers = {}
    start = time.perf_counter()
    for slug in slugs:
        product = Product.objects.get(slug=slug)
        markers[slug] = (product.domain, f"Burst {uuid.uuid4().hex[:8]}")
        services.wid_update(user=user, slug=slug, data={"version": product.version,
                                                        "sections": {"architecture": markers[slug][1]}})
    while not all(_live(s, d, m) for s, (d, m) in markers.items()):
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    time.sleep(1)
    builds = log.read_text().count("WID site:") - builds_before
    print(f"burst: 20 edits in a row, all live after {elapsed:.2f} s, in {builds} build(s)")


if __name__ == "__main__":
    main()
