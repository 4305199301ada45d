"""Archives for real: the worker's code in-process (`job_run`), real terraform and the local provider,
pg_dump and pg_restore against the warehouse cluster, tar files on disk.

- a destroy whose archive cannot be written fails before Terraform deletes anything; its retry keeps
  its options and, once the archive can be written, archives (pg_restore --list shows the tables, the
  lake tar holds the file, the manifest's hashes match) and destroys; `restore_archive` brings the
  schemas, the row, the lake file and the pipeline repository back, refuses to overwrite without
  --force, restores beside them with a suffix, and refuses an archive changed since.

A destroy with archive: false, and one refused for its dependants, are in tests/e2e/test_destroy_archives.py.
"""
import hashlib
import json
import subprocess
import tarfile
import uuid
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from psycopg import sql

from onboarding import services as onboarding_services
from provisioning import archives, selectors, services
from provisioning.models import Archive, Job, Provisioning
from provisioning.rendering import private_schema, published_schema
from tests.factories import wid_payload

pytestmark = pytest.mark.django_db

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}


@pytest.fixture
def roots(settings, tmp_path):
    settings.LAKE_ROOT = tmp_path / "lake"
    settings.PIPELINES_ROOT = tmp_path / "pipelines"
    settings.ARCHIVE_ROOT = tmp_path / "archive"
    return tmp_path


def log_text(job) -> str:
    return "\n".join(line.text for line in services.job_log(job))


def run(job) -> Job:
    services.job_run(job.pk)
    job.refresh_from_db()
    return job


def run_destroy(platform, job) -> Job:
    """Plan, confirm and run a destroy job as the platform would."""
    job = run(job)
    assert job.status == "planned", log_text(job)
    return run(services.job_confirm(user=platform, job=job))


def admin():
    return psycopg.connect(**services.warehouse_admin(), autocommit=True, connect_timeout=5)


def schemas_of(slug, *, restored=False) -> set[str]:
    """The product's schemas; `restored`: with those restore_archive made beside them (suffixes)."""
    names = (private_schema(slug), published_schema(slug))
    with admin() as conn:
        return {name for (name,) in conn.execute("SELECT nspname FROM pg_namespace") if name in names
                or (restored and name.startswith(tuple(f"{n}_" for n in names)))}


