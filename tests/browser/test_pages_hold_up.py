"""Every main page at phone width: no sideways scrolling, one h1, a label for every field, and no
serious or critical finding of axe-core (the accessibility engine browsers' own tools use)."""
import os
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone

from docs_site import builder
from onboarding import services as wid
from provisioning.models import Job, JobLogLine, Provisioning
from tests.browser.conftest import DESKTOP, PHONE, screenshot
from tests.factories import TeamFactory, member_of, platform_user, wid_payload

UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML.slice(0, 120))"""
WIDER_THAN_SCREEN = "() => document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def portal(transactional_db, settings, tmp_path):
    """A few products in every state, a finished job with its log, and the site built."""
    settings.WID_REPO_PATH = tmp_path / "wid-repo"
    settings.WID_SITE_ROOT = tmp_path / "site"
    team, other = TeamFactory(slug="growth-analytics", name="Growth analytics"), TeamFactory(slug="sales-data")
    alice = member_of(team, role="owner", username="alice", first_name="Alice", last_name="Analyst")
    sam = member_of(other, username="sam")
    priya = platform_user(username="priya", first_name="Priya", last_name="Platform")
    wid.wid_create(user=sam, data=wid_payload(slug="orders", team="sales-data", name="Orders", domain="sales",
                                              classification="internal", pii=False))
    wid.wid_submit(user=sam, slug="orders")  # approved by the policy
    wid.wid_create(user=alice, data=wid_payload(slug="customer-churn", depends_on=["orders"]))
    wid.wid_submit(user=alice, slug="customer-churn", comment="Ready.")
    product = wid.wid_approve(user=priya, slug="customer-churn", comment="Looks good.")
    wid.wid_create(user=alice, data=wid_payload(slug="churn-forecast", name="Churn forecast with a long name "
                                                "that has to wrap on a phone", depends_on=["customer-churn"]))
    # Its readers' pages carry its banners.
    wid.wid_deprecate(user=sam, slug="orders", sunset=timezone.now().date() + timedelta(days=90),
                      comment="Replaced by orders-v2, which splits refunds out: move your reads before the sunset.")
    wid.wid_suspend(user=priya, slug="orders", comment="Scream test: who still reads it?")
    now = timezone.now()
    job = Job.objects.create(product=product, action="apply", status="succeeded", started_at=now - timedelta(minutes=2),
                             finished_at=now - timedelta(minutes=1), plan_summary={"add": 3, "change": 0, "destroy": 0},
                             outputs={"storage_schema": "p_customer_churn"}, log_lines=3)
    JobLogLine.objects.bulk_create([JobLogLine(job=job, number=n, text=text) for n, text in enumerate([
        "Rendering the local template for customer-churn.",
        "localplatform_storage.this: Creation complete after 0s [id=p_customer_churn_with_a_long_identifier_0123]",
        "Apply complete! Resources: 3 added, 0 changed, 0 destroyed."], start=1)])
    Job.objects.create(product=product, action="plan", status="failed", error="Error: pq: permission denied",
                       started_at=now, finished_at=now)
    Provisioning.objects.create(product=product, provisioned=True, last_job=job, provisioned_at=job.finished_at,
                                outputs={"storage_schema": "p_customer_churn"})
    builder.build(full=True)
    return {"alice": alice, "priya": priya, "job": job}


def test_every_main_page_works_at_phone_width_and_for_screen_readers(portal, new_page):
    job = portal["job"]
    pages = [
        (None, "/accounts/login/", "login"),
        ("alice", "/products/", "product-list"),
        ("alice", "/products/new/", "product-form"),
        ("alice", "/products/customer-churn/", "product-page"),
        ("priya", "/products/orders/", "product-page-deprecated"),
        ("alice", "/products/churn-forecast/edit/", "product-edit"),
        ("alice", f"/jobs/{job.pk}/", "job-page"),
        ("alice", "/my/", "my-products"),
        ("alice", "/teams/", "teams"),
        ("alice", "/teams/growth-analytics/", "team-page"),
        ("priya", "/dashboard/", "dashboard"),
        ("priya", "/jobs/", "jobs"),
        ("alice", "/docs/", "site-home"),
        ("alice", "/docs/growth/customer-churn/", "site-wid-page"),
        ("alice", "/docs/sales/orders/", "site-wid-page-deprecated"),
        ("alice", "/docs/-/lineage/", "site-lineage"),
        ("alice", "/docs/-/teams/", "site-teams"),
    ]
    signed_in = {}
    problems = {}
    for who, path, name in pages:
        if who not in signed_in:
            signed_in[who] = new_page(portal[who] if who else None, viewport=PHONE)
        page = signed_in[who]
        response = page.goto(path)
        assert response.status == 200, (path, response.status)
        found = []
        if (wider := page.evaluate(WIDER_THAN_SCREEN)) > 0:
            found.append(f"{wider}px wider than the screen")
        if (h1 := page.locator("h1").count()) != 1:
            found.append(f"{h1} h1 headings")
        if unlabelled := page.evaluate(UNLABELLED):
            found.append(f"fields without a label: {unlabelled}")
        for violation in Axe().run(page).response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [n["target"] for n in violation["nodes"]][:3]
                found.append(f"axe {violation['id']} ({violation['impact']}): {targets}")
        if found:
            problems[path] = found
    assert problems == {}, "\n".join(f"{path}: {p}" for path, found in problems.items() for p in found)

    if os.environ.get("BROWSER_SCREENSHOTS"):  # the README's screenshots, at desktop width
        desktop = {}
        for who, path, name in pages:
            if who not in desktop:
                desktop[who] = new_page(portal[who] if who else None, viewport=DESKTOP)
            desktop[who].goto(path)
            screenshot(desktop[who], name)
