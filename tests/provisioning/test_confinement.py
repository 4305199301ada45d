"""Run confinement (provisioning/confinement.py, docs/adr/0016), for real: namespaces, uid, rlimits, Landlock.

Hostile pipelines each try one escape and fail; a normal pipeline still reads raw/, writes curated/
and its own schema in the warehouse, and reads a dependency's curated/ without writing it. Most run
the sandbox directly (about half a second each); the last goes through the real executor
(`runs.run_execute`) on a product that terraform provisioned.
"""
import json
import os
import random
import runpy
import signal
import subprocess
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from onboarding import services as onboarding_services
from provisioning import confinement, runs, services, terraform
from provisioning.models import Job, Run, RunLogLine
from tests.factories import wid_payload

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"memory_mb": 512, "cpu_seconds": 30, "processes": 32, "disk_mb": 64, "scratch_mb": 32}
# What a refused attempt may raise inside the sandbox; anything else (a NameError) is a broken test.
REFUSALS = {"PermissionError", "FileNotFoundError", "OSError", "ConnectionRefusedError", "OperationalError",
            "BlockingIOError", "TimeoutError"}
HOSTILE = """
import errno, os, socket
for attempt in {attempts!r}:
    try:
        exec(attempt)
    except Exception as exc:
        print("refused:", type(exc).__name__, repr(attempt[:60]), exc)
    else:
        print("ESCAPED:", attempt)
"""


def _admin_conn():
    password = Path(settings.WAREHOUSE_ADMIN_PASSWORD_FILE).read_text().strip()
    return psycopg.connect(host="127.0.0.1", port=settings.WAREHOUSE_PORT, dbname=settings.WAREHOUSE_DATABASE,
                           user="warehouse_admin", password=password, autocommit=True)


@pytest.fixture(scope="module")
def product_role():
    """A login role with a schema of its own in the real warehouse, as the local provider makes them."""
    runpy.run_path(str(ROOT / "scripts" / "services.py"))["ensure_warehouse"]()
    role, password = f"hconf_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with _admin_conn() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(settings.WAREHOUSE_DATABASE), sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(role), sql.Identifier(role)))
    yield {"user": role, "password": password, "dbname": settings.WAREHOUSE_DATABASE,
           "port": settings.WAREHOUSE_PORT, "host": "127.0.0.1"}
    with _admin_conn() as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(role)))
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
            sql.Identifier(settings.WAREHOUSE_DATABASE), sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@dataclass
class World:
    lake: Path
    pipelines: Path
    wid_repo: Path
    uid: int
    database: dict
    socket: str


@pytest.fixture
def world(tmp_path, wid_repo, product_role):
    """Three products' lake folders and repositories: alpha runs, it depends on beta, gamma is a stranger."""
    lake, pipelines = tmp_path / "lake", tmp_path / "pipelines"
    for slug in ("alpha", "beta", "gamma"):
        for area in ("raw", "staging", "curated"):
            (lake / slug / area).mkdir(parents=True)
        _commit(pipelines / slug, "print('hello')\n")
    (lake / "alpha" / "raw" / "customers.csv").write_text("id,name\n1,Ada\n")
    (lake / "beta" / "curated" / "orders.csv").write_text("order\n42\n")
    (lake / "gamma" / "raw" / "secret.csv").write_text("gamma's secret\n")
    wid_repo.mkdir(parents=True)
    (wid_repo / "alpha.md").write_text("the WID\n")
    # A uid of the tests' own: RLIMIT_NPROC counts every process of a uid, on the whole machine.
    return World(lake=lake, pipelines=pipelines, wid_repo=wid_repo, uid=random.randrange(2_000_000, 3_000_000),
                 database=product_role, socket=runs._warehouse_socket(settings.WAREHOUSE_PORT))


