"""The disk under the site or under Terraform's working directories full, for real: a small tmpfs
mounted there and filled up. A build or job fails saying the disk is full, the published site
stays as it was and is served, nothing is half-applied, and once space is freed the next build or
retry succeeds.
"""
import errno
import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from docs_site import builder, services as site_services
from docs_site.models import SiteBuild
from onboarding import services as onboarding_services
from onboarding.models import Product
from provisioning import services
from provisioning.models import Job
from tests.factories import wid_payload
from tests.provisioning.test_local_provider import admin_dsn  # noqa: F401  (fixture)
from tests.provisioning.test_provider_adoption import count_of_each
from tests.worker import _ensure_database

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB file system of its own (a tmpfs), and `fill()` / `free()` to use up and give back its space."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here (needs root and mount rights): {mounted.stderr}")
    yield Disk(mount)
    subprocess.run(["umount", "-l", str(mount)], check=True)


class Disk:
    def __init__(self, mount: Path):
        self.mount, self.filler = mount, mount / "filler"

    def fill(self, *, leave: int = 0) -> None:
        """Write a filler file until the file system refuses, then give `leave` bytes back."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
            if leave:
                os.ftruncate(fd, os.fstat(fd).st_size - leave)
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _request_and_run_build() -> SiteBuild:
    site_services.site_request_build("test")
    build = SiteBuild.objects.get(status="queued")
    try:
        site_services.site_build(build.pk)
    except Exception:
        pass  # the worker's task raises too (Celery logs it); the row says what happened
    build.refresh_from_db()
    return build


def _edit(member, slug: str, architecture: str, *, padding: int = 0) -> None:
    """Change a section; `padding` bytes of text in each of the other sections make the page that big."""
    product = Product.objects.get(slug=slug)
    sections = {"architecture": architecture}
    if padding:
        sections |= {name: "Long text. " * (padding // 33) for name in
                     ("value_proposition", "integration_points", "data_surfacing")}
    onboarding_services.wid_update(user=member, slug=slug, data={"version": product.version, "sections": sections})


@pytest.mark.parametrize("leave", [0, 300_000], ids=["nothing-left", "room-for-sources-not-the-site"])
def test_a_full_disk_under_the_site_fails_the_build_clearly_and_leaves_the_published_site_served(
        client, member, settings, small_disk, leave):
    settings.WID_SITE_ROOT = small_disk.mount / "site"
    for slug in ("customer-churn", "web-sessions"):
        onboarding_services.wid_create(user=member, data=wid_payload(slug=slug))
    assert _request_and_run_build().status == "succeeded"
    published = builder.published()
    before = _tree(published)
    small_disk.fill(leave=leave)

    # An edit (an incremental build) big enough that its page cannot fit, then a new WID (a full build).
    _edit(member, "web-sessions", "Now streaming.", padding=240_000)
    edited = _request_and_run_build()
    onboarding_services.wid_create(user=member, data=wid_payload(slug="orders-core", domain="sales"))
    added = _request_and_run_build()

    assert builder.published() == published and _tree(published) == before
    for build in (edited, added):
        assert build.status == "failed", build.error
        assert "No space left on device" in build.error and str(settings.WID_SITE_ROOT) in build.error
        assert "No space left on device" in "\n".join(build.lines.values_list("text", flat=True))
    client.force_login(member)
    response = client.get("/docs/growth/web-sessions/")
    assert response.status_code == 200 and b"Now streaming." not in b"".join(response.streaming_content)

    small_disk.free()
    rebuilt = _request_and_run_build()

    assert (rebuilt.status, rebuilt.kind) == ("succeeded", "full"), rebuilt.error
    assert "Now streaming." in (builder.published() / "growth/web-sessions/index.html").read_text()
    assert (builder.published() / "sales/orders-core/index.html").exists()
    assert len(list((settings.WID_SITE_ROOT / "builds").glob("*[0-9]"))) <= 2  # failed builds left nothing


@pytest.mark.parametrize("manifest", ['{"version": 1, "pages": ["index.md", "gro', "", "[]", '{"pages": 3}'],
                         ids=["truncated", "empty", "not-an-object", "wrong-types"])
def test_a_damaged_site_manifest_makes_the_next_build_a_full_one_instead_of_failing(
        member, settings, tmp_path, manifest):
    settings.WID_SITE_ROOT = tmp_path / "site"
    onboarding_services.wid_create(user=member, data=wid_payload(slug="customer-churn"))
    builder.build()
    (settings.WID_SITE_ROOT / "manifest.json").write_text(manifest)
    _edit(member, "customer-churn", "Now streaming.")

    result = builder.build()

    assert result.kind == "full"
    assert "Now streaming." in (builder.published() / "growth/customer-churn/index.html").read_text()
    assert builder.build().kind == "unchanged"  # and the manifest it wrote is whole again


@pytest.mark.parametrize("room", [0, 1], ids=["nothing-left", "room-to-render-not-to-init"])
def test_a_full_disk_under_the_working_directories_fails_the_job_clearly_and_a_retry_after_space_is_freed_applies(
        member, platform, settings, small_disk, admin_dsn, room):  # noqa: F811
    _ensure_database(settings.TF_STATE_DATABASE_URL)
    settings.TERRAFORM_WORKDIR = small_disk.mount / "tf-work"
    slug = f"disk-{uuid.uuid4().hex[:6]}"
    onboarding_services.wid_create(user=member, data=wid_payload(slug=slug, **LOW_RISK))
    product = onboarding_services.wid_submit(user=member, slug=slug)
    # A page for each file the render writes: it fits, and terraform's own files do not.
    small_disk.fill(leave=room * 4096 * (len([p for p in (settings.TERRAFORM_TEMPLATES / "local").rglob("*")
                                               if p.is_file()]) + 1))

    job = services.job_start(user=platform, product=product, action="apply")
    services.job_run(job.pk)
    job.refresh_from_db()

    assert job.status == "failed"
    assert "no space left on device" in job.error.lower() and str(settings.TERRAFORM_WORKDIR) in job.error, job.error
    assert count_of_each(admin_dsn, slug) == {"roles": 0, "schemas": 0, "queues": 0}  # nothing half-applied

    small_disk.free()
    retry = services.job_retry(user=platform, job=job)
    services.job_run(retry.pk)
    retry.refresh_from_db()

    log = "\n".join(line.text for line in services.job_log(retry))
    assert retry.status == "succeeded", log
    assert count_of_each(admin_dsn, slug) == {"roles": 1, "schemas": 1, "queues": 1}
    assert Job.objects.filter(product=product, status__in=Job.ACTIVE).count() == 0
