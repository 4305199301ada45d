"""Holes the access matrix's review found, each closed and kept closed (the matrix's actors are
fixed kinds of people; these are the cases between them)."""
import pytest
from django.contrib.auth import get_user_model

from onboarding import services as onboarding_services
from provisioning.models import Job
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


def test_who_started_a_plan_and_left_the_team_can_no_longer_cancel_it(api, team, member, owner):
    onboarding_services.wid_create(user=member, data=wid_payload(slug="churn", **LOW_RISK))
    onboarding_services.wid_submit(user=member, slug="churn")  # approved by the policy
    job_id = api(member).post("/api/v1/products/churn/jobs/", {"action": "plan"}, format="json").json()["id"]
    onboarding_services.team_member_remove(actor=owner, team=team, username=member.username)
    alice = get_user_model().objects.get(pk=member.pk)  # a new request loads the user afresh

    response = api(alice).post(f"/api/v1/jobs/{job_id}/cancel/")

    assert response.status_code == 403
    assert Job.objects.get(pk=job_id).status == "queued"


def test_the_site_does_not_say_whether_a_directory_exists_outside_it(client, member, settings, tmp_path):
    settings.WID_SITE_ROOT = tmp_path / "site"
    (tmp_path / "site" / "current").mkdir(parents=True)
    (tmp_path / "site" / "current" / "index.html").write_text("<h1>WIDs</h1>")
    (tmp_path / "elsewhere").mkdir()
    client.force_login(member)

    existing = client.get("/docs/../../elsewhere")
    missing = client.get("/docs/../../nowhere")

    assert existing.status_code == missing.status_code != 302
