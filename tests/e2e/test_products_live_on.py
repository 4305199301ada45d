"""Products live on, for real: a real Celery worker, real terraform, the local provider, the warehouse.

- an amendment of a provisioned product (tier small → medium) is applied by itself once approved, with
  the data and the credentials kept, while the draft never reaches the infrastructure;
- `depends_on` becomes a grant: pending while the producer is not provisioned, granted by itself when
  it is, read-only on the published schema (tables created later included), revoked by an amendment;
- a person asks for access, an owner approves, the person reads with a login of their own; the access
  report and the producer's review log in git hold it all; rotation refuses the old password.
"""
import time
import uuid
from datetime import date, timedelta

import psycopg
import pytest
from django.conf import settings
from psycopg.conninfo import make_conninfo

from onboarding import selectors
from onboarding.models import Product
from onboarding.widfile import parse
from onboarding.widrepo import get_repository
from provisioning.models import AccessEvent, Job, JobLogLine, Provisioning
from tests.factories import TeamFactory, member_of, platform_user, wid_payload
from tests.worker import wait_until

pytestmark = pytest.mark.e2e

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def provisioning_on(settings):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]


def _finished(job_id):
    job = Job.objects.get(pk=job_id)
    return job if job.status in ("succeeded", "failed", "cancelled", "planned") else None


def _wait_job(job_id, log, timeout=120):
    job = wait_until(lambda: _finished(job_id), timeout=timeout, what=f"job {job_id} to finish", log=log)
    assert job.status == "succeeded", list(JobLogLine.objects.filter(job=job).values_list("text", flat=True))
    return job


def _next_job(slug, after: int, log, timeout=120):
    job = wait_until(lambda: Job.objects.filter(product__slug=slug, pk__gt=after).order_by("pk").first(),
                     timeout=timeout, what=f"a new job of {slug}", log=log)
    return _wait_job(job.pk, log, timeout)


def _last_job_id(slug) -> int:
    job = Job.objects.filter(product__slug=slug).order_by("-pk").first()
    return job.pk if job else 0


def _connect(credentials):
    return psycopg.connect(host=credentials["host"], port=credentials["port"], dbname=credentials["database"],
                           user=credentials["user"], password=credentials["password"], autocommit=True,
                           connect_timeout=5)


def _admin():
    password = settings.WAREHOUSE_ADMIN_PASSWORD_FILE.read_text().strip()
    return psycopg.connect(make_conninfo(host="127.0.0.1", port=settings.WAREHOUSE_PORT,
                                         dbname=settings.WAREHOUSE_DATABASE, user="warehouse_admin",
                                         password=password), autocommit=True)


def _create(api, user, team, slug, **overrides):
    response = api(user).post("/api/v1/products/", wid_payload(slug=slug, team=team.slug, **{**LOW_RISK, **overrides}),
                              format="json")
    assert response.status_code == 201, response.json()


def _submit(api, user, slug):
    return api(user).post(f"/api/v1/products/{slug}/submit/", format="json").json()


def _provision_reader_pair(api, log, *, producer, consumer, person, purpose):
    """Provision `producer` (A), then `consumer` (B, whose WID depends on A), each approved by policy, and
    give `person` approved access to A; the users are (user, team) pairs, A's user owns its team."""
    (alice, team), (bob, other), a, b = producer[1:], consumer[1:], producer[0], consumer[0]
    assert _submit(api, alice, a)["status"] == "approved"
    _wait_job(Job.objects.get(product__slug=a).pk, log)
    assert _submit(api, bob, b)["status"] == "approved"
    _wait_job(Job.objects.get(product__slug=b).pk, log)
    request = api(person).post(f"/api/v1/products/{a}/access-requests/",
                               {"purpose": purpose, "until": str(date.today() + timedelta(days=7))},
                               format="json").json()
    last = _last_job_id(a)
    assert api(alice).post(f"/api/v1/access-requests/{request['id']}/approve/", format="json").status_code == 200
    _next_job(a, last, log)
    return request


