"""Read access on the local target for real: a consumer's grant on a producer's published schema,
people's own logins on it, password rotation, and a state written by the provider before them.

Real Terraform 1.0.3, the Python provider from the mirror, the shared warehouse cluster. The
producer A and consumer B are applied once for the module and destroyed at its end; the tests
run in file order and each leaves them as it found them.
"""
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.test import override_settings
from psycopg import sql
from psycopg.conninfo import make_conninfo

from provisioning.rendering import COMPUTE_TIERS, render
from provisioning.toolchain import ensure_toolchain
from tests.provisioning.test_local_provider import (  # noqa: F401  (admin_dsn is a fixture)
    Product, admin_dsn, admin_query, product_dsn, spec_for,
)

ROOT = Path(__file__).resolve().parents[2]
DENIED = psycopg.errors.InsufficientPrivilege


class Platform:
    """Products rendered under one lake, pipelines root and mirror; `new(name)` renders and inits one."""

    def __init__(self, root: Path, admin_dsn: str, templates: Path | None = None):
        self.root, self.admin_dsn = root, admin_dsn
        self.templates = templates or settings.TERRAFORM_TEMPLATES
        self.products: list[Product] = []

    def overrides(self, terraform_home: str = "terraform"):
        return override_settings(LAKE_ROOT=self.root / "lake", PIPELINES_ROOT=self.root / "pipelines",
                                 TERRAFORM_HOME=self.root / terraform_home, TERRAFORM_TEMPLATES=self.templates)

    def new(self, name: str, **values) -> Product:
        slug = f"{name}-{uuid.uuid4().hex[:8]}"
        spec = dataclasses.replace(spec_for(slug), **values)
        with self.overrides():
            product = Product(spec, render(spec, workdir=self.root / "work" / slug), ensure_toolchain(),
                              self.admin_dsn)
        local_backend(product)
        product.terraform("init", "-input=false")
        self.products.append(product)
        return product

    def destroy_all(self) -> None:
        def destroy(product: Product) -> str:
            try:
                product.destroy()
            except AssertionError as exc:
                return str(exc)
            return ""

        with ThreadPoolExecutor(4) as pool:
            failures = [failure for failure in pool.map(destroy, [p for p in self.products if p.applied]) if failure]
        for each in self.products:
            print(f"{each.spec.slug}: " + ", ".join(f"{command} {seconds:.2f}s" for command, seconds in each.timings))
        assert not failures, "\n".join(failures)


