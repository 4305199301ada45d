"""A destroy's options through the API and the services, without terraform: who may destroy, the 409
that lists the live products depending on it, force with a reason, archive: false, retries that keep
the options, the archive sweep and the tombstone's selector. (tests/provisioning/test_archives.py makes
and restores archives for real.)"""
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from onboarding import services as onboarding_services
from provisioning import archives, selectors, services
from provisioning.models import Archive, Job
from tests.factories import TeamFactory, member_of, wid_payload

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def producer(member):
    onboarding_services.wid_create(user=member, data=wid_payload(slug="orders", **LOW_RISK))
    return onboarding_services.wid_submit(user=member, slug="orders")


@pytest.fixture
def consumer_team():
    return TeamFactory(slug="sales-ops")


@pytest.fixture
def consumer_member(consumer_team):
    return member_of(consumer_team, username="carol")


def approved_consumer(user, slug="sales", **overrides):
    onboarding_services.wid_create(user=user, data=wid_payload(slug=slug, team="sales-ops", depends_on=["orders"],
                                                               **{**LOW_RISK, **overrides}))
    return onboarding_services.wid_submit(user=user, slug=slug)


def destroy(api, user, slug="orders", **options):
    return api(user).post(f"/api/v1/products/{slug}/jobs/", {"action": "destroy", **options}, format="json")


def log_of(job):
    return "\n".join(line.text for line in services.job_log(job))


def test_a_destroy_of_a_product_that_live_products_read_answers_409_listing_them(api, platform, producer,
                                                                                 consumer_member):
    approved_consumer(consumer_member, "sales")
    approved_consumer(consumer_member, "billing")

    response = destroy(api, platform)

    assert response.status_code == 409
    body = response.json()
    assert body["dependants"] == ["billing", "sales"]
    assert "billing, sales" in body["detail"] and "force" in body["detail"]
    assert not Job.objects.exists()


def test_only_live_versions_count_as_dependants(api, platform, producer, consumer_member):
    # A draft that was never approved reads nothing yet; a retired product nothing any more.
    onboarding_services.wid_create(user=consumer_member, data=wid_payload(
        slug="draft-reader", team="sales-ops", depends_on=["orders"], **LOW_RISK))
    # An approved reader whose open amendment drops the dependency still reads it: the amendment is not live.
    reader = approved_consumer(consumer_member, "sales")
    onboarding_services.wid_update(user=consumer_member, slug="sales",
                                   data={"version": reader.version, "depends_on": []})

    assert services.live_dependants(producer) == ["sales"]
    assert destroy(api, platform).json()["dependants"] == ["sales"]


def test_force_without_a_reason_answers_400_naming_reason(api, platform, producer, consumer_member):
    approved_consumer(consumer_member)

    for body in ({"force": True}, {"force": True, "reason": "  \n "}):
        response = destroy(api, platform, **body)
        assert response.status_code == 400
        assert list(response.json()["errors"]) == ["reason"]
    assert not Job.objects.exists()


def test_the_platform_forces_a_destroy_with_a_reason_recorded_on_the_job_and_in_its_log(api, platform, producer,
                                                                                        consumer_member):
    approved_consumer(consumer_member)

    response = destroy(api, platform, force=True, reason="Replaced by orders-v2; sales moves next week.")

    assert response.status_code == 202
    body = response.json()["destroy"]
    assert body == {"archive": True, "force": True, "reason": "Replaced by orders-v2; sales moves next week.",
                    "dependants": ["sales"], "archived": None}
    job = Job.objects.get()
    assert (job.force, job.archive, job.dependants) == (True, True, ["sales"])
    assert "forced although sales depend(s) on it; reason: Replaced by orders-v2" in log_of(job)


def test_members_and_owners_cannot_destroy_forced_or_not(api, member, owner, producer, consumer_member):
    approved_consumer(consumer_member)

    for user in (member, owner):
        assert destroy(api, user).status_code == 403
        assert destroy(api, user, force=True, reason="mine").status_code == 403
        assert destroy(api, user, archive=False).status_code == 403
    assert not Job.objects.exists()


def test_a_destroy_without_an_archive_is_recorded(api, platform, producer):
    response = destroy(api, platform, archive=False)

    assert response.status_code == 202
    assert response.json()["destroy"]["archive"] is False
    job = Job.objects.get()
    assert job.archive is False
    assert "no archive (archive: false)" in log_of(job)


def test_a_cloud_product_is_destroyed_only_without_an_archive(api, member, platform):
    onboarding_services.wid_create(user=member, data=wid_payload(slug="in-aws", target="aws", **LOW_RISK))
    onboarding_services.wid_submit(user=member, slug="in-aws")

    refused = destroy(api, platform, slug="in-aws")
    assert refused.status_code == 400 and list(refused.json()["errors"]) == ["archive"]
    assert destroy(api, platform, slug="in-aws", archive=False).status_code == 202


@pytest.mark.parametrize("body, field", [
    ({"action": "plan", "force": True, "reason": "x"}, "force"),
    ({"action": "apply", "archive": False}, "archive"),
    ({"action": "plan", "reason": "why"}, "reason"),
    ({"action": "destroy", "force": "yes", "reason": "x"}, "force"),
    ({"action": "destroy", "archive": 0}, "archive"),
    ({"action": "destroy", "force": True, "reason": 7}, "reason"),
    ({"action": "destroy", "force": True, "reason": "bad\x00byte"}, "reason"),
    ({"action": "destroy", "forse": True}, "forse"),
])
def test_bad_options_answer_400_naming_the_field_and_start_nothing(api, platform, producer, body, field):
    response = api(platform).post("/api/v1/products/orders/jobs/", body, format="json")

    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == [field]
    assert not Job.objects.exists()


