"""Jobs through the API, without running terraform (the worker's part is in test_jobs_end_to_end)."""
import pytest

from onboarding import services as onboarding_services
from provisioning.models import CredentialRead, Job
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def approved(member, platform):
    onboarding_services.wid_create(user=member, data=wid_payload(slug="churn", **LOW_RISK))
    return onboarding_services.wid_submit(user=member, slug="churn")


def start(api, user, action="apply", slug="churn"):
    return api(user).post(f"/api/v1/products/{slug}/jobs/", {"action": action}, format="json")


def test_approval_starts_an_apply_job_for_an_enabled_target(settings, member, django_capture_on_commit_callbacks):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]
    onboarding_services.wid_create(user=member, data=wid_payload(slug="churn", **LOW_RISK))

    with django_capture_on_commit_callbacks() as callbacks:
        onboarding_services.wid_submit(user=member, slug="churn")

    job = Job.objects.get()
    assert (job.action, job.status, job.requested_by, job.reason) == ("apply", "queued", None, "approved by policy")
    assert any(getattr(c, "__qualname__", "").startswith("dispatch.") for c in callbacks)


def test_approval_of_a_target_not_enabled_here_starts_nothing(settings, member):
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]
    onboarding_services.wid_create(user=member, data=wid_payload(slug="churn", target="aws", **LOW_RISK))
    onboarding_services.wid_submit(user=member, slug="churn")

    assert not Job.objects.exists()


def test_starting_a_job_answers_202_with_the_jobs_url(api, platform, approved):
    response = start(api, platform)

    assert response.status_code == 202
    job = Job.objects.get()
    assert response["Location"] == f"/api/v1/jobs/{job.pk}/"
    assert response.json()["status"] == "queued"
    assert response.json()["requested_by"] == "priya"


def test_a_second_job_for_the_same_product_answers_409(api, platform, approved):
    start(api, platform)

    response = start(api, platform, "plan")

    assert response.status_code == 409
    assert Job.objects.count() == 1


@pytest.mark.parametrize("action, member_status, outsider_status", [
    ("plan", 202, 403), ("apply", 403, 403), ("destroy", 403, 403),
])
def test_who_may_start_which_job(api, member, outsider, approved, action, member_status, outsider_status):
    assert start(api, outsider, action).status_code == outsider_status
    assert start(api, member, action).status_code == member_status


def test_a_job_for_a_wid_that_is_not_approved_answers_409(api, member, platform):
    onboarding_services.wid_create(user=member, data=wid_payload(slug="draft-one"))

    response = start(api, platform, "apply", slug="draft-one")

    assert response.status_code == 409
    assert not Job.objects.exists()


def test_an_unknown_action_answers_400_naming_the_field(api, platform, approved):
    response = start(api, platform, "explode")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["action"]


def test_cancelling_a_queued_job_stops_it_and_frees_the_product(api, platform, approved):
    job_id = start(api, platform).json()["id"]

    response = api(platform).post(f"/api/v1/jobs/{job_id}/cancel/")

    assert response.json()["status"] == "cancelled"
    assert start(api, platform).status_code == 202


def test_retry_starts_a_new_job_from_the_same_request(api, platform, approved):
    job_id = start(api, platform).json()["id"]
    api(platform).post(f"/api/v1/jobs/{job_id}/cancel/")

    response = api(platform).post(f"/api/v1/jobs/{job_id}/retry/")

    assert response.status_code == 202
    assert response.json()["retry_of"] == job_id
    assert response.json()["action"] == "apply"


def test_only_a_planned_job_can_be_confirmed(api, platform, approved):
    job_id = start(api, platform).json()["id"]

    assert api(platform).post(f"/api/v1/jobs/{job_id}/confirm/").status_code == 409