def local_backend(product: Product) -> None:
    """State stays in the product's working directory, not in the portal's pg backend."""
    (product.workdir / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')


def apply(product: Product) -> str:
    """Apply, and the plan it printed before applying, with spaces collapsed (one plan fewer to run)."""
    result = product.terraform("apply", "-auto-approve", "-input=false")
    product.applied = True
    return " ".join(result.stdout.split())


def set_vars(product: Product, **values) -> None:
    path = product.workdir / "terraform.tfvars.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}, indent=2, sort_keys=True))


def role_of(slug: str) -> str:
    return "p_" + slug.replace("-", "_")


def login_dsn(outputs: dict, user: str, password: str) -> str:
    return make_conninfo(host=outputs["warehouse_host"], port=outputs["warehouse_port"],
                         dbname=outputs["warehouse_database"], user=user, password=password)


def in_utc(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def platform(tmp_path_factory, admin_dsn):
    platform = Platform(tmp_path_factory.mktemp("access"), admin_dsn)
    yield platform
    platform.destroy_all()


@pytest.fixture(scope="module")
def producer(platform):
    a = platform.new("prod")
    a.apply()
    return a


@pytest.fixture(scope="module")
def consumer(platform, producer):
    b = platform.new("cons", reads=(producer.spec.slug,))
    b.apply()
    return b


def test_a_consumer_reads_every_table_the_producer_publishes_later_and_can_write_none(producer, consumer, tmp_path):
    out_a, out_b = producer.outputs(), consumer.outputs()
    slug = producer.spec.slug
    published = "pub_" + slug.replace("-", "_")
    assert out_a["published_schema"] == published
    assert out_b["reads"] == {slug: {"schema": published, "curated_path": str(Path(out_a["lake_path"]) / "curated")}}
    assert out_b["reader_passwords"] == {}

    # Made after B's grant, by A's own role and by A's scaffolded pipeline publishing a table port.
    schema, private = sql.Identifier(published), sql.Identifier(out_a["storage_schema"])
    with psycopg.connect(product_dsn(out_a), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.facts (id int)").format(schema))
        conn.execute(sql.SQL("INSERT INTO {}.facts VALUES (1), (2)").format(schema))
        conn.execute(sql.SQL("CREATE TABLE {}.secrets (id int)").format(private))
    lake = Path(out_a["lake_path"])
    (lake / "raw" / "orders.csv").write_text("Id,Amount\n1,9.50\n2,3\n")
    run = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=out_a["pipeline_repo"], capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1",
             "LAKE_PATH": str(lake), "PRODUCT_DSN": product_dsn(out_a), "PUBLISHED_SCHEMA": published,
             "OUTPUT_PORTS": json.dumps([{"name": "orders", "kind": "table"}, {"name": "daily", "kind": "feed"}])})
    assert run.returncode == 0 and "published table port orders" in run.stdout, run.stdout + run.stderr
    assert (lake / "curated" / "daily" / "orders.csv").read_text().splitlines() == ["id,amount", "1,9.50", "2,3"]

    with psycopg.connect(product_dsn(out_b), autocommit=True) as conn:
        assert conn.execute(sql.SQL("SELECT id FROM {}.facts ORDER BY id").format(schema)).fetchall() == [(1,), (2,)]
        assert conn.execute(sql.SQL("SELECT line, record FROM {}.orders ORDER BY line").format(schema)).fetchall() == [
            (1, {"id": "1", "amount": "9.50"}), (2, {"id": "2", "amount": "3"})]
        for statement in ("INSERT INTO {pub}.facts VALUES (3)", "UPDATE {pub}.facts SET id = 4",
                          "DELETE FROM {pub}.orders", "TRUNCATE {pub}.facts", "CREATE TABLE {pub}.intruder (id int)",
                          "DROP TABLE {pub}.facts", "SELECT * FROM {private}.secrets",
                          "SELECT * FROM {private}.curated_records"):
            with pytest.raises(DENIED):
                conn.execute(sql.SQL(statement).format(pub=schema, private=private))

    # The scaffold's own tests publish too, given the schema the run executor passes.
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django"],
        cwd=out_a["pipeline_repo"], capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1",
             "PRODUCT_DSN": product_dsn(out_a), "PUBLISHED_SCHEMA": published})
    assert tests.returncode == 0 and "9 passed" in tests.stdout, tests.stdout + tests.stderr
    assert producer.plan()[0] == 0 and consumer.plan()[0] == 0


def test_a_grant_revoked_by_hand_is_drift_and_the_next_apply_grants_it_again(producer, consumer, admin_dsn):
    out_a, out_b = producer.outputs(), consumer.outputs()
    readers, role = "r_" + producer.spec.slug.replace("-", "_"), out_b["storage_role"]
    address = f'localplatform_grant.reads["{producer.spec.slug}"]'
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(readers), sql.Identifier(role)))
    with psycopg.connect(product_dsn(out_b), autocommit=True) as conn, pytest.raises(DENIED):
        conn.execute(sql.SQL("SELECT * FROM {}.facts").format(sql.Identifier(out_a["published_schema"])))

    refresh = consumer.terraform("plan", "-refresh-only", "-detailed-exitcode", "-input=false", ok=(2,))
    assert f"{address} has been deleted" in refresh.stdout
    plan = apply(consumer)
    assert f"{address} will be created" in plan and "Plan: 1 to add, 0 to change, 0 to destroy" in plan
    with psycopg.connect(product_dsn(out_b), autocommit=True) as conn:
        conn.execute(sql.SQL("SELECT * FROM {}.facts").format(sql.Identifier(out_a["published_schema"])))


def test_dropping_the_dependency_revokes_the_grant(producer, consumer):
    out_a, out_b = producer.outputs(), consumer.outputs()
    facts = sql.SQL("SELECT * FROM {}.facts").format(sql.Identifier(out_a["published_schema"]))
    set_vars(consumer, reads=[])
    try:
        assert "Plan: 0 to add, 0 to change, 1 to destroy" in apply(consumer)
        assert consumer.outputs()["reads"] == {}
        with psycopg.connect(product_dsn(out_b), autocommit=True) as conn, pytest.raises(DENIED):
            conn.execute(facts)
    finally:
        set_vars(consumer, reads=[producer.spec.slug])
        consumer.apply()
    with psycopg.connect(product_dsn(out_b), autocommit=True) as conn:
        conn.execute(facts)


