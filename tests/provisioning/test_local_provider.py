"""The local target for real: Terraform 1.0.3, the Python provider from the mirror, the warehouse cluster.

Each test renders products into tmp_path with a local state backend, applies them, and destroys
them again in a finalizer, so the shared warehouse keeps nothing of theirs.
"""
import dataclasses
import json
import os
import runpy
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hcl2
import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from psycopg import sql
from psycopg.conninfo import make_conninfo

from provisioning.rendering import ProductSpec, render, tfvars
from provisioning.toolchain import ensure_toolchain

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def admin_dsn():
    from django.conf import settings

    runpy.run_path(str(ROOT / "scripts" / "services.py"))["ensure_warehouse"]()
    password = Path(settings.WAREHOUSE_ADMIN_PASSWORD_FILE).read_text().strip()
    return make_conninfo(host="127.0.0.1", port=settings.WAREHOUSE_PORT, dbname=settings.WAREHOUSE_DATABASE,
                         user="warehouse_admin", password=password)


class Product:
    """One product's working directory and the terraform commands the tests run in it."""

    def __init__(self, spec: ProductSpec, workdir: Path, toolchain, admin_dsn: str):
        self.spec, self.workdir, self.toolchain = spec, workdir, toolchain
        self.env = {**toolchain.env, "LOCALPLATFORM_WAREHOUSE_DSN": admin_dsn}
        self.timings: list[tuple[str, float]] = []
        self.applied = False

    def terraform(self, *args: str, ok=(0,)) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = subprocess.run([str(self.toolchain.binary), *args, "-no-color"], cwd=self.workdir, env=self.env,
                                capture_output=True, text=True, timeout=120)
        self.timings.append((args[0], time.monotonic() - started))
        assert result.returncode in ok, f"terraform {' '.join(args)} exited {result.returncode}:\n" \
                                        f"{result.stdout}\n{result.stderr}"
        return result

    def apply(self) -> None:
        self.terraform("apply", "-auto-approve", "-input=false")
        self.applied = True

    def plan(self) -> tuple[int, str]:
        """The exit code (0: nothing to do, 2: changes) and the plan's text with spaces collapsed."""
        result = self.terraform("plan", "-detailed-exitcode", "-input=false", ok=(0, 2))
        return result.returncode, " ".join(result.stdout.split())

    def destroy(self) -> None:
        self.terraform("destroy", "-auto-approve", "-input=false")
        self.applied = False

    def outputs(self) -> dict:
        return {name: output["value"] for name, output in json.loads(self.terraform("output", "-json").stdout).items()}


