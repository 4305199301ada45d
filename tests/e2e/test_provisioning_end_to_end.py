"""Approval to provisioned infrastructure: a real Celery worker runs real terraform with the local
provider against the warehouse cluster, with state in PostgreSQL."""
import time
import uuid

import psycopg
import pytest
from django.conf import settings

from onboarding.models import Product
from provisioning.models import CredentialRead, Job, JobLogLine, Provisioning
from tests.worker import wait_until
from tests.factories import TeamFactory, member_of, platform_user, wid_payload

pytestmark = pytest.mark.e2e

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def provisioning_on(settings):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]


def _finished(job_id):
    job = Job.objects.get(pk=job_id)
    return job if job.status in ("succeeded", "failed", "cancelled", "planned") else None


def _wait_job(job_id, log, timeout=120):
    return wait_until(lambda: _finished(job_id), timeout=timeout, what=f"job {job_id} to finish", log=log)


def _connect(credentials):
    return psycopg.connect(host=credentials["host"], port=credentials["port"], dbname=credentials["database"],
                           user=credentials["user"], password=credentials["password"], autocommit=True)


def _approve_low_risk(api, user, team, slug):
    assert api(user).post("/api/v1/products/", wid_payload(slug=slug, team=team.slug, **LOW_RISK),
                          format="json").status_code == 201
    response = api(user).post(f"/api/v1/products/{slug}/submit/", format="json")
    assert response.json()["status"] == "approved"
    return Job.objects.get(product__slug=slug)


def _destroy(api, platform, slug, log):
    response = api(platform).post(f"/api/v1/products/{slug}/jobs/", {"action": "destroy"}, format="json")
    assert response.status_code == 202, response.json()
    job = _wait_job(response.json()["id"], log)
    assert job.status == "planned"  # a destroy always waits for a person
    assert api(platform).post(f"/api/v1/jobs/{job.pk}/confirm/").status_code == 202
    return _wait_job(job.pk, log)


def test_an_approved_product_is_provisioned_isolated_and_decommissioned(e2e, api, provisioning_on):
    team, other_team = TeamFactory(), TeamFactory()
    alice, bob = member_of(team), member_of(other_team)
    priya = platform_user()
    a, b = f"prov-a-{uuid.uuid4().hex[:6]}", f"prov-b-{uuid.uuid4().hex[:6]}"

    job_a = _approve_low_risk(api, alice, team, a)
    job_b = _approve_low_risk(api, bob, other_team, b)  # both provision in parallel on two worker processes
    job_a, job_b = _wait_job(job_a.pk, e2e["log"]), _wait_job(job_b.pk, e2e["log"])
    try:
        for job in (job_a, job_b):
            assert job.status == "succeeded", JobLogLine.objects.filter(job=job).values_list("text", flat=True)
            assert job.plan_summary == {"add": 3, "change": 0, "destroy": 0}
            assert job.requested_by is None and job.reason == "approved by policy"

        # The live log, followed from an offset like the job page does.
        first = api(alice).get(f"/api/v1/jobs/{job_a.pk}/log/?offset=0").json()
        texts = [line["text"] for line in first["lines"]]
        assert first["finished"] and first["status"] == "succeeded"
        assert any("Apply complete! Resources: 3 added" in t for t in texts)
        rest = api(alice).get(f"/api/v1/jobs/{job_a.pk}/log/?offset={first['next_offset']}").json()
        assert rest["lines"] == []

        # Credentials: the team and the platform, audited; nobody else, and nowhere else.
        creds_a = api(alice).get(f"/api/v1/products/{a}/credentials/").json()
        creds_b = api(bob).get(f"/api/v1/products/{b}/credentials/").json()
        assert api(bob).get(f"/api/v1/products/{a}/credentials/").status_code == 403
        # The platform outside the team: only a break-glass read, with a reason, recorded and notified.
        refused = api(priya).get(f"/api/v1/products/{a}/credentials/")
        assert refused.status_code == 400 and "reason" in refused.json()["errors"]
        assert api(priya).get(f"/api/v1/products/{a}/credentials/?reason=incident+42").status_code == 200
        assert CredentialRead.objects.filter(product__slug=a).count() == 2
        glass = CredentialRead.objects.get(product__slug=a, user=priya)
        assert (glass.kind, glass.reason) == ("break_glass", "incident 42")
        password = creds_a["password"]
        assert password and len(password) >= 16
        everywhere = [
            api(alice).get(f"/api/v1/jobs/{job_a.pk}/").content.decode(),
            api(alice).get(f"/api/v1/products/{a}/jobs/").content.decode(),
            api(alice).get(f"/api/v1/products/{a}/").content.decode(),
            " ".join(JobLogLine.objects.values_list("text", flat=True)),
            str(Provisioning.objects.get(product__slug=a).outputs),
        ]
        assert not any(password in text for text in everywhere)
        assert Job.objects.get(pk=job_a.pk).outputs["storage_password"] == "(sensitive)"

        # Isolation: A works in its own schema and cannot touch B's.
        with _connect(creds_b) as conn_b:
            conn_b.execute(f'CREATE TABLE "{creds_b["schema"]}".facts (id int)')
        with _connect(creds_a) as conn_a:
            conn_a.execute(f'CREATE TABLE "{creds_a["schema"]}".facts (id int)')
            conn_a.execute(f'INSERT INTO "{creds_a["schema"]}".facts VALUES (1)')
            for statement in (f'CREATE TABLE "{creds_b["schema"]}".intruder (id int)',
                              f'INSERT INTO "{creds_b["schema"]}".facts VALUES (1)',
                              f'DROP TABLE "{creds_b["schema"]}".facts'):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn_a.execute(statement)
        with pytest.raises(psycopg.OperationalError):
            _connect({**creds_a, "password": "wrong"})

        # Applying again changes nothing.
        again = api(priya).post(f"/api/v1/products/{a}/jobs/", {"action": "apply"}, format="json").json()
        again = _wait_job(again["id"], e2e["log"])
        assert again.status == "succeeded" and again.plan_summary == {"add": 0, "change": 0, "destroy": 0}
    finally:
        for slug in (a, b):
            if Provisioning.objects.filter(product__slug=slug, provisioned=True).exists():
                _destroy(api, priya, slug, e2e["log"])

    destroyed = Job.objects.filter(product__slug=a, action="destroy").latest("created_at")
    assert destroyed.status == "succeeded"
    assert Product.objects.get(slug=a).status == "retired"
    assert Provisioning.objects.get(product__slug=a).retired
    with pytest.raises(psycopg.OperationalError):
        _connect(creds_a)  # the role is gone
    assert not (settings.PIPELINES_ROOT / a).exists()


