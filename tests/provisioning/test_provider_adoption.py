"""A retry after a killed apply converges: the local provider adopts what the killed apply created
but Terraform never recorded, so the retry succeeds with exactly one of each resource, and a destroy
then leaves nothing. Real Terraform, the provider from the mirror, the warehouse cluster."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from provisioning import services, terraform
from provisioning.rendering import render
from tests.provisioning.test_local_provider import (  # noqa: F401  (fixtures)
    admin_dsn, admin_query, local_platform, product_dsn, spec_for,
)

ROOT = Path(__file__).resolve().parents[2]


def git_log(repo: Path) -> list[str]:
    return subprocess.run(["git", "-C", str(repo), "log", "--format=%H %s"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def count_of_each(admin_dsn: str, slug: str) -> dict:
    role = "p_" + slug.replace("-", "_")
    return {
        "roles": admin_query(admin_dsn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", [role])[0][0],
        "schemas": admin_query(admin_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", [role])[0][0],
        "queues": admin_query(admin_dsn, "SELECT count(*) FROM platform_registry.compute_queues WHERE product = %s",
                              [slug])[0][0],
    }


def assert_nothing_left(admin_dsn: str, slug: str, lake: Path, repo: Path) -> None:
    assert count_of_each(admin_dsn, slug) == {"roles": 0, "schemas": 0, "queues": 0}
    assert not lake.exists() and not repo.exists()


@pytest.fixture
def leftovers(admin_dsn):
    """Slugs whose warehouse objects are dropped at the end, whatever a failing test left."""
    slugs = []
    yield slugs
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for slug in slugs:
            base = slug.replace("-", "_")
            for schema in (f"p_{base}", f"pub_{base}"):
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            for name in (f"r_{base}", f"p_{base}"):  # the readers role first: the product's role grants to it
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
            if conn.execute("SELECT to_regclass('platform_registry.compute_queues')").fetchone()[0]:
                conn.execute("DELETE FROM platform_registry.compute_queues WHERE product = %s", [slug])


def test_an_apply_whose_state_was_lost_adopts_everything_and_keeps_the_data(local_platform, admin_dsn, leftovers):
    a = local_platform("adopt")
    leftovers.append(a.spec.slug)
    a.apply()
    before = a.outputs()
    repo, lake, schema = Path(before["pipeline_repo"]), Path(before["lake_path"]), before["storage_schema"]
    (lake / "raw" / "orders.csv").write_text("id\n1\n")
    with psycopg.connect(product_dsn(before), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.facts (id int)").format(sql.Identifier(schema)))
    # As an apply killed after creating everything, before Terraform saved its state, leaves it.
    (a.workdir / "terraform.tfstate").unlink()
    assert "Plan: 3 to add" in a.plan()[1]

    a.apply()

    after = a.outputs()
    assert count_of_each(admin_dsn, a.spec.slug) == {"roles": 1, "schemas": 1, "queues": 1}
    assert after["storage_password"] != before["storage_password"]  # the old one was never recorded anywhere
    with psycopg.connect(product_dsn(after), autocommit=True) as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}.facts").format(sql.Identifier(schema))).fetchone() == (0,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(product_dsn(before)).close()
    assert (lake / "raw" / "orders.csv").read_text() == "id\n1\n"
    assert git_log(repo) == [f"{before['pipeline_commit']} Scaffold {a.spec.slug} from pipeline template v1"]
    assert after["pipeline_commit"] == before["pipeline_commit"]
    assert a.plan()[0] == 0

    a.destroy()
    assert_nothing_left(admin_dsn, a.spec.slug, lake, repo)


def killed_in_git_init(repo: Path) -> None:
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def killed_in_git_add(repo: Path) -> None:
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(repo)], check=True)
    (repo / "README.md").write_text("# half")
    (repo / ".git" / "index.lock").write_bytes(b"")


@pytest.mark.parametrize("killed", [killed_in_git_init, killed_in_git_add], ids=["in-git-init", "in-git-add"])
def test_a_scaffold_cut_short_is_finished_and_a_role_made_by_hand_gets_the_new_password(local_platform, admin_dsn,
                                                                                       settings, leftovers, killed):
    a = local_platform("half")
    leftovers.append(a.spec.slug)
    slug, role = a.spec.slug, "p_" + a.spec.slug.replace("-", "_")
    repo, lake = settings.PIPELINES_ROOT / slug, settings.LAKE_ROOT / slug
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'left-by-a-killed-apply'").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE SCHEMA {0} AUTHORIZATION {0}").format(sql.Identifier(role)))
    (lake / "raw").mkdir(parents=True)
    # Where the pipelines live may be inside another repository: git must never reach up into it.
    subprocess.run(["git", "init", "--quiet", str(settings.PIPELINES_ROOT)], check=True)
    repo.mkdir(parents=True)
    killed(repo)

    a.apply()

    out = a.outputs()
    assert count_of_each(admin_dsn, slug) == {"roles": 1, "schemas": 1, "queues": 1}
    psycopg.connect(product_dsn(out)).close()
    assert sorted(path.name for path in lake.iterdir()) == ["curated", "raw", "staging"]
    assert git_log(repo) == [f"{out['pipeline_commit']} Scaffold {slug} from pipeline template v1"]
    assert a.spec.wid_url in (repo / "README.md").read_text()
    assert not subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True,
                              text=True, check=True).stdout
    assert subprocess.run(["git", "-C", str(repo.parent), "rev-parse", "--verify", "--quiet", "HEAD"]).returncode
    assert a.plan()[0] == 0

    a.destroy()
    assert_nothing_left(admin_dsn, slug, lake, repo)


def test_a_repository_that_is_not_the_products_scaffold_is_refused_and_left_alone(local_platform, settings,
                                                                                  leftovers):
    a = local_platform("foreign")
    leftovers.append(a.spec.slug)
    repo = settings.PIPELINES_ROOT / a.spec.slug
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True)
    (repo / "notes.txt").write_text("someone's work\n")
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=Someone", "-c", "user.email=s@example.com",
                    "commit", "--quiet", "--allow-empty", "-m", "Their own history"], check=True)

    a.applied = True  # storage and compute get created: the fixture destroys them
    result = a.terraform("apply", "-auto-approve", "-input=false", ok=(1,))

    assert f"{repo} already exists and is not the scaffolded pipeline repository of {a.spec.slug}" in \
           " ".join(result.stderr.split())
    assert [line.split(" ", 1)[1] for line in git_log(repo)] == ["Their own history"]
    assert (repo / "notes.txt").read_text() == "someone's work\n" and not (repo / "README.md").exists()


# The worker, as far as this test needs one: runs a command through portal.work.process, prints its
# lines, and is SIGKILLed the moment terraform reports the event named by argv 2 and 3.
WORKER = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from portal.work import process

    def on_line(line):
        print(line, flush=True)
        event = json.loads(line)
        if event.get("type") == sys.argv[2] and sys.argv[3] in event["hook"]["resource"]["addr"]:
            os.kill(os.getpid(), signal.SIGKILL)

    process.run(sys.argv[4:], on_line=on_line, on_start=lambda pgid: print("group", pgid, flush=True))
""")


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except (FileNotFoundError, ProcessLookupError):  # it ended meanwhile
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.fixture
def pg_product(settings, tmp_path, admin_dsn, leftovers):
    """A product rendered for the portal's own pg backend, its workspace made, destroyed at the end."""
    settings.LAKE_ROOT = tmp_path / "lake"
    settings.PIPELINES_ROOT = tmp_path / "pipelines"
    settings.TERRAFORM_HOME = tmp_path / "terraform"
    settings.TERRAFORM_LOCK_TIMEOUT = "0s"  # a lock the killed apply kept would fail the retry at once
    spec = spec_for(f"killed-{uuid.uuid4().hex[:8]}")
    leftovers.append(spec.slug)
    tf = terraform.Terraform(render(spec, tmp_path / "work"), workspace=spec.slug,
                             extra_env={"LOCALPLATFORM_WAREHOUSE_DSN": admin_dsn})
    tf.init({"conn_str": services.state_conn_str()})
    tf.new_workspace()
    yield spec, tf