@pytest.fixture
def local_platform(settings, tmp_path, admin_dsn):
    """`local_platform(name)` renders and inits a product with a unique slug; all are destroyed at the end."""
    settings.LAKE_ROOT = tmp_path / "lake"
    settings.PIPELINES_ROOT = tmp_path / "pipelines"
    settings.TERRAFORM_HOME = tmp_path / "terraform"
    toolchain = ensure_toolchain()
    products = []

    def product(name: str, **spec_values) -> Product:
        slug = f"{name}-{uuid.uuid4().hex[:8]}"
        spec = dataclasses.replace(spec_for(slug), **spec_values)
        workdir = render(spec, workdir=tmp_path / "work" / slug)
        # The portal's pg backend is the adapter's business; state stays in the test's directory.
        (workdir / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
        created = Product(spec, workdir, toolchain, admin_dsn)
        created.terraform("init", "-input=false")
        products.append(created)
        return created

    yield product

    def destroy(leftover: Product) -> str:
        try:
            leftover.destroy()
        except AssertionError as exc:
            return str(exc)
        return ""

    with ThreadPoolExecutor(4) as pool:
        failures = [failure for failure in pool.map(destroy, [p for p in products if p.applied]) if failure]
    for each in products:
        print(f"{each.spec.slug}: " + ", ".join(f"{command} {seconds:.2f}s" for command, seconds in each.timings))
    assert not failures, "\n".join(failures)


def spec_for(slug: str) -> ProductSpec:
    return ProductSpec(slug=slug, domain="testing", team="platform-tests", target="local", classification="internal",
                       pii=False, compute_tier="small", wid_url=f"http://portal.test/docs/wids/testing/{slug}/")


def product_dsn(outputs: dict, password: str | None = None) -> str:
    return make_conninfo(host=outputs["warehouse_host"], port=outputs["warehouse_port"],
                         dbname=outputs["warehouse_database"], user=outputs["storage_role"],
                         password=password or outputs["storage_password"])


def admin_query(admin_dsn: str, query: str, params=()):
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def test_each_product_gets_its_own_role_schema_queue_lake_folder_and_pipeline(local_platform, admin_dsn):
    a, b = local_platform("iso-a"), local_platform("iso-b")
    with ThreadPoolExecutor(2) as pool:  # two applies at once, as two workers would run them
        list(pool.map(Product.apply, (a, b)))
    out_a, out_b = a.outputs(), b.outputs()
    slug, role = a.spec.slug, "p_" + a.spec.slug.replace("-", "_")

    assert {key: out_a[key] for key in ("storage_role", "storage_schema", "queue", "concurrency", "memory_mb",
                                        "warehouse_port", "warehouse_database", "template_version")} == {
        "storage_role": role, "storage_schema": role, "queue": f"runs.{slug}", "concurrency": 1,
        "memory_mb": 512, "warehouse_port": settings.WAREHOUSE_PORT, "warehouse_database": "warehouse",
        "template_version": "1"}
    assert sorted(path.name for path in Path(out_a["lake_path"]).iterdir()) == ["curated", "raw", "staging"]
    assert admin_query(admin_dsn, "SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = %s", [role]) == [
        (5, ["statement_timeout=60000"])]
    assert admin_query(admin_dsn, "SELECT queue, concurrency, memory_mb, connection_limit, statement_timeout_ms"
                                  " FROM platform_registry.compute_queues WHERE product = %s", [slug]) == [
        (f"runs.{slug}", 1, 512, 5, 60000)]
    assert a.plan()[0] == 0

    repo = Path(out_a["pipeline_repo"])
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%H %an"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert log == [f"{out_a['pipeline_commit']} Onboarding portal"]
    assert a.spec.wid_url in (repo / "README.md").read_text()
    assert json.loads((repo / ".portal-template.json").read_text())["template_version"] == "1"
    assert not subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True,
                              text=True).stdout

    # Only the product's own role may create or write in its schema.
    schema_a, schema_b = sql.Identifier(out_a["storage_schema"]), sql.Identifier(out_b["storage_schema"])
    with psycopg.connect(product_dsn(out_b), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.facts (id int)").format(schema_b))

    with psycopg.connect(product_dsn(out_a), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.facts (id int)").format(schema_a))
        conn.execute(sql.SQL("INSERT INTO {}.facts VALUES (1)").format(schema_a))
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1min",)
        for statement in ("CREATE TABLE {b}.intruder (id int)", "INSERT INTO {b}.facts VALUES (1)",
                          "DROP TABLE {b}.facts", "CREATE TABLE public.intruder (id int)",
                          "SELECT * FROM platform_registry.compute_queues"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL(statement).format(b=schema_b))

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(product_dsn(out_a, password="not-the-password")).close()


def test_the_scaffolded_pipeline_runs_and_its_own_tests_pass(local_platform, tmp_path):
    a = local_platform("pipe")
    a.apply()
    out = a.outputs()
    repo, lake = Path(out["pipeline_repo"]), Path(out["lake_path"])
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1",
           "LAKE_PATH": str(lake), "PRODUCT_DSN": product_dsn(out)}

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django"],
                           cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert tests.returncode == 0 and "8 passed, 1 skipped" in tests.stdout, tests.stdout + tests.stderr

    (lake / "raw" / "orders.csv").write_text("Id,Amount\n1,9.50\n2,3\n")
    run = subprocess.run([sys.executable, "pipeline.py"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "orders.csv: 2 rows" in run.stdout, run.stdout + run.stderr
    assert (lake / "curated" / "orders.csv").read_text().splitlines() == ["id,amount", "1,9.50", "2,3"]
    with psycopg.connect(product_dsn(out)) as conn:
        table = sql.Identifier(out["storage_schema"], "curated_records")
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone() == (2,)


def test_each_ingestion_pattern_scaffolds_its_own_pipeline_whose_tests_pass_and_a_new_pattern_updates_it(
        local_platform, tmp_path):
    patterns = {"file_drop": "file drop", "database_extract": "database extract", "spreadsheet": "spreadsheet"}
    products = {pattern: local_platform(pattern.replace("_", "-")[:8], ingestion=pattern) for pattern in patterns}
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(Product.apply, products.values()))
    scaffold = ROOT / "terraform_templates" / "scaffold"
    for pattern, product in products.items():
        out = product.outputs()
        repo = Path(out["pipeline_repo"])
        files = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True).stdout.split()
        assert {".github/workflows/ci.yml", ".gitignore", "requirements.txt", "pipeline.py", "README.md"} <= set(files)
        assert ".portal-base" not in files
        assert (repo / "pipeline.py").read_bytes() == (scaffold / pattern / "v1" / "pipeline.py").read_bytes()
        assert f"**{patterns[pattern]}**" in (repo / "README.md").read_text()
        assert out["lake_path"] in (repo / "README.md").read_text()
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django"], cwd=repo,
            capture_output=True, text=True, timeout=60,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1",
                 "PRODUCT_DSN": product_dsn(out), "PUBLISHED_SCHEMA": out["published_schema"]})
        assert tests.returncode == 0 and " passed" in tests.stdout and "skipped" not in tests.stdout, \
            tests.stdout + tests.stderr

    # An amendment that changes the pattern rewrites the pipeline in place (the team's own changes kept).
    product = products["spreadsheet"]
    product.spec = dataclasses.replace(product.spec, ingestion="none")
    (product.workdir / "terraform.tfvars.json").write_text(json.dumps(tfvars(product.spec)))
    code, plan = product.plan()
    assert code == 2 and "1 to change, 0 to destroy" in plan
    product.apply()
    repo = Path(product.outputs()["pipeline_repo"])
    assert (repo / "pipeline.py").read_bytes() == (scaffold / "pipeline" / "v1" / "pipeline.py").read_bytes()