def _destroy_all(api, platform, slugs, log):
    for slug in slugs:
        if not Provisioning.objects.filter(product__slug=slug, provisioned=True).exists():
            continue
        wait_until(lambda: not Job.objects.filter(product__slug=slug, status__in=["queued", "running", "applying"])
                   .exists(), timeout=120, what=f"{slug} idle", log=log)
        Job.objects.filter(product__slug=slug, status="planned").update(status="cancelled")
        response = api(platform).post(f"/api/v1/products/{slug}/jobs/", {"action": "destroy"}, format="json")
        assert response.status_code == 202, response.json()
        job = wait_until(lambda: _finished(response.json()["id"]), timeout=120, what="destroy plan", log=log)
        api(platform).post(f"/api/v1/jobs/{job.pk}/confirm/")
        wait_until(lambda: _finished(job.pk) and _finished(job.pk).status != "planned", timeout=120,
                   what="destroy", log=log)
        # The worker then retires the WID (a git commit): done before the next test shares the repository.
        wait_until(lambda: Product.objects.filter(slug=slug, status="retired").exists(), timeout=60,
                   what=f"{slug} retired", log=log)


def test_an_amendment_changes_the_tier_in_place_keeping_data_and_credentials(e2e, api, provisioning_on):
    team = TeamFactory()
    alice, priya = member_of(team), platform_user()
    slug = f"amend-{uuid.uuid4().hex[:6]}"
    _create(api, alice, team, slug)
    assert _submit(api, alice, slug)["status"] == "approved"
    first = _wait_job(Job.objects.get(product__slug=slug).pk, e2e["log"])
    try:
        creds = api(alice).get(f"/api/v1/products/{slug}/credentials/").json()
        with _connect(creds) as conn:
            conn.execute(f'CREATE TABLE "{creds["schema"]}".kept (id int)')
            conn.execute(f'INSERT INTO "{creds["schema"]}".kept VALUES (42)')
        version = api(alice).get(f"/api/v1/products/{slug}/").json()["version"]

        # The draft of the amendment starts nothing and changes nothing live.
        body = api(alice).patch(f"/api/v1/products/{slug}/", {"version": version, "compute_tier": "medium"},
                                format="json").json()
        assert (body["status"], body["approved_version"]) == ("draft", version)
        plan = api(priya).post(f"/api/v1/products/{slug}/jobs/", {"action": "plan"}, format="json")
        assert plan.status_code == 202  # jobs are allowed during an amendment, and build the approved version
        plan = _wait_job(plan.json()["id"], e2e["log"])
        assert plan.plan_summary == {"add": 0, "change": 0, "destroy": 0}

        body = _submit(api, alice, slug)
        assert body["status"] == "approved", body["review_log"][-1]
        job = _next_job(slug, plan.pk, e2e["log"])
        assert (job.action, job.origin, job.confirmed_by) == ("apply", "approval", None)
        assert job.plan_summary["change"] >= 1 and job.plan_summary["destroy"] == 0

        with _admin() as admin:
            limit = admin.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", [creds["user"]]).fetchone()[0]
            quota = admin.execute("SELECT concurrency, memory_mb FROM platform_registry.compute_queues "
                                  "WHERE product = %s", [slug]).fetchone()
        assert limit == 10 and quota == (2, 2048)  # the medium tier's
        assert Provisioning.objects.get(product__slug=slug).outputs["memory_mb"] == 2048
        with _connect(creds) as conn:  # the same credentials, the data kept
            assert conn.execute(f'SELECT id FROM "{creds["schema"]}".kept').fetchall() == [(42,)]
        assert first.pk < job.pk
    finally:
        _destroy_all(api, priya, [slug], e2e["log"])


