"""PostgreSQL restarted (a fast stop, then an immediate one, as a crash) under a running portal,
while a provisioning job applies and clients read and write through the API.

The portal runs on a PostgreSQL cluster of the test's own (its own port and data directory), so
stopping it touches nothing else on the machine; Terraform's state stays in the machine's
PostgreSQL. Every response is a success or a 503 with Retry-After, never a 500; git and the index
agree afterwards; every accepted write is in both; the job ends, succeeded or failed saying why;
no process of the portal exits.
"""
import json
from collections import Counter
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.factories import wid_payload
from tests.faults.portal import Portal, PrivateRedis, free_port
from tests.provisioning.test_local_provider import admin_dsn  # noqa: F401  (fixture)
from tests.worker import ROOT

pytestmark = pytest.mark.e2e

LOW_RISK = {"classification": "internal", "pii": False, "compute_tier": "small"}
FINAL = ("succeeded", "failed", "cancelled")
BINDIR = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]) if Path("/usr/lib/postgresql").is_dir() else None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, run as the postgres user (initdb refuses root) in a
    directory that user can enter (ADR 0007: not under a 0700 temporary directory of root's)."""

    def __init__(self):
        self.port = free_port()
        self.home = Path("/var/lib/postgresql/portal") / f"fault-{uuid.uuid4().hex[:8]}"
        self.data = self.home / "data"

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                              check=check, timeout=120)

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create(self) -> None:
        self.data.mkdir(parents=True)
        shutil.chown(self.home.parent, "postgres", "postgres")
        shutil.chown(self.home, "postgres", "postgres")
        shutil.chown(self.data, "postgres", "postgres")
        self._pg(str(BINDIR / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        self._pg(str(BINDIR / "pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"), "-o",
                 f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg(str(BINDIR / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str, down: float = 2.0) -> None:
        self.stop(mode)
        time.sleep(down)
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def postgres():
    if BINDIR is None or shutil.which("runuser") is None:
        pytest.skip("no PostgreSQL server binaries here")
    cluster = PrivatePostgres()
    cluster.create()
    yield cluster
    cluster.destroy()


def _manage(portal: Portal, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], env=portal.env, cwd=ROOT, capture_output=True,
                          text=True, check=check, timeout=180)


SEED = """
import json
from rest_framework.authtoken.models import Token
from tests.factories import TeamFactory, member_of, platform_user
team = TeamFactory(slug="growth-analytics")
print(json.dumps({"team": team.slug, "token": Token.objects.create(user=member_of(team)).key,
                  "platform": Token.objects.create(user=platform_user()).key}))
"""


@pytest.fixture
def portal(db, tmp_path, postgres, admin_dsn):  # noqa: F811
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE portal")
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    portal = Portal(tmp_path, redis, DATABASE_URL=postgres.url("portal"))
    _manage(portal, "migrate", "--no-input")
    portal.seed = json.loads(_manage(portal, "shell", "-c", SEED).stdout.strip().splitlines()[-1])
    portal.start()
    yield portal
    portal.stop()
    redis.stop()


class Traffic(threading.Thread):
    """One client: reads, or creates drafts, one request after the other, remembering every answer."""

    def __init__(self, portal: Portal, token: str, team: str, *, writes: bool):
        super().__init__(daemon=True)
        self.portal, self.token, self.team, self.writes = portal, token, team, writes
        self.answers: list[tuple[str, str, int, dict, str]] = []  # method, slug or path, status, headers, body
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            if self.writes:
                slug = f"pg-{uuid.uuid4().hex[:6]}-{n}"
                status, headers, body = self.portal.request("POST", "/api/v1/products/", token=self.token,
                                                            body=wid_payload(slug=slug, team=self.team))
                self.answers.append(("POST", slug, status, headers, body))
            else:
                path = ("/api/v1/products/", "/api/v1/jobs/", "/healthz/")[n % 3] if n % 3 != 1 else \
                    "/api/v1/products/"
                status, headers, body = self.portal.request("GET", path, token=self.token)
                self.answers.append(("GET", path, status, headers, body))
            time.sleep(0.05)


def _job(postgres, slug: str):
    try:
        with psycopg.connect(postgres.url("portal"), connect_timeout=2) as conn:
            return conn.execute("SELECT j.status, j.error FROM provisioning_job j JOIN onboarding_product p "
                                "ON p.id = j.product_id WHERE p.slug = %s ORDER BY j.id DESC LIMIT 1", [slug]
                                ).fetchone()
    except psycopg.OperationalError:
        return None


def _log(postgres, slug: str) -> str:
    with psycopg.connect(postgres.url("portal")) as conn:
        return "\n".join(text for (text,) in conn.execute(
            "SELECT l.text FROM provisioning_joblogline l JOIN provisioning_job j ON j.id = l.job_id JOIN "
            "onboarding_product p ON p.id = j.product_id WHERE p.slug = %s ORDER BY l.id", [slug]))


def _in_git(portal: Portal, slug: str, domain: str = "growth") -> bool:
    return subprocess.run(["git", "-C", str(portal.paths["repo"]), "cat-file", "-e", f"HEAD:wids/{domain}/{slug}.md"],
                          capture_output=True).returncode == 0


def test_a_postgres_restart_under_requests_and_a_job_gives_clean_503s_and_leaves_nothing_half_written(
        portal, postgres):
    token, team = portal.seed["token"], portal.seed["team"]
    slug = f"pg-job-{uuid.uuid4().hex[:5]}"
    status, _, body = portal.request("POST", "/api/v1/products/", token=token,
                                     body=wid_payload(slug=slug, team=team, **LOW_RISK))
    assert status == 201, body
    status, _, body = portal.request("POST", f"/api/v1/products/{slug}/submit/", token=token, body={})
    assert status == 200, body  # low risk: approved, and its apply job starts
    portal.wait_for(lambda: (_job(postgres, slug) or ("",))[0] in ("running", "applying"), 60, "the apply to start")

    clients = [Traffic(portal, token, team, writes=True), Traffic(portal, token, team, writes=False)]
    for client in clients:
        client.start()
    time.sleep(1)
    assert _job(postgres, slug)[0] in ("running", "applying"), "the job ended before the fault: it proves nothing"
    postgres.restart("fast")
    time.sleep(3)
    postgres.restart("immediate")  # as a crash: connections cut, no checkpoint
    time.sleep(3)
    for client in clients:
        client.stopping.set()
        client.join(timeout=60)

    answers = [answer for client in clients for answer in client.answers]
    statuses = [answer[2] for answer in answers]
    assert 503 in statuses and any(s in (200, 201) for s in statuses), statuses  # the fault was felt
    for method, what, status, headers, body in answers:
        if what == "/healthz/":  # a report for the process manager, not a refused request
            assert status == 200 or (status == 503 and '"database": "down"' in body), (what, status, body)
            continue
        assert status in (200, 201, 202) or (status == 503 and headers.get("Retry-After")), \
            (method, what, status, body[:2000])

    # The job ends within a bounded time, never left running; the outages were shorter than
    # WORK_DB_RETRY_SECONDS, so it went on through them and succeeded, once.
    final = portal.wait_for(lambda: (_job(postgres, slug) or ("",))[0] in FINAL and _job(postgres, slug), 120,
                            "the job to end")
    assert final[0] == "succeeded", final
    assert _log(postgres, slug).count("Rendering the") == 1
    print(f"answers: {Counter(statuses)}; the job: {final[0]} {final[1] or ''}")

    check = _manage(portal, "rebuild_index", "--check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    for method, created, status, _, body in answers:
        if method == "POST" and status == 201:
            assert _in_git(portal, created), created
            assert portal.request("GET", f"/api/v1/products/{created}/", token=token)[0] == 200, created
    assert all(portal.alive().values()), portal.alive()