def test_the_log_endpoint_returns_lines_after_an_offset(api, member, platform, approved):
    from provisioning.services import _append, job_get

    job_id = start(api, platform).json()["id"]
    for n in range(5):
        _append(job_get(job_id), f"line {n + 1}")

    body = api(member).get(f"/api/v1/jobs/{job_id}/log/?offset=2").json()

    assert [line["text"] for line in body["lines"]] == ["line 3", "line 4", "line 5"]
    assert body["next_offset"] == 5 and body["status"] == "queued" and body["finished"] is False
    assert api(member).get(f"/api/v1/jobs/{job_id}/log/?offset=x").status_code == 400


def test_credentials_of_an_unprovisioned_product_answer_409_and_outsiders_403(api, member, outsider, approved):
    assert api(outsider).get("/api/v1/products/churn/credentials/").status_code == 403
    assert api(member).get("/api/v1/products/churn/credentials/").status_code == 409
    assert not CredentialRead.objects.exists()


def test_every_provisioning_endpoint_refuses_anonymous_callers(api, platform, approved):
    job_id = start(api, platform).json()["id"]
    anonymous = api(None)
    for method, url in [
        ("get", "/api/v1/products/churn/jobs/"), ("post", "/api/v1/products/churn/jobs/"),
        ("get", f"/api/v1/jobs/{job_id}/"), ("get", f"/api/v1/jobs/{job_id}/log/"),
        ("post", f"/api/v1/jobs/{job_id}/confirm/"), ("post", f"/api/v1/jobs/{job_id}/cancel/"),
        ("post", f"/api/v1/jobs/{job_id}/retry/"), ("get", "/api/v1/products/churn/provisioning/"),
        ("get", "/api/v1/products/churn/credentials/"),
    ]:
        assert getattr(anonymous, method)(url).status_code in (401, 403), (method, url)
    assert Job.objects.get().status == "queued"


@pytest.mark.parametrize("action", ["confirm", "cancel", "retry"])
def test_team_members_cannot_confirm_cancel_or_retry_an_apply(api, member, platform, approved, action):
    job_id = start(api, platform).json()["id"]
    if action == "retry":
        api(platform).post(f"/api/v1/jobs/{job_id}/cancel/")
    before = Job.objects.get(pk=job_id).status

    response = api(member).post(f"/api/v1/jobs/{job_id}/{action}/")

    assert response.status_code in (403, 409) if action == "confirm" else response.status_code == 403
    assert Job.objects.get(pk=job_id).status == before
    assert Job.objects.count() == 1


def test_who_started_a_plan_may_cancel_it(api, member, approved):
    job_id = start(api, member, "plan").json()["id"]

    assert api(member).post(f"/api/v1/jobs/{job_id}/cancel/").json()["status"] == "cancelled"


def test_the_job_page_and_the_product_panel_show_the_job(client, member, platform, approved, api):
    from provisioning.services import _append, job_get

    job_id = start(api, platform).json()["id"]
    _append(job_get(job_id), "<script>alert(1)</script> Initializing the backend...")
    client.force_login(member)

    page = client.get(f"/jobs/{job_id}/").content.decode()
    product_page = client.get("/products/churn/").content.decode()

    assert "Initializing the backend..." in page and "&lt;script&gt;alert(1)" in page
    assert "<script>alert(1)" not in page
    assert f"/jobs/{job_id}/" in product_page and "Provisioning" in product_page
    assert client.post(f"/jobs/{job_id}/confirm/").status_code == 403
    client.logout()
    assert client.get(f"/jobs/{job_id}/").status_code == 302


def test_the_platform_starts_a_job_from_the_product_page(client, platform, approved):
    client.force_login(platform)

    response = client.post("/products/churn/jobs/", {"action": "plan"})

    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.action == "plan" and job.requested_by == platform


def test_a_refused_job_on_the_product_page_says_which_field_and_starts_nothing(client, platform, approved):
    client.force_login(platform)

    response = client.post("/products/churn/jobs/", {"action": "explode"}, follow=True)

    assert not Job.objects.exists()
    assert [str(m) for m in response.context["messages"]] == ["Action: Choose one of: plan, apply, destroy."]