def test_drift_is_flagged_and_an_apply_confirmed_by_the_platform_repairs_it(e2e, api, provisioning_on):
    from provisioning import services

    team = TeamFactory()
    alice = member_of(team)
    priya = platform_user()
    slug = f"drift-{uuid.uuid4().hex[:6]}"
    job = _wait_job(_approve_low_risk(api, alice, team, slug).pk, e2e["log"])
    assert job.status == "succeeded"
    product = Product.objects.get(slug=slug)
    try:
        assert services.drift_check(product) is False
        role = job.outputs["storage_role"]
        with psycopg.connect(services.warehouse_dsn(), autocommit=True) as admin:
            admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT 99')  # changed by hand

        assert services.drift_check(product) is True
        state = api(alice).get(f"/api/v1/products/{slug}/provisioning/").json()
        assert state["drifted"] is True and state["drift_details"]

        repair = api(priya).post(f"/api/v1/products/{slug}/jobs/", {"action": "apply"}, format="json").json()
        repair = _wait_job(repair["id"], e2e["log"])
        assert repair.status == "planned"  # it changes an existing resource: a person confirms
        assert repair.plan_summary["change"] >= 1
        assert api(alice).post(f"/api/v1/jobs/{repair.pk}/confirm/").status_code == 403
        assert api(priya).post(f"/api/v1/jobs/{repair.pk}/confirm/").status_code == 202
        assert _wait_job(repair.pk, e2e["log"]).status == "succeeded"

        with psycopg.connect(services.warehouse_dsn(), autocommit=True) as admin:
            limit = admin.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", [role]).fetchone()[0]
        assert limit == 5
        assert services.drift_check(product) is False
        assert api(alice).get(f"/api/v1/products/{slug}/provisioning/").json()["drifted"] is False
    finally:
        _destroy(api, priya, slug, e2e["log"])


def _create_workspace(product, workdir):
    """The product's Terraform workspace, made beforehand with the portal's own adapter."""
    from provisioning import services, terraform
    from provisioning.rendering import render

    tf = terraform.Terraform(render(services.product_spec(product), workdir), workspace=product.slug,
                             extra_env={"LOCALPLATFORM_WAREHOUSE_DSN": services.warehouse_dsn()})
    tf.init({"conn_str": services.state_conn_str()})
    tf.new_workspace()