@pytest.mark.parametrize("moment", [("apply_start", "localplatform_storage"),
                                    ("apply_complete", "localplatform_storage"),
                                    ("apply_start", "localplatform_pipeline")],
                         ids=["creating-storage", "storage-created", "creating-pipeline"])
def test_a_worker_killed_mid_apply_leaves_no_process_and_no_lock_and_the_retry_converges(pg_product, admin_dsn,
                                                                                         moment):
    spec, tf = pg_product
    kind, resource = moment
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(ROOT), kind, resource, str(tf.toolchain.binary), "apply", "-json",
         "-auto-approve", "-input=false"], cwd=tf.workdir, env=tf.env, stdout=subprocess.PIPE, text=True)
    with worker:
        group = int(worker.stdout.readline().split()[1])
        worker.stdout.read()
        assert worker.wait(timeout=60) == -signal.SIGKILL
    ends = time.monotonic() + 2
    while group_members(group) and time.monotonic() < ends:
        time.sleep(0.05)
    assert group_members(group) == []

    # Terraform 1.0 writes the pg state when an apply ends: what the killed one created is recorded nowhere.
    state = terraform.read_state(services.state_conn_str(), workspace=spec.slug)
    assert state is not None and state.resources == 0
    if kind == "apply_complete":
        assert count_of_each(admin_dsn, spec.slug)["roles"] == 1

    tf.apply()

    outputs = {name: o["value"] for name, o in
               terraform.read_state(services.state_conn_str(), workspace=spec.slug).outputs.items()}
    assert count_of_each(admin_dsn, spec.slug) == {"roles": 1, "schemas": 1, "queues": 1}
    psycopg.connect(product_dsn(outputs)).close()
    assert len(git_log(Path(outputs["pipeline_repo"]))) == 1
    assert tf.plan("check.tfplan").summary == {"add": 0, "change": 0, "destroy": 0}

    tf.plan("destroy.tfplan", destroy=True)
    tf.apply("destroy.tfplan")
    assert_nothing_left(admin_dsn, spec.slug, Path(outputs["lake_path"]), Path(outputs["pipeline_repo"]))