def test_depends_on_grants_read_access_pending_until_the_producer_is_provisioned(e2e, api, provisioning_on):
    team, other = TeamFactory(), TeamFactory()
    alice, bob, priya = member_of(team), member_of(other), platform_user()
    a, b = f"prod-{uuid.uuid4().hex[:6]}", f"cons-{uuid.uuid4().hex[:6]}"
    _create(api, alice, team, a, outputs=[{"name": "orders", "kind": "table"}, {"name": "daily", "kind": "feed"}])
    _create(api, bob, other, b, depends_on=[a])
    try:
        # B first: its dependency on A waits, shown as pending.
        assert _submit(api, bob, b)["status"] == "approved"
        job_b = _wait_job(Job.objects.get(product__slug=b).pk, e2e["log"])
        deps = api(bob).get(f"/api/v1/products/{b}/provisioning/").json()["dependencies"]
        assert deps == [{"product": a, "state": "pending", "request": None}]

        # A is provisioned: B's grant follows by itself (an apply of B started by the portal).
        assert _submit(api, alice, a)["status"] == "approved"
        _wait_job(Job.objects.get(product__slug=a).pk, e2e["log"])
        grant = _next_job(b, job_b.pk, e2e["log"])
        assert (grant.origin, grant.plan_summary["add"]) == ("access", 1)
        deps = api(bob).get(f"/api/v1/products/{b}/provisioning/").json()["dependencies"]
        assert deps[0]["state"] == "granted"

        ports = api(bob).get(f"/api/v1/products/{a}/ports/").json()
        by_name = {p["name"]: p for p in ports}
        pub = by_name["orders"]["location"]["schema"]
        assert by_name["orders"]["location"] == {"schema": pub, "table": "orders"}
        assert by_name["daily"]["location"]["path"].endswith(f"/{a}/curated/daily/")
        assert by_name["orders"]["consumers"] == [{"kind": "product", "product": b, "team": other.slug,
                                                   "state": "granted"}]

        creds_a = api(alice).get(f"/api/v1/products/{a}/credentials/").json()
        creds_b = api(bob).get(f"/api/v1/products/{b}/credentials/").json()
        with _connect(creds_a) as conn:  # created after the grant: readable too
            conn.execute(f'CREATE TABLE "{pub}".orders (id int)')
            conn.execute(f'INSERT INTO "{pub}".orders VALUES (7)')
            conn.execute(f'CREATE TABLE "{creds_a["schema"]}".private (id int)')
        with _connect(creds_b) as conn:
            assert conn.execute(f'SELECT id FROM "{pub}".orders').fetchall() == [(7,)]
            for statement in (f'INSERT INTO "{pub}".orders VALUES (8)', f'CREATE TABLE "{pub}".mine (id int)',
                              f'SELECT * FROM "{creds_a["schema"]}".private', f'DELETE FROM "{pub}".orders'):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        granted = AccessEvent.objects.filter(product__slug=a, kind="granted", subject=b)
        assert granted.count() == 1

        # An amendment of B that drops A revokes the grant once approved.
        version = api(bob).get(f"/api/v1/products/{b}/").json()["version"]
        api(bob).patch(f"/api/v1/products/{b}/", {"version": version, "depends_on": []}, format="json")
        last = _last_job_id(b)
        assert _submit(api, bob, b)["status"] == "approved"
        revoke = _next_job(b, last, e2e["log"])
        assert revoke.plan_summary["destroy"] == 1 and revoke.confirmed_by is None
        with _connect(creds_b) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'SELECT id FROM "{pub}".orders')
        assert AccessEvent.objects.filter(product__slug=a, kind="revoked", subject=b).exists()
    finally:
        _destroy_all(api, priya, [b, a], e2e["log"])


