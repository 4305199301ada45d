"""Benchmarks of products that live on, against the real worker, terraform, provider and warehouse.

    make bench-access     (or: .venv/bin/python bench/access.py [--rounds 5])

1. Amendment to live: an approved product's amendment (compute tier small → medium) submitted and
   approved by policy, until its apply job has `succeeded` (the role's new limits in force), versus
   the same change by bare `terraform init && terraform apply -auto-approve` on a twin product's
   rendered directory, in the same run (goal: ratio at most 1.3).
2. Access approved to readable: an owner approves a person's access request; the time until that
   person's own login reads the product's published table (goal: median under 10 s, worker idle).
Uses databases of its own (portal_bench_access, portal_tfstate_bench_access) and var/bench-access-*.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from harness import BenchPortal

PORTAL = BenchPortal("access", prefix="a")  # sets the environment: before Django
RUN, ENV = PORTAL.run, PORTAL.env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    slugs: list[str] = []
    with PORTAL.running():
        bench(args, slugs)


def bench(args, slugs: list[str]) -> None:
    import psycopg
    from django.contrib.auth import get_user_model

    from onboarding import services as wids
    from onboarding.models import Membership, Product, Team
    from provisioning import access, services
    from provisioning.models import Job
    from provisioning.rendering import render
    from provisioning.terraform import Terraform
    from tests.factories import wid_payload

    User = get_user_model()
    owner, _ = User.objects.get_or_create(username="bench-owner", defaults={"email": "o@example.com"})
    reader, _ = User.objects.get_or_create(username="bench-reader", defaults={"email": "r@example.com"})
    team, _ = Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench"})
    Membership.objects.get_or_create(team=team, user=owner, defaults={"role": "owner"})
    low = {"classification": "internal", "pii": False, "compute_tier": "small"}

    def last_job(slug: str):
        return Job.objects.filter(product__slug=slug).order_by("-id").first()

    def wait_succeeded(slug: str, after: int, started: float) -> float:
        while True:
            job = last_job(slug)
            if job and job.pk > after and job.status in (*Job.FINISHED, Job.Status.PLANNED):
                if job.status != "succeeded":
                    sys.exit(f"{slug}: job {job.pk} {job.status}: {job.error}")
                return job.finished_at.timestamp() - started
            time.sleep(0.05)

    def provisioned(tag: str) -> str:
        slug = f"a{RUN}-{tag}"
        slugs.append(slug)
        wids.wid_create(user=owner, data=wid_payload(slug=slug, team="bench-team", **low,
                                                     outputs=[{"name": "facts", "kind": "table"}]))
        wids.wid_submit(user=owner, slug=slug)
        wait_succeeded(slug, 0, time.time())
        return slug

    def amendment_to_live(slug: str) -> float:
        product = Product.objects.get(slug=slug)
        wids.wid_update(user=owner, slug=slug, data={"version": product.version, "compute_tier": "medium"})
        after = last_job(slug).pk
        started = time.time()
        if wids.wid_submit(user=owner, slug=slug).status != "approved":
            sys.exit("the amendment was not approved by policy")
        took = wait_succeeded(slug, after, started)
        if os.environ.get("BENCH_DETAIL"):
            job = last_job(slug)
            marks = [("submit", started), ("job created", job.created_at.timestamp()),
                     ("job started", job.started_at.timestamp())]
            marks += [(line.text[:60], line.at.timestamp()) for line in job.lines.order_by("number")]
            marks.append(("finished", job.finished_at.timestamp()))
            for text, at in marks:
                print(f"  +{at - started:6.2f} s  {text}")
        return took

    def bare_apply(slug: str) -> float:
        """The same tier change by hand: render the medium tier, init, apply."""
        spec = services.product_spec(Product.objects.get(slug=slug))
        from dataclasses import replace

        workdir = render(replace(spec, compute_tier="medium"), Path(ENV["TERRAFORM_WORKDIR"]) / f"{slug}.bare")
        tf = Terraform(workdir, workspace=slug, extra_env={"LOCALPLATFORM_WAREHOUSE_DSN": services.warehouse_dsn()})
        started = time.perf_counter()
        for command in (["init", "-input=false", f"-backend-config=conn_str={services.state_conn_str()}"],
                        ["apply", "-auto-approve", "-input=false"]):
            subprocess.run([str(tf.toolchain.binary), *command], cwd=workdir, env=tf.env, check=True,
                           stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    provisioned("warmup1")
    provisioned("warmup2")
    portal, bare = [], []
    for n in range(args.rounds):
        twin, amended = provisioned(f"bare{n}"), provisioned(f"amend{n}")
        bare.append(bare_apply(twin))
        portal.append(amendment_to_live(amended))
    ratio = statistics.median(portal) / statistics.median(bare)
    print(f"amendment to live: median {statistics.median(portal):.2f} s (submit, policy approval, apply job) vs "
          f"bare init+apply of the same change {statistics.median(bare):.2f} s: ratio {ratio:.2f} (goal at most 1.3)")

    producer = provisioned("producer")
    creds = access.credentials(user=owner, product=Product.objects.get(slug=producer))
    with psycopg.connect(host=creds["host"], port=creds["port"], dbname=creds["database"], user=creds["user"],
                         password=creds["password"], autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{creds["published_schema"]}".facts (n int)')
        conn.execute(f'INSERT INTO "{creds["published_schema"]}".facts VALUES (1)')
    times = []
    for n in range(args.rounds):
        product = Product.objects.get(slug=producer)
        while Job.objects.filter(product=product, status__in=Job.ACTIVE).exists():
            time.sleep(0.1)  # the worker idle, as the goal says
        request = access.request_personal(user=reader, product=product, purpose=f"bench {n}",
                                          until=date.today() + timedelta(days=7))
        PORTAL.readers.append(request.role_name)
        started = time.perf_counter()
        access.decide(user=owner, request_id=request.pk, approve=True, comment="")
        while True:
            try:
                mine = access.credentials(user=reader, product=product)
                with psycopg.connect(host=mine["host"], port=mine["port"], dbname=mine["database"],
                                     user=mine["user"], password=mine["password"], connect_timeout=2) as conn:
                    conn.execute(f'SELECT n FROM "{mine["published_schema"]}".facts').fetchall()
                break
            except Exception:
                time.sleep(0.1)
        times.append(time.perf_counter() - started)
        access.revoke(user=owner, request_id=request.pk)
    print(f"access approved to readable: median {statistics.median(times):.2f} s, max {max(times):.2f} s over "
          f"{len(times)} requests (goal: median under 10 s)")


if __name__ == "__main__":
    main()