def test_changes_made_by_hand_show_up_in_the_next_plan_and_apply_repairs_them(local_platform, admin_dsn):
    a, b = local_platform("drift-a"), local_platform("drift-b")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(Product.apply, (a, b)))
    out, out_b = a.outputs(), b.outputs()
    role, other = sql.Identifier(out["storage_role"]), sql.Identifier(out_b["storage_role"])
    repo, lake = Path(out["pipeline_repo"]), Path(out["lake_path"])

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(role))
    record = json.loads((repo / ".portal-template.json").read_text())
    (repo / ".portal-template.json").write_text(json.dumps({**record, "template_version": "0"}))
    code, plan = a.plan()
    assert code == 2
    assert f'+ schema = "{out["storage_schema"]}"' in plan
    assert '~ template_version = "0" -> "1"' in plan
    a.apply()

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 50").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD 'changed-by-hand'").format(role))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA {} TO {}").format(role, other))
    shutil.rmtree(lake)
    shutil.rmtree(repo)
    code, plan = a.plan()
    assert code == 2
    for change in ("~ connection_limit = 50 -> 5", f'+ role = "{out["storage_role"]}"',
                   f'+ schema = "{out["storage_schema"]}"', f'+ lake_path = "{lake}"',
                   "module.pipeline.localplatform_pipeline.this will be created"):
        assert change in plan
    a.apply()
    assert a.plan()[0] == 0

    # Repaired without new credentials, and B may no longer create in A's schema.
    with psycopg.connect(product_dsn(out), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.facts (id int)").format(role))
    with psycopg.connect(product_dsn(out_b), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("CREATE TABLE {}.intruder (id int)").format(role))
    assert admin_query(admin_dsn, "SELECT rolconnlimit FROM pg_roles WHERE rolname = %s",
                       [out["storage_role"]]) == [(5,)]
    assert sorted(path.name for path in lake.iterdir()) == ["curated", "raw", "staging"]
    assert (repo / ".git").is_dir() and a.spec.wid_url in (repo / "README.md").read_text()


def test_destroy_removes_role_schema_queue_lake_folder_and_repository(local_platform, admin_dsn):
    a = local_platform("gone")
    a.apply()
    out = a.outputs()
    a.destroy()

    role, slug = out["storage_role"], a.spec.slug
    assert admin_query(admin_dsn, "SELECT 1 FROM pg_roles WHERE rolname = %s", [role]) == []
    assert admin_query(admin_dsn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", [role]) == []
    assert admin_query(admin_dsn, "SELECT 1 FROM platform_registry.compute_queues WHERE product = %s", [slug]) == []
    assert not Path(out["lake_path"]).exists()
    assert not Path(out["pipeline_repo"]).exists()


def test_the_provider_refuses_values_that_could_escape_into_files(local_platform):
    a = local_platform("bad-url")
    values = json.loads((a.workdir / "terraform.tfvars.json").read_text())
    (a.workdir / "terraform.tfvars.json").write_text(json.dumps({**values, "wid_url": 'http://x/"><script>'}))
    plan = a.terraform("plan", "-input=false", ok=(1,))
    assert "is not a plain http(s) URL" in plan.stderr


def test_the_toolchain_is_isolated_from_the_machines_terraform_settings(settings, tmp_path, capsys):
    settings.TERRAFORM_HOME = tmp_path / "terraform"
    toolchain = ensure_toolchain()
    plugin = next((tmp_path / "terraform" / "mirror").rglob("terraform-provider-localplatform_v0.1.0"))
    written = {path: path.stat().st_mtime_ns for path in (plugin, tmp_path / "terraform" / "cli.tfrc")}

    assert ensure_toolchain() == toolchain
    assert {path: path.stat().st_mtime_ns for path in written} == written
    assert set(toolchain.env) == {"TF_CLI_CONFIG_FILE", "HOME", "CHECKPOINT_DISABLE", "TF_IN_AUTOMATION", "PATH"}
    assert toolchain.env["HOME"] == str(tmp_path / "terraform" / "home")
    assert plugin.relative_to(tmp_path / "terraform" / "mirror").parts[:5] == (
        "portal.local", "platform", "localplatform", "0.1.0", "linux_amd64")
    assert os.access(plugin, os.X_OK)
    assert 'include = ["portal.local/*/*"]' in (tmp_path / "terraform" / "cli.tfrc").read_text()

    call_command("terraform_setup")
    assert capsys.readouterr().out.startswith("Terraform v1.0.3")


def test_the_local_root_module_declares_exactly_the_rendered_values_and_is_formatted(settings, tmp_path):
    settings.TERRAFORM_HOME = tmp_path / "terraform"
    local = settings.TERRAFORM_TEMPLATES / "local"
    with open(local / "variables.tf") as file:
        declared = {name.strip('"') for block in hcl2.load(file)["variable"] for name in block}
    assert declared == set(tfvars(spec_for("any-product")))

    toolchain = ensure_toolchain()
    fmt = subprocess.run([str(toolchain.binary), "fmt", "-check", "-recursive", "-diff"], cwd=local,
                         env=toolchain.env, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
