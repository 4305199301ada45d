"""My products, the platform dashboard, the jobs list; and no page's query count grows with the data."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from onboarding.models import Product, ReviewEvent
from provisioning import dashboards
from provisioning.models import Job, JobLogLine, Provisioning
from tests.factories import TeamFactory, member_of, wid_payload

pytestmark = pytest.mark.django_db
NOW = timezone.now().replace(microsecond=0)


def product(team, slug, status="approved", **fields):
    values = dict(
        slug=slug, name=slug.title(), domain="growth", team=team, status=status, version=3, target="local",
        classification="internal", pii=False, compute_tier="small", contacts={}, data_custodian={},
        depends_on=[], outputs=[], sections={}, path=f"wids/growth/{slug}.md", head_sha="0" * 40,
        created_at=NOW - timedelta(days=20), updated_at=NOW)
    return Product.objects.create(**{**values, **fields})


def reviewed(p, *steps):
    for position, (action, at) in enumerate(steps, start=1):
        ReviewEvent.objects.create(product=p, position=position, action=action, at=at,
                                   actor="" if action == "approved" else "alice", actor_name="Alice")


def populate(team, n: int, prefix: str = "p"):
    """n products in every state, with jobs, logs and provisioning rows."""
    for i in range(n):
        submitted = NOW - timedelta(days=10, hours=i)
        p = product(team, f"{prefix}-{i:04d}", status=["approved", "submitted", "draft"][i % 3],
                    submitted_at=submitted if i % 3 < 2 else None)
        if i % 3 == 0:
            reviewed(p, ("submitted", submitted), ("approved", submitted + timedelta(minutes=5)))
            job = Job.objects.create(product=p, action="apply", status="succeeded" if i % 2 else "failed",
                                     error="Error: boom\nmore", started_at=submitted + timedelta(minutes=5),
                                     finished_at=submitted + timedelta(minutes=6))
            Job.objects.filter(pk=job.pk).update(created_at=submitted + timedelta(minutes=5))
            JobLogLine.objects.bulk_create([JobLogLine(job=job, number=k, text=f"line {k}") for k in range(1, 4)])
            if i % 2:
                Provisioning.objects.create(product=p, provisioned=True, provisioned_at=job.finished_at,
                                            last_job=job, drifted=i % 4 == 1, drift_details=["module.storage"])
        elif i % 3 == 1:
            reviewed(p, ("submitted", submitted))


@pytest.fixture
def platform_client(client, platform):
    client.force_login(platform)
    return client


def test_my_products_shows_each_products_timeline_and_next_step(client, team, member):
    populate(team, 6)
    client.force_login(member)

    html = client.get("/my/").content.decode()

    assert html.count('class="card"') == 6
    assert "Waiting for the platform team" in html and "Complete the WID and submit it" in html
    assert "Ready: get your connection details" in html and "/products/p-0003/credentials/" in html
    assert "Provisioning failed" in html and "Error: boom" in html
    assert "Approved</span>" in html and "by the approval policy" in html


def test_my_products_lists_only_the_users_teams(client, team, other_team, member):
    product(team, "ours")
    product(other_team, "theirs")
    client.force_login(member)
    html = client.get("/my/").content.decode()
    assert "/products/ours/" in html and "/products/theirs/" not in html


def test_the_dashboard_is_the_platforms_only(client, member):
    client.force_login(member)
    assert client.get("/dashboard/").status_code == 403


def test_the_dashboard_shows_the_queue_oldest_first_with_the_policy_jobs_failures_and_drift(platform_client, team):
    new = product(team, "newer", status="submitted", submitted_at=NOW - timedelta(hours=1), classification="restricted")
    old = product(team, "older", status="submitted", submitted_at=NOW - timedelta(days=2), pii=True)
    running = Job.objects.create(product=product(team, "busy"), action="apply", status="running", step="plan")
    failed = Job.objects.create(product=product(team, "broken"), action="apply", status="failed",
                                error="Error: provider crashed\nstack", finished_at=NOW - timedelta(hours=2))
    Job.objects.create(product=product(team, "ancient"), action="apply", status="failed", error="Error: long ago",
                       finished_at=NOW - timedelta(days=30))
    Provisioning.objects.create(product=product(team, "moved"), provisioned=True, drifted=True,
                                drift_details=["module.storage.localplatform_schema.this"])

    html = platform_client.get("/dashboard/").content.decode()

    assert html.index("/products/older/") < html.index("/products/newer/")
    assert "needs a platform decision: it holds personal data" in html
    assert "classification is restricted" in html
    assert f"/jobs/{running.pk}/" in html and "Cancel job" in html
    assert "Error: provider crashed" in html and "stack" not in html and f"Retry job {failed.pk}" in html
    assert "Error: long ago" not in html
    assert "localplatform_schema" in html and "Repair moved" in html
    assert "Error: long ago" in platform_client.get("/dashboard/?days=60").content.decode()
    assert old and new


def test_lead_times_are_median_and_90th_percentile_per_week_of_submission(team):
    monday = (NOW - timedelta(days=NOW.weekday() + 7)).replace(hour=9, minute=0, second=0)
    for i, minutes in enumerate([10, 20, 30, 40, 600]):
        p = product(team, f"lead-{i}")
        reviewed(p, ("submitted", monday), ("approved", monday + timedelta(minutes=minutes)))
        job = Job.objects.create(product=p, action="apply", status="succeeded",
                                 finished_at=monday + timedelta(minutes=minutes + 1))
        assert job
    rejected = product(team, "lead-rejected")
    reviewed(rejected, ("submitted", monday), ("rejected", monday + timedelta(minutes=5)))

    weeks = dashboards.lead_times(now=NOW)

    week = next(w for w in weeks if w.decided)
    assert week.week.date() == monday.date()
    assert week.decided == 6 and week.decision_median == 20 * 60 and week.decision_p90 == 600 * 60
    assert week.provisioned == 5 and week.provisioned_median == 31 * 60 and week.provisioned_p90 == 601 * 60
    assert len(weeks) == 12


def test_the_jobs_list_filters_by_product_team_status_action_and_date(platform_client, team, other_team):
    a = Job.objects.create(product=product(team, "alpha"), action="apply", status="failed")
    b = Job.objects.create(product=product(other_team, "beta"), action="plan", status="succeeded")
    Job.objects.filter(pk=b.pk).update(created_at=NOW - timedelta(days=40))

    def shown(query):
        html = platform_client.get(f"/jobs/?{query}").content.decode()
        return {pk for pk in (a.pk, b.pk) if f"/jobs/{pk}/" in html}

    assert shown("") == {a.pk, b.pk}
    assert shown("product=alp") == {a.pk}
    assert shown(f"team={other_team.slug}") == {b.pk}
    assert shown("status=failed") == {a.pk}
    assert shown("action=plan") == {b.pk}
    assert shown(f"since={(NOW - timedelta(days=1)).date()}") == {a.pk}
    assert shown(f"until={(NOW - timedelta(days=30)).date()}") == {b.pk}


def test_a_bad_job_filter_is_shown_next_to_its_field(platform_client):
    response = platform_client.get("/jobs/?status=exploded&since=2026-02-01&until=2026-01-01")
    html = response.content.decode()
    assert response.status_code == 400
    assert "Select a valid choice" in html and "The end date is before the start date." in html


def test_retry_from_the_dashboard_starts_a_new_job_and_comes_back(platform_client, team, settings):
    failed = Job.objects.create(product=product(team, "broken"), action="apply", status="failed", error="Error: x")

    response = platform_client.post(f"/jobs/{failed.pk}/retry/", {"next": "/dashboard/?days=3"})

    assert response.status_code == 302 and response["Location"] == "/dashboard/?days=3"
    retry = Job.objects.get(retry_of=failed)
    assert retry.status == "queued"
    response = platform_client.post(f"/jobs/{retry.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/jobs/{retry.pk}/"  # never sent off-site
    assert Job.objects.get(pk=retry.pk).status == "cancelled"


# --- a fixed number of queries per page ------------------------------------------------------------
def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx)


PAGE_QUERY_LIMIT = 24  # the dashboard's sections: lead times, jobs, work, needs attention, retirement candidates


@pytest.mark.parametrize("url", ["/my/", "/dashboard/", "/jobs/", "/products/", "/teams/",
                                 "/teams/growth-analytics/", "/products/p-0000/", "/jobs/{job}/"])
def test_no_page_issues_more_queries_with_more_products(client, api, team, member, platform, url):
    member.groups.add(*platform.groups.all())  # sees every page, the dashboard included
    client.force_login(member)
    if url == "/products/p-0000/":
        # Saved first: the repository is not made while the index holds products it lacks.
        assert api(member).post("/api/v1/products/", wid_payload(slug="p-0000x", team=team.slug),
                                format="json").status_code == 201
    populate(team, 3)
    resolved = url.format(job=Job.objects.first().pk)
    if url == "/products/p-0000/":
        resolved = "/products/p-0000x/"
    few = _queries(client, resolved)
    populate(team, 60, prefix="more")
    many = _queries(client, resolved)
    assert many == few, f"{url}: {few} queries with 3 products, {many} with 63"
    assert many <= PAGE_QUERY_LIMIT, f"{url}: {many} queries"
