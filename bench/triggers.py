"""Benchmarks of choreography, against a real worker and beat, terraform, the provider and the warehouse.

    make bench-triggers     (or: .venv/bin/python bench/triggers.py [--rounds 5] [--rows 1])

A chain of 5 products, each `on_upstream` of the one before, the first `on_file`; and 5 twins without
triggers, each run alone. Each round drops one CSV file into the first product's raw/ and measures:
1. File dropped → run started: until the first product's run is claimed by the worker (its
   `started_at`), median over the rounds (goal: under 5 s; RUN_QUIET_SECONDS, default 2, is part of it:
   a run starts only once raw/ has been quiet that long).
2. Chain: until the fifth product's run finished, versus the sum of the 5 twins' runs alone, each
   from its request to its end, in the same round (goal: ratio at most 1.3); and the same from the
   first run's creation, which leaves out the quiet period. Every run reads the same files.
Uses databases of its own (portal_bench_triggers, portal_tfstate_bench_triggers) and var/bench-triggers-*.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from harness import BenchPortal

PORTAL = BenchPortal("triggers", prefix="t")  # sets the environment: before Django
RUN, ENV = PORTAL.run, PORTAL.env
LENGTH = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1, help="rows of each CSV file a run reads (a bigger batch, "
                                                             "a longer run: the quiet period weighs less)")
    args = parser.parse_args()
    with PORTAL.running(beat=True):
        bench(args)


def bench(args) -> None:
    from django.contrib.auth import get_user_model

    from onboarding import services as wids
    from onboarding.models import Membership, Product, Team
    from provisioning import runs
    from provisioning.models import Job, Run, TriggerState
    from tests.factories import wid_payload

    User = get_user_model()
    owner, _ = User.objects.get_or_create(username="bench-owner", defaults={"email": "o@example.com"})
    team, _ = Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench"})
    Membership.objects.get_or_create(team=team, user=owner, defaults={"role": "owner"})
    low = {"classification": "internal", "pii": False, "compute_tier": "small"}
    lake = Path(ENV["LAKE_ROOT"])

    def provision(slug: str, **spec) -> None:
        wids.wid_create(user=owner, data=wid_payload(slug=slug, team="bench-team", **low, **spec))
        if wids.wid_submit(user=owner, slug=slug).status != "approved":
            sys.exit(f"{slug} was not approved by policy")

    def settled() -> None:
        """Every job (applies, then the grants they bring) and every run finished."""
        while (Job.objects.filter(status__in=Job.ACTIVE).exists()
               or Run.objects.filter(status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).exists()):
            time.sleep(0.1)
        failed = Job.objects.exclude(status=Job.Status.SUCCEEDED).first()
        if failed is not None:
            sys.exit(f"{failed.product.slug}: job {failed.pk} {failed.status}: {failed.error}")

    def finished(product_slug: str, after: int) -> Run:
        while True:
            run = Run.objects.filter(product__slug=product_slug, pk__gt=after).order_by("pk").first()
            if run is not None and run.status in Run.FINISHED:
                if run.status != Run.Status.SUCCEEDED:
                    sys.exit(f"{product_slug}: run {run.pk} {run.status}: {run.error}")
                return run
            time.sleep(0.02)

    chain = [PORTAL.slug(f"chain{n}") for n in range(LENGTH)]
    twins = [PORTAL.slug(f"solo{n}") for n in range(LENGTH)]
    for n, slug in enumerate(chain):
        upstream = chain[n - 1:n]
        provision(slug, depends_on=upstream,
                  triggers={"on_file": n == 0, "on_upstream": upstream})
        settled()  # the next one depends on it
    for slug in twins:
        provision(slug)
    settled()
    while TriggerState.objects.filter(product__slug__in=chain).count() < LENGTH:
        time.sleep(0.1)  # the worker has read the chain's triggers

    def last_run_id() -> int:
        return Run.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    dropped_to_started, chain_times, hand_ons, alone_sums = [], [], [], []
    for n in range(args.rounds):
        after = last_run_id()
        csv = "id,amount\n" + "".join(f"{n}{row},{row * 10}\n" for row in range(args.rows))
        for slug in twins + chain[1:]:  # every run reads the same: one more file of the same size
            (lake / slug / "raw" / f"round-{n}.csv").write_text(csv)
        alone = 0.0
        for slug in twins:
            run = runs.run_start(user=owner, product=Product.objects.get(slug=slug))
            done = finished(slug, run.pk - 1)
            alone += (done.finished_at - done.created_at).total_seconds()
        settled()

        after = last_run_id()
        dropped = time.time()
        (lake / chain[0] / "raw" / f"round-{n}.csv").write_text(csv)
        first = finished(chain[0], after)
        last = finished(chain[-1], after)
        if [first.trigger, first.wave] != ["file", first.pk] or last.wave != first.pk:
            sys.exit(f"unexpected chain: first run {first.pk} {first.trigger} wave {first.wave}, last wave {last.wave}")
        settled()
        dropped_to_started.append(first.started_at.timestamp() - dropped)
        chain_times.append(last.finished_at.timestamp() - dropped)
        hand_ons.append(last.finished_at.timestamp() - first.created_at.timestamp())
        alone_sums.append(alone)
        print(f"  round {n + 1}: file → run started {dropped_to_started[-1]:.2f} s; chain of {LENGTH} "
              f"{chain_times[-1]:.2f} s ({hand_ons[-1]:.2f} s from the first run's creation) vs {alone:.2f} s alone")
    ratios = [c / a for c, a in zip(chain_times, alone_sums)]
    without_quiet = [h / a for h, a in zip(hand_ons, alone_sums)]
    print(f"file dropped → run started: median {statistics.median(dropped_to_started):.2f} s, max "
          f"{max(dropped_to_started):.2f} s over {len(dropped_to_started)} drops (goal: median under 5 s; "
          f"quiet period {os.environ.get('RUN_QUIET_SECONDS', '2')} s)")
    print(f"chain of {LENGTH}, file → last run finished: median {statistics.median(chain_times):.2f} s vs the "
          f"{LENGTH} runs alone {statistics.median(alone_sums):.2f} s: ratio {statistics.median(ratios):.2f} "
          f"(goal at most 1.3); from the first run's creation (without the quiet period) "
          f"{statistics.median(hand_ons):.2f} s: ratio {statistics.median(without_quiet):.2f}")


if __name__ == "__main__":
    main()
