"""A destroy that asks who reads, archives, and can be undone, for real: a real Celery worker, real
terraform and the local provider, pg_dump and pg_restore against the warehouse cluster.

One producer and one consumer that reads it, shared by the whole story: the producer's destroy is
refused while the consumer reads it (409 listing it), forced by the platform with a reason, archived
before Terraform deletes anything, and brought back by `restore_archive` (its row and its lake file);
the consumer is then destroyed with archive: false and leaves no archive.
"""
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from psycopg import sql

from onboarding.models import Product
from provisioning import selectors
from provisioning.models import Archive, Job, JobLogLine, Provisioning
from provisioning.rendering import private_schema, published_schema
from provisioning.services import warehouse_admin
from tests.factories import TeamFactory, member_of, platform_user, wid_payload
from tests.worker import wait_until

pytestmark = pytest.mark.e2e

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def provisioning_on(settings):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]


def _log(job_id) -> str:
    return "\n".join(JobLogLine.objects.filter(job_id=job_id).order_by("number").values_list("text", flat=True))


def _wait(job_id, log, *statuses, timeout=120) -> Job:
    job = wait_until(lambda: Job.objects.filter(pk=job_id, status__in=["succeeded", "failed", "cancelled",
                                                                       "planned"]).first(),
                     timeout=timeout, what=f"job {job_id}", log=log)
    assert job.status in statuses, _log(job_id)
    return job


def _idle(slug, log):
    wait_until(lambda: not Job.objects.filter(product__slug=slug, status__in=Job.ACTIVE).exists(), timeout=120,
               what=f"{slug}'s jobs to finish", log=log)


def _destroy(api, platform, slug, log, **options) -> Job:
    response = api(platform).post(f"/api/v1/products/{slug}/jobs/", {"action": "destroy", **options}, format="json")
    assert response.status_code == 202, response.json()
    job = _wait(response.json()["id"], log, "planned")
    assert api(platform).post(f"/api/v1/jobs/{job.pk}/confirm/").status_code == 202
    return _wait(job.pk, log, "succeeded")


def _admin():
    return psycopg.connect(**warehouse_admin(), autocommit=True, connect_timeout=5)


def _schemas(slug) -> set[str]:
    with _admin() as conn:
        return {n for (n,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                                           [[private_schema(slug), published_schema(slug)]])}


def test_a_read_product_is_destroyed_only_by_force_archived_first_and_restored(e2e, api, provisioning_on):
    producers, consumers = TeamFactory(), TeamFactory()
    alice, bob, priya = member_of(producers), member_of(consumers), platform_user()
    a, b = f"arc-a-{uuid.uuid4().hex[:6]}", f"arc-b-{uuid.uuid4().hex[:6]}"
    for user, team, slug, depends_on in ((alice, producers, a, []), (bob, consumers, b, [a])):
        body = wid_payload(slug=slug, team=team.slug, depends_on=depends_on, **LOW_RISK)
        assert api(user).post("/api/v1/products/", body, format="json").status_code == 201
        assert api(user).post(f"/api/v1/products/{slug}/submit/", format="json").json()["status"] == "approved"
    restored = []
    try:
        for slug in (a, b):
            _idle(slug, e2e["log"])
            assert Provisioning.objects.get(product__slug=slug).provisioned
        creds = api(alice).get(f"/api/v1/products/{a}/credentials/").json()
        with psycopg.connect(host=creds["host"], port=creds["port"], dbname=creds["database"], user=creds["user"],
                             password=creds["password"], autocommit=True) as conn:
            conn.execute(f'CREATE TABLE "{creds["schema"]}".orders (id int, total numeric)')
            conn.execute(f'INSERT INTO "{creds["schema"]}".orders VALUES (1, 9.50)')
        (Path(creds["lake_path"]) / "raw" / "orders.csv").write_text("id,total\n1,9.50\n")

        # Asked who reads: refused while b does; only the platform destroys; force needs a reason.
        assert api(alice).post(f"/api/v1/products/{a}/jobs/", {"action": "destroy"}, format="json").status_code == 403
        refused = api(priya).post(f"/api/v1/products/{a}/jobs/", {"action": "destroy"}, format="json")
        assert refused.status_code == 409 and refused.json()["dependants"] == [b]
        no_reason = api(priya).post(f"/api/v1/products/{a}/jobs/", {"action": "destroy", "force": True},
                                    format="json")
        assert no_reason.status_code == 400 and list(no_reason.json()["errors"]) == ["reason"]
        assert not Job.objects.filter(product__slug=a, action="destroy").exists()

        done = _destroy(api, priya, a, e2e["log"], force=True, reason="Superseded by orders-v2")
        body = api(bob).get(f"/api/v1/jobs/{done.pk}/").json()["destroy"]
        assert (body["force"], body["reason"], body["dependants"]) == (True, "Superseded by orders-v2", [b])
        archive = Archive.objects.get(product__slug=a)
        assert body["archived"]["path"] == archive.path
        assert Path(archive.path).parent.parent == Path(e2e["archive"])  # the worker's ARCHIVE_ROOT
        log = _log(done.pk)
        assert "reason: Superseded by orders-v2" in log
        assert log.index("Archived to") < log.index("Destroying...")
        assert _schemas(a) == set()
        wait_until(lambda: Product.objects.filter(slug=a, status="retired").exists(), timeout=60,
                   what=f"{a} retired", log=e2e["log"])
        summary = selectors.archive_summary(Product.objects.get(slug=a))
        assert (summary["dependants"], summary["archive"]["path"]) == ([b], archive.path)
        assert summary["archive"]["delete_after"] == archive.delete_after

        # Brought back: the row in its table, the file in its lake folder.
        restored.append(a)
        call_command("restore_archive", a)
        with _admin() as conn:
            assert conn.execute(f'SELECT id, total::text FROM "{private_schema(a)}".orders').fetchall() == [(1, "9.50")]
        assert (Path(settings.LAKE_ROOT) / a / "raw" / "orders.csv").read_text() == "id,total\n1,9.50\n"

        # b lost its grant by itself (a is retired); its destroy without an archive keeps nothing.
        _idle(b, e2e["log"])
        gone = _destroy(api, priya, b, e2e["log"], archive=False)
        assert api(priya).get(f"/api/v1/jobs/{gone.pk}/").json()["destroy"]["archived"] is None
        assert not Archive.objects.filter(product__slug=b).exists()
        assert not (Path(e2e["archive"]) / b).exists()
        assert _schemas(b) == set()
    finally:
        for slug in (b, a):
            if Provisioning.objects.filter(product__slug=slug, provisioned=True).exists():
                _idle(slug, e2e["log"])
                _destroy(api, priya, slug, e2e["log"], archive=False, force=True, reason="test clean-up")
        with _admin() as conn:
            for slug in restored:
                for name in (private_schema(slug), published_schema(slug)):
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        for slug in restored:
            for root in (settings.LAKE_ROOT, settings.PIPELINES_ROOT):
                shutil.rmtree(Path(root) / slug, ignore_errors=True)
