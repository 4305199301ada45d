"""In a real browser: a team describes and submits a WID, the platform approves it, the job page
follows terraform to `succeeded`, the WID reaches the static site with its lineage; and the
form's error paths."""
import os
import re
import signal
import subprocess
import uuid

import pytest
from playwright.sync_api import expect

from docs_site import builder
from onboarding import services as wid
from onboarding.models import Product
from provisioning import services as jobs
from provisioning.models import Job, Provisioning
from tests.browser.conftest import screenshot
from tests.worker import wait_until
from tests.factories import TeamFactory, member_of, platform_user, wid_payload

LONG = 120_000  # ms: a real terraform apply on a busy machine
# Every line the page appends to its log, kept in sessionStorage: the page reloads itself once the
# job has finished, and what was appended before must still be there to read.
RECORD_LIVE_LOG = """() => new MutationObserver(records => {
  const added = records.flatMap(r => Array.from(r.addedNodes, n => n.textContent)).join('');
  sessionStorage.setItem('live-log', (sessionStorage.getItem('live-log') || '') + added);
}).observe(document.getElementById('job-log'), {childList: true})"""


def field(page, label):
    """The form's field by its label (required ones end in an asterisk hidden from screen readers)."""
    return page.get_by_label(re.compile("^" + re.escape(label) + r"( \*)?$"))


def fill_wid_form(page, **values):
    fields = {
        "Slug": "", "Name": "", "Domain": "", "Business contact: name": "Maria Business",
        "Business contact: e-mail": "maria@example.com", "Technical contact: name": "Tom Technical",
        "Technical contact: e-mail": "tom@example.com", "Data custodian: name": "Carla Custodian",
        "Data custodian: e-mail": "carla@example.com", "Depends on": "",
        "Outputs": "churn_scores: table", "Value proposition": "Finds customers about to leave.",
        "Architecture": "A nightly batch over the orders table.", "Integration points": "Reads orders.",
        "Data surfacing": "A table and a dashboard.",
    }
    fields.update(values)
    for label, value in fields.items():
        field(page, label).fill(value)


@pytest.mark.e2e
def test_a_team_describes_a_product_and_the_platform_provisions_it(e2e, celery_worker_process, new_page, settings):
    settings.WID_SITE_AUTO_BUILD = True
    team, upstream_team = TeamFactory(slug="growth-analytics"), TeamFactory(slug="sales-data")
    alice = member_of(team, username="alice", first_name="Alice", last_name="Analyst")
    seller = member_of(upstream_team, username="sam")
    priya = platform_user(username="priya", first_name="Priya", last_name="Platform")
    upstream = f"orders-{uuid.uuid4().hex[:6]}"
    slug = f"churn-{uuid.uuid4().hex[:6]}"
    wid.wid_create(user=seller, data=wid_payload(slug=upstream, team=upstream_team.slug, name="Orders",
                                                 domain="sales", classification="internal", pii=False))
    wid.wid_submit(user=seller, slug=upstream)  # low risk: the policy approves it (no provisioning yet)
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]

    # A team member fills in the form and saves a draft.
    page = new_page(alice)
    page.goto("/products/new/")
    expect(page.get_by_role("heading", level=1)).to_have_text("New Work Initiation Document")
    fill_wid_form(page, Slug=slug, Name="Customer churn insights", Domain="growth", **{"Depends on": upstream})
    field(page, "Team").select_option("growth-analytics")
    field(page, "Classification").select_option("confidential")
    page.get_by_label("Holds personal data (PII)").check()
    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(f"/products/{slug}/$"))
    expect(page.get_by_role("status")).to_contain_text(f"Draft {slug} saved as version 1")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Customer churn insights")

    # ... and submits it; the policy leaves confidential data to a person.
    page.get_by_label("Note for the reviewers (optional)").fill("Ready for review.")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("submitted", re.I))
    assert Product.objects.get(slug=slug).status == "submitted"

    # A platform member approves it from the product page; approval starts an apply job. The worker
    # is paused meanwhile (SIGSTOP), so the job waits in the queue until its page is open: the
    # whole log then arrives on the open page, however fast terraform is.
    review = new_page(priya)
    review.goto(f"/products/{slug}/")
    expect(review.get_by_text("Policy said: needs a platform decision")).to_be_visible()
    review.get_by_label("Comment").fill("Looks good.")
    os.kill(celery_worker_process.pid, signal.SIGSTOP)
    try:
        review.get_by_role("button", name="Approve").click()
        expect(review.get_by_role("heading", level=1)).to_contain_text(re.compile("approved", re.I))
        job = Job.objects.get(product__slug=slug)
        review.get_by_role("link", name=f"#{job.pk}").first.click()
        expect(review).to_have_url(re.compile(f"/jobs/{job.pk}/$"))
        expect(review.locator("#job-status")).to_have_text("queued")
        review.evaluate(RECORD_LIVE_LOG)
    finally:
        os.kill(celery_worker_process.pid, signal.SIGCONT)

    # The job page follows the log live (it polls; the test never reloads it) to `succeeded`.
    expect(review.locator("#job-status")).to_have_text("succeeded", timeout=LONG)
    expect(review.locator("#job-log")).to_have_attribute("data-active", "0")  # the page's own reload, once done
    live = review.evaluate("sessionStorage.getItem('live-log') || ''")
    assert "Initializing" in live and "Apply complete! Resources: 3 added" in live, \
        f"the log did not grow on the open page: {live!r}"
    expect(review.locator("#job-log")).to_contain_text("Apply complete! Resources: 3 added")
    screenshot(review, "job-page")
    try:
        # The WID on the static site: status, provisioning and its lineage with the dependency.
        site = new_page(alice)
        wait_until(lambda: builder.published() and (builder.published() / "growth" / slug / "index.html").exists()
                   and "provisioned" in (builder.published() / "growth" / slug / "index.html").read_text(),
                   timeout=60, what="the WID with its provisioning on the site", log=e2e["log"])
        site.goto(f"/docs/growth/{slug}/")
        expect(site.get_by_role("heading", level=1)).to_contain_text("Customer churn insights")
        expect(site.locator(".wid-head .wid-badge")).to_have_text("approved")
        lineage = site.locator("svg.lineage-map")
        expect(lineage).to_be_visible()
        expect(lineage.locator(f'a[href*="/sales/{upstream}/"]')).to_contain_text("Orders")  # its dependency
        expect(site.locator(".lineage-text")).to_contain_text("Reads from: Orders")
        screenshot(site, "site-wid-page")
        # The upstream product's page names it downstream.
        site.goto(f"/docs/sales/{upstream}/")
        expect(site.locator(f'svg.lineage-map a[href*="/growth/{slug}/"]')).to_contain_text("Customer churn insights")
    finally:
        _destroy(priya, slug, e2e["log"])