@pytest.fixture
def provisioned(roots, member, platform):
    """`provisioned()`: a product applied for real, with a row in its own table, one in its published
    table and a file in its lake's raw/; whatever is left of it is dropped afterwards."""
    made = []

    def make():
        slug = f"arch-{uuid.uuid4().hex[:6]}"
        onboarding_services.wid_create(user=member, data=wid_payload(slug=slug, **LOW_RISK))
        product = onboarding_services.wid_submit(user=member, slug=slug)
        made.append(product)
        job = run(services.job_start(user=platform, product=product, action="apply"))
        assert job.status == "succeeded", log_text(job)
        creds = services.credentials_read(user=member, product=product)
        with psycopg.connect(host=creds["host"], port=creds["port"], dbname=creds["database"], user=creds["user"],
                             password=creds["password"], autocommit=True) as conn:
            conn.execute(f'CREATE TABLE "{creds["schema"]}".kept (id int, note text)')
            conn.execute(f"INSERT INTO \"{creds['schema']}\".kept VALUES (42, 'the answer')")
            conn.execute(f'CREATE TABLE "{creds["published_schema"]}".shown (id int)')
            conn.execute(f'INSERT INTO "{creds["published_schema"]}".shown VALUES (7)')
        (Path(creds["lake_path"]) / "raw" / "orders.csv").write_text("id,total\n1,9.50\n")
        return product

    yield make
    for product in made:
        if Provisioning.objects.filter(product=product, provisioned=True).exists():
            Job.objects.filter(product=product, status__in=Job.ACTIVE).update(status="cancelled")
            run_destroy(platform, services.job_start(user=platform, product=product, action="destroy", archive=False))
        with admin() as conn:
            for name in schemas_of(product.slug, restored=True):
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def test_a_destroy_archives_first_and_restore_archive_brings_it_all_back(settings, roots, provisioned, platform):
    product = provisioned()
    slug = product.slug
    repo_head = Provisioning.objects.get(product=product).outputs["pipeline_commit"]

    # ARCHIVE_ROOT cannot be written (a file where a folder should be; root writes anywhere else).
    (roots / "not-a-folder").write_text("")
    roots_archive = roots / "archive"
    settings.ARCHIVE_ROOT = roots / "not-a-folder" / "archive"
    failed = run_destroy(platform, services.job_start(user=platform, product=product, action="destroy",
                                                      force=True, destroy_reason="Moving to v2"))
    assert (failed.status, failed.step) == ("failed", "archive"), log_text(failed)
    assert "The archive failed" in failed.error and "nothing was destroyed" in failed.error
    assert schemas_of(slug) == {private_schema(slug), published_schema(slug)}  # nothing destroyed
    assert (roots / "lake" / slug / "raw" / "orders.csv").exists()
    assert Provisioning.objects.get(product=product).provisioned
    assert not Archive.objects.exists()

    settings.ARCHIVE_ROOT = roots_archive
    retried = services.job_retry(user=platform, job=failed)
    assert (retried.archive, retried.force, retried.destroy_reason) == (True, True, "Moving to v2")
    done = run_destroy(platform, retried)
    assert done.status == "succeeded", log_text(done)
    assert schemas_of(slug) == set() and not (roots / "lake" / slug).exists()
    log = log_text(done)
    assert log.index("Archiving") < log.index("Archived to") < log.rindex("Destroying")

    # The archive: one folder for the product and job, 0700, with what the manifest says.
    archive = Archive.objects.get()
    folder = Path(archive.path)
    assert folder == roots_archive / slug / f"job-{done.pk}"
    assert folder.stat().st_mode & 0o777 == 0o700
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["slug"], manifest["job"], manifest["requested_by"], manifest["reason"]) == (
        slug, done.pk, "priya", "Moving to v2")
    assert manifest["delete_after"] == archive.delete_after.isoformat()
    assert manifest["schemas"] == [private_schema(slug), published_schema(slug)]
    assert sorted(manifest["files"]) == ["lake.tar.gz", "pipeline.tar.gz", "schemas.dump"]
    for name, described in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == described["sha256"]
        assert (folder / name).stat().st_size == described["size"]
    listing = subprocess.run([archives.pg_binary("pg_restore"), "--list", str(folder / "schemas.dump")],
                             capture_output=True, text=True, check=True, timeout=30).stdout
    assert f"TABLE {private_schema(slug)} kept" in listing
    assert f"TABLE {published_schema(slug)} shown" in listing
    with tarfile.open(folder / "lake.tar.gz") as tar:
        assert tar.extractfile(f"{slug}/raw/orders.csv").read() == b"id,total\n1,9.50\n"
    with tarfile.open(folder / "pipeline.tar.gz") as tar:
        assert f"{slug}/.git/HEAD" in tar.getnames()
    summary = selectors.archive_summary(product)
    assert (summary["job"], summary["archive"]["path"], summary["reason"]) == (done.pk, str(folder), "Moving to v2")
    assert product.__class__.objects.get(pk=product.pk).status == "retired"

    # The WID stays on the site as a tombstone: retired when and by whom, the archive, the destroy's reason.
    from docs_site import generate

    product.refresh_from_db()
    page = generate.wid_pages(generate.load(), [slug])[generate.wid_page(product)]
    tombstone = page[page.index('id="tombstone"'):page.index("</div>", page.index('id="tombstone"'))]
    assert f"Destroyed by job #{done.pk}, asked by priya" in tombstone
    assert f"<strong>forced</strong> while others depended on it: Moving to v2" in tombstone
    assert f"Archived at <code>{folder}</code> until" in tombstone and "restore_archive" in tombstone
    assert "Depended on it: no other product." in tombstone

    # Restored: the schemas (with their rows), the lake file, the pipeline repository.
    call_command("restore_archive", slug)
    with admin() as conn:
        assert conn.execute(f'SELECT id, note FROM "{private_schema(slug)}".kept').fetchall() == [(42, "the answer")]
        assert conn.execute(f'SELECT id FROM "{published_schema(slug)}".shown').fetchall() == [(7,)]
    assert (roots / "lake" / slug / "raw" / "orders.csv").read_text() == "id,total\n1,9.50\n"
    head = subprocess.run(["git", "-C", str(roots / "pipelines" / slug), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert head == repo_head

    # What exists is never overwritten without --force; a suffix restores beside it.
    with pytest.raises(CommandError, match="exist"):
        call_command("restore_archive", slug)
    call_command("restore_archive", slug, "--into-schema-suffix", "copy")
    with admin() as conn:
        assert conn.execute(f'SELECT id FROM "{private_schema(slug)}_copy".kept').fetchall() == [(42,)]
    assert (roots / "lake" / f"{slug}_copy" / "raw" / "orders.csv").exists()
    with admin() as conn:
        conn.execute(f'INSERT INTO "{private_schema(slug)}".kept VALUES (43, \'after\')')
    call_command("restore_archive", slug, "--force")
    with admin() as conn:  # replaced by the archive's content
        assert conn.execute(f'SELECT id FROM "{private_schema(slug)}".kept').fetchall() == [(42,)]

    # An archive changed since it was made is refused before anything is touched.
    with open(folder / "lake.tar.gz", "r+b") as tampered:
        tampered.seek(100)
        byte = tampered.read(1)
        tampered.seek(100)
        tampered.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CommandError, match="sha256"):
        call_command("restore_archive", slug, "--force", "--into-schema-suffix", "other")
    assert not (roots / "lake" / f"{slug}_other").exists()