def _commit(repo: Path, code: str) -> str:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "pipeline.py").write_text(textwrap.dedent(code))
    git = ["git", "-C", str(repo), "-c", "user.name=Team", "-c", "user.email=team@example.com"]
    if not (repo / ".git").exists():
        subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pipeline.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "pipeline", "--allow-empty"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def confine(world: World, code: str, *, strict: bool = True, deadline_seconds: float = 60,
            **limits) -> tuple[confinement.Outcome, list[str]]:
    """Run `code` as alpha's pipeline, in its sandbox; the outcome and the lines it printed."""
    commit = _commit(world.pipelines / "alpha", code)
    sandbox = confinement.Sandbox(
        slug="alpha", uid=world.uid, lake=str(world.lake / "alpha"), repo=str(world.pipelines / "alpha"),
        commit=commit, limits=confinement.Limits(**{**LIMITS, **limits}), database=world.database,
        warehouse_socket=world.socket,
        reads={"beta": {"schema": "beta_published", "curated_path": str(world.lake / "beta" / "curated")}},
        env={"PUBLISHED_SCHEMA": "alpha_published", "OUTPUT_PORTS": '[{"name": "facts", "kind": "table"}]',
             "SCHEMA": world.database["user"]},
    )
    lines: list[str] = []
    outcome = confinement.run(sandbox, strict=strict, on_line=lines.append, deadline=deadline_seconds)
    return outcome, lines


def _refused_every_time(outcome, lines, attempts):
    assert outcome.result.exit_code == 0, lines
    assert not [line for line in lines if line.startswith("ESCAPED")], lines
    refusals = [line for line in lines if line.startswith("refused:")]
    assert len(refusals) == len(attempts), lines
    assert {line.split()[1] for line in refusals} <= REFUSALS, lines


def test_a_normal_pipeline_reads_raw_writes_curated_and_its_schema_and_reads_a_dependency(world):
    outcome, lines = confine(world, """
        import json, os, psycopg
        lake = os.environ["LAKE_PATH"]
        print("lake", lake, os.getuid())
        rows = open(f"{lake}/raw/customers.csv").read()
        open(f"{lake}/curated/customers.csv", "w").write(rows.upper())
        reads = json.loads(os.environ["READS"])
        print("reads", json.dumps(reads, sort_keys=True))
        print("dependency", open(reads["beta"]["curated_path"] + "/orders.csv").read().split())
        try:
            open(reads["beta"]["curated_path"] + "/orders.csv", "a")
            print("ESCAPED: wrote the dependency's curated/")
        except OSError as exc:
            print("refused: writing the dependency's curated/:", exc)
        with psycopg.connect(os.environ["PRODUCT_DSN"]) as conn:
            conn.execute(f'CREATE TABLE "{os.environ["SCHEMA"]}".facts AS SELECT 1 AS one')
        print("ports", os.environ["OUTPUT_PORTS"], os.environ["PUBLISHED_SCHEMA"])
        print("processes", [p for p in os.listdir("/proc") if p.isdigit()], os.getpid())
        """)
    assert outcome.result.exit_code == 0, lines
    assert (world.lake / "alpha" / "curated" / "customers.csv").read_text() == "ID,NAME\n1,ADA\n"
    assert f"lake /lake/alpha {world.uid}" in lines
    assert 'reads {"beta": {"curated_path": "/lake/beta/curated", "schema": "beta_published"}}' in lines
    assert "dependency ['order', '42']" in lines
    assert any(line.startswith("refused: writing the dependency's curated/:") for line in lines)
    assert (world.lake / "beta" / "curated" / "orders.csv").read_text() == "order\n42\n"
    assert 'ports [{"name": "facts", "kind": "table"}] alpha_published' in lines
    assert [line for line in lines if line.startswith("processes")] == ["processes ['2'] 2"]  # itself, nothing else
    with _admin_conn() as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'facts'",
                             [world.database["user"]]).fetchone()
    assert owner == (world.database["user"],)