def test_cancelling_a_running_job_stops_terraform_and_a_retry_completes_the_work(e2e, api, provisioning_on,
                                                                                  tmp_path):
    team = TeamFactory()
    alice = member_of(team)
    priya = platform_user()
    slug = f"cancel-{uuid.uuid4().hex[:6]}"
    payload = wid_payload(slug=slug, team=team.slug, **LOW_RISK)
    assert api(alice).post("/api/v1/products/", payload, format="json").status_code == 201
    _create_workspace(Product.objects.get(slug=slug), tmp_path / "tf")
    # Terraform's pg backend takes advisory lock -1 with an existing workspace's own for every
    # state lock. Held here, the job waits inside terraform (up to TERRAFORM_LOCK_TIMEOUT) instead
    # of finishing in a second or two, before the test could cancel it.
    with psycopg.connect(settings.TF_STATE_DATABASE_URL, autocommit=True) as state_db:
        state_db.execute("SELECT pg_advisory_lock(-1)")
        try:
            assert api(alice).post(f"/api/v1/products/{slug}/submit/", format="json").json()["status"] == "approved"
            job = Job.objects.get(product__slug=slug)
            wait_until(lambda: Job.objects.get(pk=job.pk).step in ("plan", "apply"), timeout=60,
                       what="the job to reach terraform", log=e2e["log"])
            time.sleep(1)
            waiting = Job.objects.get(pk=job.pk)
            assert waiting.is_active, "\n".join(JobLogLine.objects.filter(job=job).values_list("text", flat=True))

            response = api(priya).post(f"/api/v1/jobs/{job.pk}/cancel/")
        finally:
            state_db.execute("SELECT pg_advisory_unlock(-1)")

    assert response.status_code == 200
    cancelled = _wait_job(job.pk, e2e["log"])
    assert cancelled.status == "cancelled"
    assert "Cancel requested by" in " ".join(JobLogLine.objects.filter(job=cancelled).values_list("text", flat=True))
    retry = api(priya).post(f"/api/v1/jobs/{job.pk}/retry/").json()
    retried = _wait_job(retry["id"], e2e["log"])
    try:
        assert retried.status == "succeeded"
        assert retried.retry_of_id == job.pk
    finally:
        _destroy(api, priya, slug, e2e["log"])


def _commit_pipeline_change(repo, code):
    import subprocess

    (repo / "pipeline.py").write_text(code)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Team", "-c", "user.email=team@example.com",
                    "commit", "-qam", "Change the pipeline"], check=True)


def _wait_run(api, user, run_id, log, timeout=60):
    from provisioning.models import Run

    return wait_until(lambda: (r := Run.objects.get(pk=run_id)).status in ("succeeded", "failed") and r,
                      timeout=timeout, what=f"run {run_id}", log=log)


def test_pipeline_runs_use_the_products_own_credentials_and_quota(e2e, api, provisioning_on):
    team, other_team = TeamFactory(), TeamFactory()
    alice, bob = member_of(team), member_of(other_team)
    priya = platform_user()
    a, b = f"run-a-{uuid.uuid4().hex[:6]}", f"run-b-{uuid.uuid4().hex[:6]}"
    jobs = [_approve_low_risk(api, alice, team, a), _approve_low_risk(api, bob, other_team, b)]
    assert all(_wait_job(j.pk, e2e["log"]).status == "succeeded" for j in jobs)
    try:
        outputs = Provisioning.objects.get(product__slug=a).outputs
        lake, repo = settings.LAKE_ROOT / a, settings.PIPELINES_ROOT / a
        (lake / "raw" / "customers.csv").write_text("Customer Id,Name\n1, Ada \n2,Grace\n")

        assert api(bob).post(f"/api/v1/products/{a}/runs/").status_code == 403
        response = api(alice).post(f"/api/v1/products/{a}/runs/")
        assert response.status_code == 202
        run = _wait_run(api, alice, response.json()["id"], e2e["log"])
        log = api(alice).get(f"/api/v1/runs/{run.pk}/log/?offset=0").json()
        assert run.status == "succeeded", log
        assert any("customers.csv: 2 rows" in line["text"] for line in log["lines"])
        assert (lake / "curated" / "customers.csv").read_text().startswith("customer_id,name")
        creds = api(alice).get(f"/api/v1/products/{a}/credentials/").json()
        with _connect(creds) as conn:  # written by the pipeline, as the product's own role
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                                 [creds["schema"], "curated_records"]).fetchone()[0]
        assert owner == creds["user"] == outputs["storage_role"]
        assert creds["password"] not in " ".join(line["text"] for line in log["lines"])

        # A flood of A's runs (concurrency 1 for the small tier) does not hold up B's run.
        original = (repo / "pipeline.py").read_text()
        _commit_pipeline_change(repo, "import time\ntime.sleep(3)\nprint('slow run done')\n")
        flood = [api(alice).post(f"/api/v1/products/{a}/runs/").json()["id"] for _ in range(4)]
        b_run = api(bob).post(f"/api/v1/products/{b}/runs/").json()["id"]
        b_done = _wait_run(api, bob, b_run, e2e["log"])
        assert b_done.status == "succeeded"
        assert (b_done.started_at - b_done.created_at).total_seconds() < 3  # not behind A's 4 x 3 s
        done = [_wait_run(api, alice, run_id, e2e["log"], timeout=90) for run_id in flood]
        assert all(r.status == "succeeded" for r in done)
        spans = sorted((r.started_at, r.finished_at) for r in done)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:]))  # one at a time

        # Memory quota: a run that wants more than the tier's memory fails.
        _commit_pipeline_change(repo, "block = bytearray(2 * 1024 ** 3)\n")
        greedy = _wait_run(api, alice, api(alice).post(f"/api/v1/products/{a}/runs/").json()["id"], e2e["log"])
        assert greedy.status == "failed" and greedy.exit_code != 0
        _commit_pipeline_change(repo, original)
    finally:
        for slug in (a, b):
            _destroy(api, priya, slug, e2e["log"])