def _destroy(priya, slug, log):
    if not Provisioning.objects.filter(product__slug=slug, provisioned=True).exists():
        return
    destroy = jobs.job_start(user=priya, product=Product.objects.get(slug=slug), action="destroy")
    wait_until(lambda: Job.objects.get(pk=destroy.pk).status == "planned", timeout=120, what="destroy plan", log=log)
    jobs.job_confirm(user=priya, job=Job.objects.get(pk=destroy.pk))
    wait_until(lambda: Job.objects.get(pk=destroy.pk).status == "succeeded", timeout=120, what="destroy", log=log)


def _commits(repo) -> int:
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return 0
    out = subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "--all"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def test_bad_input_shows_each_error_next_to_its_field_keeps_what_was_typed_and_saves_nothing(
        transactional_db, new_page, settings, tmp_path):
    settings.WID_REPO_PATH = tmp_path / "wid-repo"
    team = TeamFactory(slug="growth-analytics")
    alice = member_of(team, username="alice")
    page = new_page(alice)
    page.goto("/products/new/")
    fill_wid_form(page, Slug="Bad Slug!", Name="Kept name", Domain="",
                  **{"Business contact: e-mail": "not-an-email", "Architecture": "Kept **architecture**."})
    page.get_by_role("button", name="Save draft").click()

    expect(page.get_by_role("alert").first).to_contain_text("nothing was saved")
    for field_id, message in (("id_slug", "lowercase letters"), ("id_domain", "required"),
                              ("id_contacts_business_email", "valid email")):
        box = page.locator(f"#{field_id}")
        errors = page.locator(f"#{field_id}_error")
        expect(errors).to_be_visible()
        expect(errors).to_contain_text(re.compile(message, re.I))
        # Next to its field (same wrapper) and announced with it (aria-describedby, aria-invalid).
        assert errors.evaluate("(e, f) => e.parentElement === f.parentElement", box.element_handle())
        assert f"{field_id}_error" in (box.get_attribute("aria-describedby") or "").split()
        assert box.get_attribute("aria-invalid") == "true"
    expect(field(page, "Name")).to_have_value("Kept name")
    expect(field(page, "Slug")).to_have_value("Bad Slug!")
    expect(field(page, "Architecture")).to_have_value("Kept **architecture**.")
    expect(field(page, "Business contact: e-mail")).to_have_value("not-an-email")
    expect(page.locator("#id_name_error")).to_have_count(0)  # a good field carries no error
    assert not Product.objects.exists()
    assert _commits(settings.WID_REPO_PATH) == 0
    screenshot(page, "form-errors")


def test_a_member_of_another_team_cannot_edit_or_decide(transactional_db, new_page, settings, tmp_path):
    settings.WID_REPO_PATH = tmp_path / "wid-repo"
    team, other = TeamFactory(slug="growth-analytics"), TeamFactory(slug="finance-data")
    alice, oscar = member_of(team, username="alice"), member_of(other, username="oscar")
    wid.wid_create(user=alice, data=wid_payload(slug="customer-churn"))
    wid.wid_submit(user=alice, slug="customer-churn")
    page = new_page(oscar)
    assert page.goto("/products/customer-churn/edit/").status == 403
    page.goto("/products/customer-churn/")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    assert page.goto("/dashboard/").status == 403