ESCAPES = {
    "writes another product's lake folder": lambda w: [
        f"open({str(w.lake / 'gamma' / 'raw' / 'evil')!r}, 'w')",
        "open('/lake/gamma/raw/evil', 'w')",
        "os.mkdir('/lake/gamma')",
    ],
    "writes its dependency's curated folder": lambda w: [
        "open('/lake/beta/curated/evil', 'w')",
        "os.unlink('/lake/beta/curated/orders.csv')",
        f"open({str(w.lake / 'beta' / 'curated' / 'evil')!r}, 'w')",
    ],
    "reads another product's lake folder": lambda w: [
        f"open({str(w.lake / 'gamma' / 'raw' / 'secret.csv')!r}).read()",
        "open('/lake/gamma/raw/secret.csv').read()",
        f"os.listdir({str(w.lake)!r})",
        "os.listdir('/lake')",
    ],
    "reads another product's repository, or its own": lambda w: [
        f"open({str(w.pipelines / 'gamma' / 'pipeline.py')!r}).read()",
        f"open({str(w.pipelines / 'alpha' / '.git' / 'config')!r}).read()",
        f"os.listdir({str(w.pipelines)!r})",
    ],
    "reads the portal's var/, .env and code": lambda w: [
        f"open({str(settings.WAREHOUSE_ADMIN_PASSWORD_FILE)!r}).read()",
        f"os.listdir({str(settings.WAREHOUSE_ADMIN_PASSWORD_FILE.parent)!r})",
        f"open({str(w.wid_repo / 'alpha.md')!r}).read()",
        f"open({str(settings.BASE_DIR / '.env')!r}).read()",
        f"open({str(settings.BASE_DIR / 'portal' / 'settings' / 'base.py')!r}).read()",
        "open('/etc/shadow').read()",
        "os.listdir('/')",
    ],
    "reads other processes' /proc": lambda w: [
        "open('/proc/1/environ').read()",
        "open('/proc/1/cmdline').read()",
        f"open('/proc/{os.getpid()}/environ').read()",
    ],
    "connects to the portal's PostgreSQL over TCP": lambda w: [
        "socket.create_connection(('127.0.0.1', 5432), timeout=3)",
        "socket.create_connection(('localhost', 5432), timeout=3)",
    ],
    "connects to the portal's PostgreSQL through its trusted socket": lambda w: [
        "socket.socket(socket.AF_UNIX).connect('/var/run/postgresql/.s.PGSQL.5432')",
        "socket.socket(socket.AF_UNIX).connect('/run/postgresql/.s.PGSQL.5432')",
    ],
    "connects to Redis": lambda w: [
        "socket.create_connection(('127.0.0.1', 6379), timeout=3)",
    ],
    "reaches the warehouse other than through its socket": lambda w: [
        f"socket.create_connection(('127.0.0.1', {settings.WAREHOUSE_PORT}), timeout=3)",
        f"socket.socket(socket.AF_UNIX).connect({w.socket!r})",
    ],
    "connects to the warehouse as warehouse_admin": lambda w: [
        f"import psycopg; psycopg.connect(host='/warehouse', port={settings.WAREHOUSE_PORT}, dbname="
        f"{settings.WAREHOUSE_DATABASE!r}, user='warehouse_admin', password={w.database['password']!r})",
        f"import psycopg; psycopg.connect(host='/warehouse', port={settings.WAREHOUSE_PORT}, dbname="
        f"{settings.WAREHOUSE_DATABASE!r}, user='warehouse_admin')",
    ],
    "takes privileges back": lambda w: [
        "os.setuid(0)",
        "os.chmod('/lake/beta/curated', 0o777)",
        # A user namespace of its own gives capabilities there, but Landlock forbids every mount.
        "import ctypes; libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.unshare(0x10000000 | 0x00020000): raise OSError(ctypes.get_errno(), 'unshare')\n"
        "if libc.mount(None, b'/lake/beta/curated', None, 32 | 4096, None):\n"
        "    raise OSError(ctypes.get_errno(), 'mount')\n"
        "open('/lake/beta/curated/evil', 'w')",
    ],
    "fills its scratch space": lambda w: [
        "open('/tmp/big', 'wb').write(b'x' * (48 << 20))",
    ],
}


