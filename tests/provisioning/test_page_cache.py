"""The page cache (portal/pagecache.py): cached rows are never stale, and never carry someone else's
CSRF token."""
import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from onboarding import services as wid
from provisioning.models import Job
from tests.factories import platform_user, wid_payload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def page_cache(settings):
    settings.PAGE_CACHE_SECONDS = 300
    cache.clear()
    yield
    cache.clear()


def test_the_product_list_shows_every_change_at_once(client, member):
    wid.wid_create(user=member, data=wid_payload(slug="churn-a", name="Churn A"))
    client.force_login(member)
    assert "Churn A" in client.get("/products/").content.decode()
    assert "Churn A" in client.get("/products/").content.decode()  # from the cache

    wid.wid_update(user=member, slug="churn-a", data={"name": "Churn renamed", "version": 1})
    page = client.get("/products/").content.decode()
    assert "Churn renamed" in page and "Churn A" not in page
    wid.wid_create(user=member, data=wid_payload(slug="churn-b", name="Churn B"))
    page = client.get("/products/").content.decode()
    assert "Churn B" in page and "2 products" in page
    assert "Churn B" not in client.get("/products/?status=submitted").content.decode()  # filters have their own entry


def test_the_product_api_shows_every_change_at_once(api, member):
    wid.wid_create(user=member, data=wid_payload(slug="churn-a", name="Churn A"))
    assert [p["name"] for p in api(member).get("/api/v1/products/").json()["results"]] == ["Churn A"]
    wid.wid_submit(user=member, slug="churn-a")
    [product] = api(member).get("/api/v1/products/").json()["results"]
    assert product["status"] == "submitted" and product["version"] == 2
    assert api(member).get("/api/v1/products/?status=draft").json()["count"] == 0


def test_the_dashboard_is_fresh_and_each_member_gets_a_csrf_token_of_their_own(member):
    wid.wid_create(user=member, data=wid_payload(slug="churn-a"))
    product = wid.wid_submit(user=member, slug="churn-a")
    job = Job.objects.create(product=product, action="plan", status="queued")
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    first.force_login(platform_user(username="pia"))
    second.force_login(platform_user(username="pete"))

    page_one = first.get("/dashboard/").content.decode()
    page_two = second.get("/dashboard/").content.decode()  # the sections come from the cache
    assert "__portal_csrf_token_placeholder__" not in page_one + page_two
    assert f"#{job.pk}" in page_two and "Running and queued jobs (1)" in page_two

    token_two = re.search(r'action="/jobs/%d/cancel/".*?name="csrfmiddlewaretoken" value="([^"]+)"' % job.pk,
                          page_two, re.S).group(1)
    response = second.post(f"/jobs/{job.pk}/cancel/", {"csrfmiddlewaretoken": token_two, "next": "/dashboard/"})
    assert response.status_code == 302  # the token on pete's page is pete's
    job.refresh_from_db()
    assert job.status == "cancelled"

    page = first.get("/dashboard/").content.decode()  # the cancel changed the fingerprint
    assert "Running and queued jobs (0)" in page and "No job is running or queued." in page
    Job.objects.create(product=product, action="apply", status="failed", error="Error: boom",
                       started_at=timezone.now(), finished_at=timezone.now())
    assert "Error: boom" in first.get("/dashboard/").content.decode()
