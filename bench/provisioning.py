"""Benchmarks of provisioning, all against the real worker, terraform, provider and warehouse.

    make bench-provisioning     (or: .venv/bin/python bench/provisioning.py [--existing 200] [--burst 20])

1. Portal overhead: approval-to-`succeeded` wall time of one product (a Celery worker picks the job
   up, renders, init, workspace, plan, apply, outputs) versus bare `terraform init && terraform
   workspace new && terraform apply` of the same rendered directory, in the same run.
2. Scale: the same approval-to-`succeeded` time when 0 and when N (200) products already exist
   (index rows, jobs with logs, Terraform workspaces in the state database).
3. Throughput: a burst of 20 products approved at once with 2 worker processes: total wall time
   and the slowest product's approval-to-`succeeded` time.
Uses databases of its own (portal_bench_provisioning, portal_tfstate_bench_provisioning) and
var/bench-provisioning-*; cleans up after (bench/harness.py).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import BenchPortal

# Sets the environment: before Django.
PORTAL = BenchPortal("provisioning", prefix="b", database_url=os.environ.get("BENCH_DATABASE_URL"))
RUN, ENV = PORTAL.run, PORTAL.env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, default=200)
    parser.add_argument("--burst", type=int, default=20)
    args = parser.parse_args()
    slugs: list[str] = []
    with PORTAL.running():
        bench(args, slugs)


def bench(args, slugs: list[str]) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from onboarding import services as wids
    from onboarding.models import Membership, Team
    from provisioning import services
    from provisioning.models import Job
    from provisioning.rendering import render
    from provisioning.terraform import Terraform

    User = get_user_model()
    owner, _ = User.objects.get_or_create(username="bench-owner", defaults={"email": "o@example.com"})
    judge, _ = User.objects.get_or_create(username="bench-platform", defaults={"email": "p@example.com"})
    judge.groups.add(Group.objects.get_or_create(name="platform")[0])
    team, _ = Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench"})
    Membership.objects.get_or_create(team=team, user=owner, defaults={"role": "owner"})
    from tests.factories import wid_payload

    def submitted(tag: str) -> str:
        slug = f"b{RUN}-{tag}"
        slugs.append(slug)
        wids.wid_create(user=owner, data=wid_payload(slug=slug, team="bench-team", classification="confidential"))
        wids.wid_submit(user=owner, slug=slug)
        return slug

    def wait_succeeded(slug: str, started: float) -> float:
        while True:
            job = Job.objects.filter(product__slug=slug).order_by("-id").first()
            if job and job.status in Job.FINISHED:
                if job.status != "succeeded":
                    sys.exit(f"{slug}: job {job.pk} {job.status}: {job.error}")
                return job.finished_at.timestamp() - started
            time.sleep(0.05)

    def approval_to_succeeded(tag: str) -> float:
        slug = submitted(tag)
        started = time.time()
        wids.wid_approve(user=judge, slug=slug, comment="bench")
        return wait_succeeded(slug, started)

    def bare_terraform(tag: str) -> float:
        slug = submitted(tag)
        from onboarding.selectors import product_get

        workdir = render(services.product_spec(product_get(slug)), Path(ENV["TERRAFORM_WORKDIR"]) / f"{slug}.bare")
        tf = Terraform(workdir, workspace=slug, extra_env={"LOCALPLATFORM_WAREHOUSE_DSN": services.warehouse_dsn()})
        env = {k: v for k, v in tf.env.items() if k != "TF_WORKSPACE"}
        started = time.perf_counter()
        for command in (["init", "-input=false", f"-backend-config=conn_str={services.state_conn_str()}"],
                        ["workspace", "new", slug],
                        ["apply", "-auto-approve", "-input=false"]):
            subprocess.run([str(tf.toolchain.binary), *command], cwd=workdir, env=env, check=True,
                           stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    approval_to_succeeded("warmup1")  # each of the worker's two processes once
    approval_to_succeeded("warmup2")
    portal, bare = [], []
    for n in range(5):
        bare.append(bare_terraform(f"bare{n}"))
        portal.append(approval_to_succeeded(f"one{n}"))
    print(f"overhead: approval-to-succeeded median {statistics.median(portal):.2f} s "
          f"vs bare init+workspace+apply {statistics.median(bare):.2f} s: "
          f"ratio {statistics.median(portal) / statistics.median(bare):.2f} (goal at most 1.3)")

    seed_existing(args.existing, owner)
    many = [approval_to_succeeded(f"many{n}") for n in range(5)]
    print(f"scale: with 0 products {statistics.median(portal):.2f} s, with {args.existing} more "
          f"{statistics.median(many):.2f} s: ratio {statistics.median(many) / statistics.median(portal):.2f} "
          f"(goal at most 1.1)")

    burst = [submitted(f"burst{n}") for n in range(args.burst)]
    started = time.time()
    approved_at = {}
    for slug in burst:
        approved_at[slug] = time.time()
        wids.wid_approve(user=judge, slug=slug, comment="bench")
    times = [wait_succeeded(slug, approved_at[slug]) for slug in burst]
    total = max(approved_at[s] + t for s, t in zip(burst, times)) - started
    print(f"throughput: {args.burst} approved at once, 2 worker processes: all provisioned in {total:.1f} s, "
          f"slowest {max(times):.1f} s, median {statistics.median(times):.1f} s")


def seed_existing(count: int, owner) -> None:
    """N more products as the portal would hold them: index rows, finished jobs with logs, and a
    workspace each in the state database (created by terraform itself)."""
    from onboarding import services as wids, widfile
    from onboarding.widrepo import Author, get_repository
    from provisioning.models import Job, JobLogLine, Provisioning
    from provisioning.toolchain import ensure_toolchain
    from tests.factories import wid_payload
    from onboarding.models import Product
    from provisioning import services

    repo = get_repository()
    repo.head()  # made before the files are written: it is never made over files it does not hold
    for n in range(count):
        data = wid_payload(slug=f"e{RUN}-{n:04d}", team="bench-team")
        doc = wids._document(wids.clean_wid_input(data), status="approved", version=3, reviews=[])
        path = repo.path / doc.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(widfile.render(doc))
    repo.commit_tree(author=Author("Bench", "bench@example.com"), message=f"Seed {count}")
    wids.index_rebuild()
    existing = list(Product.objects.filter(slug__startswith=f"e{RUN}-"))
    jobs = Job.objects.bulk_create([Job(product=p, action="apply", status="succeeded", log_lines=30) for p in existing])
    JobLogLine.objects.bulk_create([JobLogLine(job=j, number=i, text=f"line {i}") for j in jobs for i in range(1, 31)])
    Provisioning.objects.bulk_create([Provisioning(product=p, provisioned=True, last_job=j)
                                      for p, j in zip(existing, jobs)])
    toolchain = ensure_toolchain()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    (workdir / "main.tf").write_text('terraform {\n  backend "pg" {}\n}\n')
    subprocess.run([str(toolchain.binary), "init", "-input=false",
                    f"-backend-config=conn_str={services.state_conn_str()}"],
                   cwd=workdir, env=toolchain.env, check=True, stdout=subprocess.DEVNULL)
    for p in existing:
        subprocess.run([str(toolchain.binary), "workspace", "new", p.slug], cwd=workdir, env=toolchain.env,
                       check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