def test_a_grant_on_a_producer_that_is_not_provisioned_or_on_itself_fails_clearly(producer, consumer):
    missing = f"nowhere-{uuid.uuid4().hex[:8]}"
    try:
        set_vars(consumer, reads=sorted([producer.spec.slug, missing]))
        failed = consumer.terraform("apply", "-auto-approve", "-input=false", ok=(1,))
        assert f"{missing} is not provisioned" in " ".join(failed.stderr.split())
        set_vars(consumer, reads=[consumer.spec.slug])
        failed = consumer.terraform("plan", "-input=false", ok=(1,))
        assert "cannot be granted its own ports" in " ".join(failed.stderr.split())
    finally:
        set_vars(consumer, reads=[producer.spec.slug])


def test_a_reader_reads_the_published_schema_only_until_its_time_runs_out(producer, admin_dsn):
    out = producer.outputs()
    name = f"a_{uuid.uuid4().int % 10**12}"
    published, private = sql.Identifier(out["published_schema"]), sql.Identifier(out["storage_schema"])
    set_vars(producer, readers=[{"name": name, "valid_until": in_utc(3600)}])
    producer.apply()
    password = producer.outputs()["reader_passwords"][name]
    assert admin_query(admin_dsn, "SELECT rolconnlimit, rolcanlogin FROM pg_roles WHERE rolname = %s", [name]) == [
        (2, True)]

    with psycopg.connect(login_dsn(out, name, password), autocommit=True) as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}.facts").format(published)).fetchone() == (2,)
        for statement in ("INSERT INTO {pub}.facts VALUES (3)", "CREATE TABLE {pub}.intruder (id int)",
                          "SELECT * FROM {private}.curated_records", "CREATE TABLE public.intruder (id int)"):
            with pytest.raises(DENIED):
                conn.execute(sql.SQL(statement).format(pub=published, private=private))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(login_dsn(out, name, "not-the-password")).close()

    # Changed by hand: its membership and date are put back, with the same password.
    readers = "r_" + producer.spec.slug.replace("-", "_")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(readers), sql.Identifier(name)))
        conn.execute(sql.SQL("ALTER ROLE {} VALID UNTIL 'infinity'").format(sql.Identifier(name)))
    plan = apply(producer)
    assert f'+ role = "{name}"' in plan and '+ valid_until = "' in plan
    assert "Plan: 0 to add, 1 to change, 0 to destroy" in plan
    with psycopg.connect(login_dsn(out, name, password), autocommit=True) as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}.facts").format(published)).fetchone() == (2,)

    # A new date is changed in place; after it, the password is refused.
    until = in_utc(3)
    set_vars(producer, readers=[{"name": name, "valid_until": until}])
    plan = apply(producer)
    assert f'-> "{until}"' in plan and "Plan: 0 to add, 1 to change, 0 to destroy" in plan
    assert producer.outputs()["reader_passwords"] == {name: password}
    time.sleep(max(0.0, (datetime.strptime(until, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                         - datetime.now(timezone.utc)).total_seconds()) + 1)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(login_dsn(out, name, password)).close()

    set_vars(producer, readers=[])
    producer.apply()
    assert admin_query(admin_dsn, "SELECT 1 FROM pg_roles WHERE rolname = %s", [name]) == []
    assert producer.outputs()["reader_passwords"] == {}


def test_rotation_refuses_the_old_password_and_a_tier_change_keeps_it(producer, admin_dsn):
    before = producer.outputs()
    facts = sql.SQL("SELECT count(*) FROM {}.facts").format(sql.Identifier(before["published_schema"]))
    set_vars(producer, password_generation=1)
    plan = apply(producer)
    assert "~ password = (sensitive value)" in plan and "Plan: 0 to add, 1 to change, 0 to destroy" in plan

    rotated = producer.outputs()
    assert rotated["storage_password"] != before["storage_password"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(product_dsn(before)).close()
    with psycopg.connect(product_dsn(rotated), autocommit=True) as conn:
        assert conn.execute(facts).fetchone() == (2,)

    set_vars(producer, compute_tier="medium", **COMPUTE_TIERS["medium"])
    plan = apply(producer)
    assert "~ password" not in plan and "Plan: 0 to add, 1 to change, 0 to destroy" in plan
    assert producer.outputs()["storage_password"] == rotated["storage_password"]
    with psycopg.connect(product_dsn(rotated), autocommit=True) as conn:
        assert conn.execute(facts).fetchone() == (2,)
    assert admin_query(admin_dsn, "SELECT rolconnlimit FROM pg_roles WHERE rolname = %s",
                       [rotated["storage_role"]]) == [(COMPUTE_TIERS["medium"]["connection_limit"],)]


def test_published_parts_changed_by_hand_are_repaired_in_place(producer, consumer, admin_dsn):
    out_a, out_b = producer.outputs(), consumer.outputs()
    slug = producer.spec.slug
    published, readers = sql.Identifier(out_a["published_schema"]), sql.Identifier("r_" + slug.replace("-", "_"))
    other = sql.Identifier(out_b["storage_role"])
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT INSERT ON {}.facts TO {}").format(published, readers))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA {} TO {}").format(published, other))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(out_a["storage_schema"]),
                                                                   readers))
    plan = apply(producer)
    assert f'+ published_schema = "{out_a["published_schema"]}"' in plan
    assert f'+ readers_role = "r_{slug.replace("-", "_")}"' in plan and "0 to add, 1 to change, 0 to destroy" in plan
    assert producer.plan()[0] == 0
    with psycopg.connect(product_dsn(out_b), autocommit=True) as conn:
        conn.execute(sql.SQL("SELECT * FROM {}.facts").format(published))
        for statement in ("INSERT INTO {pub}.facts VALUES (3)", "CREATE TABLE {pub}.intruder (id int)"):
            with pytest.raises(DENIED):
                conn.execute(sql.SQL(statement).format(pub=published))


