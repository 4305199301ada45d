"""Suspension for real ("did anyone scream", docs/adr/0024): a real Celery worker, real terraform, the local
provider and the warehouse. Suspending a provisioned producer applies its `suspended` variable by itself:
its own login and every reader (a consumer product, a person) are refused while the data stays; drift
repair keeps it so; the consumer's refused reads show in usage; resuming brings it all back.
"""
import uuid

import psycopg
import pytest

from onboarding.models import Product
from onboarding.widfile import parse
from onboarding.widrepo import get_repository
from provisioning import services, usage
from provisioning.models import Job, PortRead
from tests.e2e.test_products_live_on import (  # noqa: F401  (provisioning_on is a fixture)
    _admin, _connect, _create, _destroy_all, _last_job_id, _next_job, _provision_reader_pair, _wait_job,
    provisioning_on,
)
from tests.factories import TeamFactory, member_of, platform_user
from tests.worker import wait_until

pytestmark = pytest.mark.e2e


def test_suspension_switches_off_the_login_and_every_reader_keeps_the_data_and_resumes(e2e, api, provisioning_on):
    team, other = TeamFactory(), TeamFactory()
    alice, bob, priya = member_of(team, role="owner"), member_of(other), platform_user()
    carol = member_of(TeamFactory())
    a, b = f"susp-{uuid.uuid4().hex[:6]}", f"scrm-{uuid.uuid4().hex[:6]}"
    _create(api, alice, team, a, outputs=[{"name": "orders", "kind": "table"}])
    _create(api, bob, other, b, depends_on=[a])
    try:
        _provision_reader_pair(api, e2e["log"], producer=(a, alice, team), consumer=(b, bob, other), person=carol,
                               purpose="Scream test")

        creds_a = api(alice).get(f"/api/v1/products/{a}/credentials/").json()
        creds_b = api(bob).get(f"/api/v1/products/{b}/credentials/").json()
        mine = api(carol).get(f"/api/v1/products/{a}/credentials/").json()
        pub = creds_a["published_schema"]
        with _connect(creds_a) as conn:
            conn.execute(f"CREATE TABLE {pub}.orders (id int)")
            conn.execute(f"INSERT INTO {pub}.orders VALUES (1), (2), (3)")
        for reader in (creds_b, mine):
            with _connect(reader) as conn:
                assert conn.execute(f"SELECT count(*) FROM {pub}.orders").fetchone() == (3,)
        usage.sample()  # the baseline

        # Suspend: an apply of the producer's own state, by itself, in place.
        held = _connect(creds_a)  # a session of the product's own login, open across the suspension
        last = _last_job_id(a)
        response = api(priya).post(f"/api/v1/products/{a}/suspend/", {"comment": "Who still reads this?"},
                                   format="json")
        assert response.status_code == 200 and response.json()["suspended"] is True, response.json()
        job = _next_job(a, last, e2e["log"])
        assert (job.action, job.origin, job.confirmed_by) == ("apply", "access", None)
        assert job.plan_summary["change"] >= 1 and job.plan_summary["destroy"] == 0

        with pytest.raises(psycopg.OperationalError):  # the product's own login
            _connect(creds_a)
        with pytest.raises(psycopg.OperationalError):  # and its session that was open: ended
            held.execute("SELECT 1")
        held.close()
        for reader in (creds_b, mine):  # a consumer product and a person
            with _connect(reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {pub}.orders")
        with _admin() as admin:  # not a byte lost
            assert admin.execute(f"SELECT count(*) FROM {pub}.orders").fetchone() == (3,)
        # Its pipeline does not run while its login is off.
        assert api(alice).post(f"/api/v1/products/{a}/runs/", format="json").status_code == 409

        # The consumer's refused read shows in usage: somebody screamed.
        wait_until(lambda: usage.sample() and PortRead.objects.filter(
            product__slug=a, port="orders", reader_kind="product", reader=b, failed_reads__gt=0).exists(),
            timeout=20, what="B's refused read in the warehouse's log")
        refused = api(alice).get(f"/api/v1/products/{a}/usage/").json()[0]["failed_reads"]
        assert (b, f"permission denied for schema {pub}") in {(f["who"], f["error"]) for f in refused}

        # Drift repair keeps it suspended: the plan is empty; a grant put back by hand is drift, repaired.
        product = Product.objects.get(slug=a)
        assert services.drift_check(product) is False
        with _admin() as admin:
            admin.execute(f"GRANT USAGE ON SCHEMA {pub} TO r_{a.replace('-', '_')}")
        assert services.drift_check(product) is True
        repair = api(priya).post(f"/api/v1/products/{a}/jobs/", {"action": "apply"}, format="json").json()
        repair = wait_until(lambda: Job.objects.filter(pk=repair["id"], status__in=["planned", "succeeded"]).first(),
                            timeout=120, what="the repair's plan", log=e2e["log"])
        if repair.status == "planned":
            assert api(priya).post(f"/api/v1/jobs/{repair.pk}/confirm/").status_code == 202
            _wait_job(repair.pk, e2e["log"])
        with _connect(creds_b) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT count(*) FROM {pub}.orders")
        assert services.drift_check(product) is False

        # In git: `suspended: true` and the platform's comment.
        doc = parse(get_repository().read(product.path))
        assert doc.meta["suspended"] is True and doc.reviews[-1].action == "suspended"

        # Resume: everything back, the same passwords.
        last = _last_job_id(a)
        assert api(priya).post(f"/api/v1/products/{a}/resume/", {"comment": "B screamed."},
                               format="json").status_code == 200
        job = _next_job(a, last, e2e["log"])
        assert (job.origin, job.confirmed_by) == ("access", None)
        for reader in (creds_a, creds_b, mine):
            with _connect(reader) as conn:
                assert conn.execute(f"SELECT count(*) FROM {pub}.orders").fetchone() == (3,)
        assert services.drift_check(product) is False
    finally:
        Job.objects.filter(product__slug=a, status="planned").update(status="cancelled")
        _destroy_all(api, priya, [b, a], e2e["log"])
