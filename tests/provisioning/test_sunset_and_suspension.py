"""Suspension and the sunset, provisioning's side (docs/adr/0024), fast: real git and PostgreSQL, no
worker (the jobs suspension starts are rows here; tests/e2e/test_suspension.py applies them for real)."""
from datetime import date, timedelta

import pytest

from onboarding import services as onboarding_services
from portal.errors import Conflict
from provisioning import rendering, runs, selectors, services
from provisioning.models import Job, Provisioning
from tests.onboarding.test_issue12_contract import SUNSET, act, approved, stored

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_target(settings):
    settings.WID_REFERENCE_CHECKS = []
    settings.PROVISION_ON_APPROVAL_TARGETS = []  # approval starts no job here: the tests count their own


def provisioned(slug):
    Provisioning.objects.update_or_create(product=approved_product(slug), defaults={
        "provisioned": True, "outputs": {"queue": f"runs.{slug}"}})


def approved_product(slug):
    from onboarding.models import Product

    return Product.objects.get(slug=slug)


def test_suspending_a_provisioned_product_applies_it_by_itself_and_resuming_too(api, member, platform):
    approved(api, member)
    provisioned("customer-churn")
    product = approved_product("customer-churn")
    assert rendering.tfvars(services.product_spec(product))["suspended"] is False

    act(api, platform, "suspend", comment="Who reads it?")

    job = Job.objects.get(product=product)
    assert (job.action, job.origin, job.reason) == ("apply", "access", "suspended by priya")
    product.refresh_from_db()
    assert rendering.tfvars(services.product_spec(product))["suspended"] is True
    with pytest.raises(Conflict, match="suspended"):
        runs.run_start(user=member, product=product)

    Job.objects.filter(pk=job.pk).update(status="succeeded")
    act(api, platform, "resume")
    resumed = Job.objects.filter(product=product).exclude(pk=job.pk).get()
    assert (resumed.origin, resumed.reason) == ("access", "resumed by priya")
    product.refresh_from_db()
    assert rendering.tfvars(services.product_spec(product))["suspended"] is False


def test_suspending_a_product_that_was_never_provisioned_starts_no_job(api, member, platform):
    approved(api, member)
    act(api, platform, "suspend")
    assert not Job.objects.exists()


def test_past_its_sunset_a_product_is_suspended_and_listed_for_the_platform_to_destroy(api, client, member,
                                                                                     platform):
    approved(api, member)
    approved(api, member, slug="churn-reader", depends_on=["customer-churn"])
    provisioned("customer-churn")
    act(api, member, "deprecate", sunset=SUNSET)
    sunset = date.fromisoformat(SUNSET)
    assert selectors.due_for_destroy(today=sunset - timedelta(days=1)) == []

    assert onboarding_services.suspend_at_sunset(today=sunset) == ["customer-churn"]

    assert Job.objects.get(product__slug="customer-churn").origin == "access"  # its access goes off
    due = selectors.due_for_destroy(today=sunset)
    assert [(d["slug"], d["suspended"], d["dependants"]) for d in due] == [
        ("customer-churn", True, ["churn-reader"])]
    from onboarding.models import Product

    Product.objects.filter(slug="customer-churn").update(sunset=date.today())  # the page judges by today
    client.force_login(platform)
    page = client.get("/dashboard/").content.decode()
    section = page[page.index('id="due"'):page.index('id="unused"')]
    assert "due for destroy (1)" in section and "<td>suspended</td>" in section
    assert 'href="/products/churn-reader/">churn-reader</a>' in section


def test_every_beat_tick_names_a_task_the_worker_has():
    """A tick naming a task nobody registered would be dropped by the worker without a word."""
    from portal.celery import app
    from portal.settings import base

    app.loader.import_default_modules()
    missing = {name: tick["task"] for name, tick in base.CELERY_BEAT_SCHEDULE.items() if tick["task"] not in app.tasks}
    assert missing == {}
    assert base.CELERY_BEAT_SCHEDULE["suspend-at-sunset"]["task"] == "onboarding.tasks.suspend_at_sunset"


def test_a_hostile_suspension_comment_leaves_history_site_and_index_whole(api, member, platform):
    from django.core.management import call_command

    from docs_site import generate
    from onboarding import selectors as onboarding_selectors
    from onboarding.services import index_check

    approved(api, member)
    hostile = "Who reads?\u2028\u0085 <script>x</script>\x1b[31m"
    response = act(api, platform, "suspend", comment=hostile)
    assert response.status_code == 200 and response.json()["suspended"] is True, response.json()
    assert stored().reviews[-1].comment == hostile  # kept as written: the file parses back to it
    product = approved_product("customer-churn")
    assert len(onboarding_selectors.product_history(product)) >= 2
    page = generate.wid_pages(generate.load(), ["customer-churn"])[generate.wid_page(product)]
    assert "<script>x" not in page and "\x1b" not in page
    call_command("rebuild_index")
    assert index_check() == []