def previous_provider_commit() -> str | None:
    """The last commit whose storage resource knew nothing of published schemas."""
    path = "terraform_templates/provider/localplatform/storage.py"
    log = subprocess.run(["git", "-C", str(ROOT), "log", "--format=%H", "--", "terraform_templates"],
                         capture_output=True, text=True)
    for commit in log.stdout.split():
        shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0 and "published_schema" not in shown.stdout:
            return commit
    return None


def test_a_product_applied_by_the_previous_provider_is_updated_in_place_keeping_its_password(tmp_path, admin_dsn):
    commit = previous_provider_commit()
    if commit is None:
        pytest.skip("no git history with the previous provider")
    old_templates = tmp_path / "previous"
    old_templates.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "terraform_templates"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_templates)], input=archive, check=True)
    old = Platform(tmp_path, admin_dsn, templates=old_templates / "terraform_templates")
    product = old.new("upgr")
    try:
        product.apply()
        before = product.outputs()
        assert "published_schema" not in before
        with psycopg.connect(product_dsn(before), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE TABLE {}.facts (id int)").format(sql.Identifier(before["storage_schema"])))

        # The same working directory re-rendered from today's templates, with today's mirror (the
        # state stays: the portal's is in the pg backend, which rendering does not touch).
        state = (product.workdir / "terraform.tfstate").read_bytes()
        with Platform(tmp_path, admin_dsn).overrides(terraform_home="terraform-new"):
            render(product.spec, workdir=product.workdir)
            product.toolchain = ensure_toolchain()
        (product.workdir / "terraform.tfstate").write_bytes(state)
        product.env = {**product.env, **product.toolchain.env}
        local_backend(product)
        product.terraform("init", "-input=false")
        plan = apply(product)
        assert "module.storage.localplatform_storage.this will be updated in-place" in plan
        assert "+ password_generation = 0" in plan and "Plan: 0 to add," in plan and ", 0 to destroy" in plan
        assert product.plan()[0] == 0

        after = product.outputs()
        assert after["storage_password"] == before["storage_password"]
        assert after["published_schema"] == "pub_" + product.spec.slug.replace("-", "_")
        with psycopg.connect(product_dsn(after), autocommit=True) as conn:
            conn.execute(sql.SQL("SELECT * FROM {}.facts").format(sql.Identifier(after["storage_schema"])))
            conn.execute(sql.SQL("CREATE TABLE {}.facts (id int)").format(sql.Identifier(after["published_schema"])))
    finally:
        old.destroy_all()
    slug = product.spec.slug.replace("-", "_")
    assert admin_query(admin_dsn, "SELECT rolname FROM pg_roles WHERE rolname IN (%s, %s)",
                       [f"p_{slug}", f"r_{slug}"]) == []
    assert admin_query(admin_dsn, "SELECT nspname FROM pg_namespace WHERE nspname IN (%s, %s)",
                       [f"p_{slug}", f"pub_{slug}"]) == []
