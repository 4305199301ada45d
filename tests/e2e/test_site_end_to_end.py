"""The WID site follows the portal: a real worker rebuilds it after WID changes and finished jobs."""
import uuid

import pytest

from docs_site import builder
from provisioning.models import Job, Provisioning
from tests.worker import wait_until
from tests.factories import TeamFactory, member_of, platform_user, wid_payload

pytestmark = pytest.mark.e2e


def _page(slug, domain="growth") -> str:
    root = builder.published()
    path = root / domain / slug / "index.html" if root else None
    return path.read_text() if path and path.exists() else ""


def test_the_site_follows_edits_incrementally_and_shows_provisioning_once_the_job_finishes(e2e, api, settings):
    settings.WID_SITE_AUTO_BUILD = True
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]
    team = TeamFactory()
    alice, priya = member_of(team), platform_user()
    slug = f"site-{uuid.uuid4().hex[:8]}"
    body = wid_payload(slug=slug, team=team.slug, classification="internal", pii=False, compute_tier="small")
    assert api(alice).post("/api/v1/products/", body, format="json").status_code == 201

    wait_until(lambda: "Customer churn insights" in _page(slug), timeout=60, what="the new WID on the site",
               log=e2e["log"])
    published = builder.published()
    response = api(alice).patch(f"/api/v1/products/{slug}/", {"version": 1, "sections": {
        "architecture": "Streaming from the orders topic."}}, format="json")
    assert response.status_code == 200, response.json()
    wait_until(lambda: "Streaming from the orders topic." in _page(slug), timeout=30, what="the edit on the site",
               log=e2e["log"])
    # An edit is an incremental build, into a copy of the published site swapped in whole.
    assert builder.published() != published
    assert "WID site: incremental build" in e2e["log"].read_text()

    assert api(alice).post(f"/api/v1/products/{slug}/submit/", format="json").json()["status"] == "approved"
    job = Job.objects.get(product__slug=slug)
    try:
        wait_until(lambda: "provisioned</span> on" in _page(slug), timeout=120,
                   what="the finished job's provisioning status on the site", log=e2e["log"])
        assert Job.objects.get(pk=job.pk).status == "succeeded"
        assert "storage_schema" in _page(slug) and "storage_password" not in _page(slug)
    finally:
        wait_until(lambda: Job.objects.get(pk=job.pk).status not in Job.ACTIVE, timeout=120, what="the apply job")
        if Provisioning.objects.filter(product__slug=slug, provisioned=True).exists():
            destroy = api(priya).post(f"/api/v1/products/{slug}/jobs/", {"action": "destroy"}, format="json").json()
            wait_until(lambda: Job.objects.get(pk=destroy["id"]).status == "planned", timeout=120, what="destroy plan")
            api(priya).post(f"/api/v1/jobs/{destroy['id']}/confirm/")
            wait_until(lambda: Job.objects.get(pk=destroy["id"]).status == "succeeded", timeout=120, what="destroy")