@pytest.mark.parametrize("escape", list(ESCAPES))
def test_a_hostile_pipeline_fails_to_escape(world, escape):
    attempts = ESCAPES[escape](world)
    outcome, lines = confine(world, HOSTILE.format(attempts=attempts))
    _refused_every_time(outcome, lines, attempts)
    assert not (world.lake / "gamma" / "raw" / "evil").exists()
    assert sorted(p.name for p in (world.lake / "beta" / "curated").iterdir()) == ["orders.csv"]


def test_a_fork_bomb_stops_at_the_process_limit(world):
    outcome, lines = confine(world, """
        import os, time
        children = 0
        try:
            for _ in range(1000):
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
            print("ESCAPED: forked", children)
        except OSError as exc:
            print("refused: fork after", children, "children:", exc)
        """, processes=8)
    assert outcome.result.exit_code == 0, lines
    assert any(line.startswith("refused: fork after 7 children") for line in lines), lines


def test_burning_cpu_is_stopped_at_the_cpu_limit(world):
    started = time.monotonic()
    outcome, lines = confine(world, "while True:\n    pass\n", cpu_seconds=1)
    assert outcome.result.exit_code == -signal.SIGXCPU, lines
    assert time.monotonic() - started < 15


def _processes_of(uid: int) -> list[str]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nUid:\t{uid}\t" in status.read_text():
                found.append(status.parent.name)
        except OSError:  # ended meanwhile
            pass
    return found


def test_a_process_that_leaves_the_group_ends_with_the_run_at_its_deadline(world):
    started = time.monotonic()
    outcome, lines = confine(world, """
        import os, time
        if os.fork() == 0:
            os.setsid()  # out of the group the executor signals
            if os.fork() == 0:
                time.sleep(120)
            os._exit(0)
        print("started", flush=True)
        time.sleep(120)
        """, deadline_seconds=2)
    assert outcome.result.timed_out and lines[0] == "started"
    assert time.monotonic() - started < 10
    assert _processes_of(world.uid) == []


def test_a_huge_file_is_stopped_at_the_size_limit(world):
    outcome, lines = confine(world, """
        import os
        try:
            open(os.environ["LAKE_PATH"] + "/curated/huge", "wb").write(b"x" * (16 << 20))
            print("ESCAPED")
        except OSError as exc:
            print("refused:", exc)
        """, disk_mb=4)
    assert outcome.result.exit_code == 0, lines
    assert "refused: [Errno 27] File too large" in lines
    assert (world.lake / "alpha" / "curated" / "huge").stat().st_size == 4 << 20


def test_a_lake_folder_over_its_quota_fails_the_check_and_no_run_starts_until_it_is_cleaned(world):
    outcome, lines = confine(world, """
        import os
        for n in range(3):
            open(os.environ["LAKE_PATH"] + f"/staging/part-{n}", "wb").write(os.urandom(2 << 20))
        """, disk_mb=4)
    assert outcome.result.exit_code == 0, lines
    assert outcome.lake_mb > 6
    with pytest.raises(confinement.Refused, match="over its quota of 4 MB"):
        confine(world, "print('never runs')\n", disk_mb=4)
    for part in (world.lake / "alpha" / "staging").iterdir():
        part.unlink()
    assert confine(world, "print('runs again')\n", disk_mb=4)[1] == ["runs again"]


def test_a_planted_link_does_not_bring_the_portal_into_a_consumers_sandbox(world):
    """beta, a producer, replaces its curated/ by a link to the portal's var/ before alpha runs."""
    curated = world.lake / "beta" / "curated"
    curated.rename(world.lake / "beta" / "moved")
    curated.symlink_to(settings.WAREHOUSE_ADMIN_PASSWORD_FILE.parent)
    attempts = ["os.listdir('/lake/beta/curated')", "open('/lake/beta/curated/admin-password').read()"]
    outcome, lines = confine(world, HOSTILE.format(attempts=attempts))
    assert any("beta's curated/ is not shown" in line for line in lines), lines
    _refused_every_time(outcome, lines, attempts)


def test_confinement_off_keeps_the_limits_only(world):
    outcome, lines = confine(world, """
        import os
        print("lake", os.environ["LAKE_PATH"])
        while True:
            pass
        """, strict=False, cpu_seconds=1)
    assert lines[0] == f"lake {world.lake / 'alpha'}"
    assert outcome.result.exit_code == -signal.SIGXCPU