def test_a_person_asks_an_owner_approves_and_the_person_reads_with_a_login_of_their_own(e2e, api, provisioning_on):
    team = TeamFactory()
    owner, priya = member_of(team, role="owner"), platform_user()
    carol = member_of(TeamFactory())
    slug = f"asked-{uuid.uuid4().hex[:6]}"
    _create(api, owner, team, slug, outputs=[{"name": "facts", "kind": "table"}])
    assert _submit(api, owner, slug)["status"] == "approved"
    _wait_job(Job.objects.get(product__slug=slug).pk, e2e["log"])
    try:
        creds = api(owner).get(f"/api/v1/products/{slug}/credentials/").json()
        with _connect(creds) as conn:
            conn.execute(f'CREATE TABLE "{creds["published_schema"]}".facts (n int)')
            conn.execute(f'INSERT INTO "{creds["published_schema"]}".facts VALUES (1), (2)')
        until = date.today() + timedelta(days=30)
        response = api(carol).post(f"/api/v1/products/{slug}/access-requests/",
                                   {"purpose": "Quarterly churn study", "until": str(until)}, format="json")
        assert response.status_code == 201, response.json()
        request = response.json()
        assert api(carol).get(f"/api/v1/products/{slug}/credentials/").status_code == 403  # not yet

        last = _last_job_id(slug)
        approved = api(owner).post(f"/api/v1/access-requests/{request['id']}/approve/", {"comment": "ok"},
                                   format="json")
        assert approved.json()["status"] == "approved"
        job = _next_job(slug, last, e2e["log"])
        assert job.origin == "access" and job.confirmed_by is None

        mine = api(carol).get(f"/api/v1/products/{slug}/credentials/").json()
        assert (mine["user"], mine["kind"], mine["valid_until"]) == (f"a_{request['id']}", "personal", str(until))
        with _connect(mine) as conn:
            assert conn.execute(f'SELECT count(*) FROM "{mine["published_schema"]}".facts').fetchone() == (2,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'SELECT * FROM "{creds["schema"]}".curated_records')
        with _admin() as admin:
            valid = admin.execute("SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", [mine["user"]]).fetchone()[0]
        assert valid.date() == until + timedelta(days=1)

        report = api(owner).get(f"/api/v1/products/{slug}/access/").json()
        assert [p["username"] for p in report["readers"]["people"]] == [carol.username]
        kinds = {(e["kind"], e["subject"]) for e in report["events"]}
        assert {("requested", carol.username), ("approved", carol.username), ("granted", carol.username),
                ("credentials_read", carol.username)} <= kinds
        assert api(carol).get(f"/api/v1/products/{slug}/access/").status_code == 403

        # Git holds the access history, without changing the WID's status or decision dates.
        product = Product.objects.get(slug=slug)
        wait_until(lambda: not AccessEvent.objects.filter(product=product, git_pending=True).exists(), timeout=30,
                   what="access events in git", log=e2e["log"])
        doc = parse(get_repository().read(product.path))
        actions = [r.action for r in doc.reviews]
        assert actions[-2:] == ["access_requested", "access_approved"] or \
            actions[-1:] == ["access_approved"] and "access_requested" in actions
        assert doc.meta["status"] == "approved"
        product.refresh_from_db()
        assert product.decided_at == doc.reviews[[r.action for r in doc.reviews].index("approved")].at

        # Rotation: a new password by an apply, the old refused.
        last = _last_job_id(slug)
        assert api(owner).post(f"/api/v1/products/{slug}/credentials/rotate/").status_code == 202
        rotation = _next_job(slug, last, e2e["log"])
        assert rotation.origin == "rotation" and rotation.confirmed_by is None
        with pytest.raises(psycopg.OperationalError):
            _connect(creds)
        fresh = api(owner).get(f"/api/v1/products/{slug}/credentials/").json()
        assert fresh["password"] != creds["password"]
        with _connect(fresh) as conn:
            assert conn.execute(f'SELECT count(*) FROM "{fresh["published_schema"]}".facts').fetchone() == (2,)
    finally:
        _destroy_all(api, priya, [slug], e2e["log"])


def test_a_deprecated_product_keeps_its_jobs_and_its_destroy_retires_it(e2e, api, provisioning_on):
    team = TeamFactory()
    alice, priya = member_of(team), platform_user()
    producer, reader = f"dep-{uuid.uuid4().hex[:6]}", f"rdr-{uuid.uuid4().hex[:6]}"
    _create(api, alice, team, producer)
    assert _submit(api, alice, producer)["status"] == "approved"
    _wait_job(Job.objects.get(product__slug=producer).pk, e2e["log"])
    _create(api, alice, team, reader, depends_on=[producer])
    sunset = (date.today() + timedelta(days=30)).isoformat()
    try:
        body = api(alice).post(f"/api/v1/products/{producer}/deprecate/", {"sunset": sunset, "comment": "Going."},
                               format="json").json()
        assert (body["status"], body["sunset"]) == ("deprecated", sunset)
        # Its reader, already reading it, keeps going; the deprecated product's own jobs too.
        assert _submit(api, alice, reader)["status"] == "approved"
        _wait_job(Job.objects.get(product__slug=reader).pk, e2e["log"])
        plan = api(priya).post(f"/api/v1/products/{producer}/jobs/", {"action": "plan"}, format="json")
        assert plan.status_code == 202, plan.json()
        assert _wait_job(plan.json()["id"], e2e["log"]).plan_summary == {"add": 0, "change": 0, "destroy": 0}

        _destroy_all(api, priya, [reader, producer], e2e["log"])

        doc = parse(get_repository().read(Product.objects.get(slug=producer).path))
        assert doc.meta["status"] == "retired" and doc.meta["sunset"] == date.fromisoformat(sunset)
        actions = [r.action for r in doc.reviews]
        assert actions[-1] == "retired" and "deprecated" in actions  # the reader's grant revoked in between
    finally:
        _destroy_all(api, priya, [s for s in (reader, producer)
                                  if not Product.objects.filter(slug=s, status="retired").exists()], e2e["log"])
