"""Benchmark: the time of one WID save with 10 and with 2,000 WIDs already in the repository.

    make bench            (or: .venv/bin/python bench/wid_save.py [--saves 60] [--sizes 10,2000])

A save is the whole service call a PATCH makes: repository lock, database transaction, version
check, Markdown rendering, one git commit, index update. Each size gets a fresh repository,
seeded with that many WIDs in one bulk commit and indexed with `rebuild_index`; both sizes run
in the same process, so the ratio compares like with like. Uses its own database (portal_bench).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")
os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench")
os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
os.environ.setdefault("LOG_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=60, help="timed saves per size (default 60)")
    parser.add_argument("--sizes", default="10,2000", help="WIDs in the repository before timing")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import subprocess

    subprocess.run([sys.executable, str(ROOT / "scripts" / "services.py")], check=True, stdout=subprocess.DEVNULL)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from onboarding import services, widfile
    from onboarding.models import Membership, Product, Team
    from onboarding.widrepo import Author, get_repository

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"email": "bench@example.com"})
    team, _ = Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench"})
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": "owner"})
    # Seed documents straight from the factory used by the demo, so they are realistic in size.
    from onboarding.management.commands.load_demo import _wid

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-wid-") as tmp:
        for size in sizes:
            settings.WID_REPO_PATH = Path(tmp) / f"repo-{size}"
            Product.objects.all().delete()  # the last size's index: this repository starts anew
            repo = get_repository()
            repo.head()  # made before the files are written: it is never made over files it does not hold
            for n in range(size):
                data = _wid(f"product-{n:05d}", f"Product {n}", f"domain-{n % 20:02d}", "bench-team", "internal",
                            False, "small", [], [{"name": "table_a", "kind": "table"}], f"Value of product {n}. " * 20)
                doc = services._document(data, status="draft", version=1, reviews=[])
                path = repo.path / doc.path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(widfile.render(doc))
            repo.commit_tree(author=Author("Bench", "bench@example.com"), message=f"Seed {size} WIDs")
            t0 = time.perf_counter()
            services.index_rebuild()
            rebuild = time.perf_counter() - t0
            assert Product.objects.count() == size

            targets = [f"product-{n:05d}" for n in range(0, size, max(1, size // 10))]
            timings = []
            for i in range(args.saves + 5):
                slug = targets[i % len(targets)]
                product = Product.objects.get(slug=slug)
                start = time.perf_counter()
                services.wid_update(user=user, slug=slug, data={
                    "version": product.version, "sections": {"architecture": f"Revision {i} of {slug}."}})
                elapsed = time.perf_counter() - start
                if i >= 5:  # the first few warm caches and connections
                    timings.append(elapsed)
            results[size] = timings
            print(f"{size:>5} WIDs: one save median {statistics.median(timings) * 1000:6.1f} ms, "
                  f"p90 {statistics.quantiles(timings, n=10)[-1] * 1000:6.1f} ms "
                  f"({len(timings)} saves; rebuild_index of {size} WIDs took {rebuild:.2f} s)")
    if len(sizes) == 2:
        small, large = (statistics.median(results[s]) for s in sizes)
        print(f"ratio {sizes[1]}/{sizes[0]}: {large / small:.2f} (goal: at most 1.5)")


if __name__ == "__main__":
    main()