# --- through the real executor -------------------------------------------------------------------
@pytest.fixture
def sent(monkeypatch):
    """Wake-up calls go nowhere: the test calls the services a worker would."""
    monkeypatch.setattr("portal.work.dispatch.send", lambda *args, **kwargs: True)


def _wait_for_job(job_id: int) -> Job:
    services.job_run(job_id)
    return Job.objects.get(pk=job_id)


def _execute(product, member) -> tuple[Run, str]:
    run = runs.run_start(user=member, product=product)
    runs.run_execute(run.pk)
    run.refresh_from_db()
    return run, "\n".join(RunLogLine.objects.filter(run=run).order_by("pk").values_list("text", flat=True))


@pytest.mark.django_db(transaction=True)
def test_the_executor_runs_a_provisioned_products_pipeline_confined(settings, tmp_path, member, platform, sent):
    settings.LAKE_ROOT, settings.PIPELINES_ROOT = tmp_path / "lake", tmp_path / "pipelines"
    settings.TERRAFORM_WORKDIR = tmp_path / "tf-work"
    settings.PROVISION_ON_APPROVAL_TARGETS = ["local"]
    settings.RUN_UID_BASE = random.randrange(3_000_000, 4_000_000)
    slug = f"conf-{uuid.uuid4().hex[:6]}"
    onboarding_services.wid_create(user=member, data=wid_payload(
        slug=slug, classification="internal", pii=False, compute_tier="small"))
    product = onboarding_services.wid_submit(user=member, slug=slug)
    assert _wait_for_job(Job.objects.get(product=product).pk).status == "succeeded"
    try:
        lake, repo = settings.LAKE_ROOT / slug, settings.PIPELINES_ROOT / slug
        (lake / "raw" / "customers.csv").write_text("Customer Id,Name\n1, Ada \n2,Grace\n")
        run, log = _execute(product, member)
        assert run.status == "succeeded", log
        assert "customers.csv: 2 rows" in log and "confinement strict" in log
        assert (lake / "curated" / "customers.csv").read_text().startswith("customer_id,name")
        assert (lake / "curated" / "customers.csv").stat().st_uid == settings.RUN_UID_BASE + product.pk
        outputs = terraform.read_state(services.state_conn_str(), workspace=slug).outputs
        with _admin_conn() as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                                 [outputs["storage_schema"]["value"], "curated_records"]).fetchone()
        assert owner == (outputs["storage_role"]["value"],)

        attempts = [f"open({str(settings.WAREHOUSE_ADMIN_PASSWORD_FILE)!r}).read()",
                    "socket.create_connection(('127.0.0.1', 5432), timeout=3)",
                    f"open({str(repo / 'pipeline.py')!r}, 'a')"]
        _commit(repo, HOSTILE.format(attempts=attempts))
        run, log = _execute(product, member)
        assert run.status == "succeeded", log
        assert log.count("refused: ") == 3 and "ESCAPED" not in log, log

        settings.RUN_DISK_MB = {**settings.RUN_DISK_MB, "small": 1}
        _commit(repo, "import os\nopen(os.environ['LAKE_PATH'] + '/staging/big', 'wb').write(os.urandom(900_000))\n"
                      "open(os.environ['LAKE_PATH'] + '/staging/more', 'wb').write(os.urandom(900_000))\n")
        run, log = _execute(product, member)
        assert run.status == "failed" and "over its quota of 1 MB" in run.error, log
        run, log = _execute(product, member)
        assert run.status == "failed" and "no run starts until it is cleaned up" in run.error
        assert run.exit_code is None  # refused before anything ran
    finally:
        destroy = services.job_start(user=platform, product=product, action="destroy")
        assert _wait_for_job(destroy.pk).status == "planned"
        services.job_confirm(user=platform, job=Job.objects.get(pk=destroy.pk))
        assert _wait_for_job(destroy.pk).status == "succeeded"