def test_a_retried_destroy_keeps_its_options(api, platform, producer, consumer_member):
    approved_consumer(consumer_member)
    first = Job.objects.get(pk=destroy(api, platform, force=True, reason="Moved to v2", archive=False).json()["id"])
    Job.objects.filter(pk=first.pk).update(status=Job.Status.FAILED, finished_at=timezone.now())

    response = api(platform).post(f"/api/v1/jobs/{first.pk}/retry/")

    assert response.status_code == 202
    retried = Job.objects.get(pk=response.json()["id"])
    assert (retried.retry_of_id, retried.action) == (first.pk, "destroy")
    assert (retried.archive, retried.force, retried.destroy_reason) == (False, True, "Moved to v2")
    assert response.json()["destroy"]["reason"] == "Moved to v2"


def test_a_retry_of_an_unforced_destroy_is_refused_once_a_product_depends_on_it(api, platform, producer,
                                                                                consumer_member):
    first = Job.objects.get(pk=destroy(api, platform).json()["id"])
    Job.objects.filter(pk=first.pk).update(status=Job.Status.FAILED, finished_at=timezone.now())
    approved_consumer(consumer_member)

    response = api(platform).post(f"/api/v1/jobs/{first.pk}/retry/")

    assert response.status_code == 409
    assert response.json()["dependants"] == ["sales"]


def _archive_on_disk(product, job, *, days_left: int) -> Archive:
    folder = archives.folder_for(product.slug, job.pk)
    folder.mkdir(parents=True)
    (folder / "schemas.dump").write_bytes(b"dump")
    (folder / archives.MANIFEST).write_text(json.dumps({"slug": product.slug, "job": job.pk, "files": {}}))
    now = timezone.now()
    return Archive.objects.create(product=product, job=job, path=str(folder), created_at=now - timedelta(days=90),
                                  delete_after=now + timedelta(days=days_left), size=4,
                                  manifest={"slug": product.slug, "job": job.pk, "files": {}, "missing": []})


def test_the_sweep_deletes_only_archives_past_their_retention_date(settings, tmp_path, platform, producer):
    settings.ARCHIVE_ROOT = tmp_path / "archive"
    jobs = [Job.objects.create(product=producer, action="destroy", status="failed") for _ in range(3)]
    expired = _archive_on_disk(producer, jobs[0], days_left=-1)
    kept = _archive_on_disk(producer, jobs[1], days_left=5)
    # A folder that does not hold its row's manifest (a hand-made one, a moved root) is left alone.
    strange = _archive_on_disk(producer, jobs[2], days_left=-1)
    (tmp_path / "archive" / "orders" / f"job-{jobs[2].pk}" / archives.MANIFEST).write_text("{}")

    assert archives.archives_sweep() == 1

    expired.refresh_from_db(), kept.refresh_from_db(), strange.refresh_from_db()
    assert expired.deleted_at is not None and not Path(expired.path).exists()
    assert kept.deleted_at is None and Path(kept.path).exists()
    assert strange.deleted_at is None and Path(strange.path).exists()
    assert archives.archives_sweep() == 0  # once


def test_the_beat_schedule_sweeps_archives():
    from portal.settings import base

    assert base.CELERY_BEAT_SCHEDULE["sweep-archives"]["task"] == "provisioning.tasks.sweep_archives"
    from provisioning import tasks

    assert tasks.sweep_archives.name == "provisioning.tasks.sweep_archives"


def test_archive_summary_and_the_job_api_give_the_archive_and_dependants(api, settings, tmp_path, platform, producer):
    settings.ARCHIVE_ROOT = tmp_path / "archive"
    assert selectors.archive_summary(producer) is None
    job = Job.objects.create(product=producer, action="destroy", status="succeeded", requested_by=platform,
                             force=True, destroy_reason="Replaced", dependants=["sales"], finished_at=timezone.now())
    archive = _archive_on_disk(producer, job, days_left=30)

    summary = selectors.archive_summary(producer)

    assert (summary["job"], summary["requested_by"], summary["force"], summary["reason"]) == (
        job.pk, "priya", True, "Replaced")
    assert summary["dependants"] == ["sales"]
    assert summary["archive"]["path"] == archive.path
    assert summary["archive"]["delete_after"] == archive.delete_after
    assert [a["id"] for a in summary["archives"]] == [archive.pk]
    body = api(platform).get(f"/api/v1/jobs/{job.pk}/").json()["destroy"]
    assert body["archived"]["path"] == archive.path
    assert body["archived"]["delete_after"] == archive.delete_after.isoformat().replace("+00:00", "Z")
    assert body["dependants"] == ["sales"]


def test_the_product_pages_destroy_form_takes_the_same_options(client, platform, producer, consumer_member):
    from provisioning.models import Provisioning

    Provisioning.objects.create(product=producer, provisioned=True)
    approved_consumer(consumer_member)
    client.force_login(platform)
    page = client.get("/products/orders/").content.decode()
    assert 'name="force"' in page and 'name="reason"' in page and 'name="no_archive"' in page

    refused = client.post("/products/orders/jobs/", {"action": "destroy"}, follow=True)
    assert "Live products depend on orders: sales" in refused.content.decode()
    assert not Job.objects.exists()

    started = client.post("/products/orders/jobs/", {"action": "destroy", "force": "1", "reason": "Replaced",
                                                     "no_archive": "1"})
    job = Job.objects.get()
    assert started["Location"] == f"/jobs/{job.pk}/"
    assert (job.archive, job.force, job.destroy_reason, job.dependants) == (False, True, "Replaced", ["sales"])
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "none (archive: false)" in page and "Replaced" in page and "sales" in page
