"""A real Celery worker process, on the real Redis broker, against the test database.

One per test session, shared by tests/e2e and tests/browser: its fixtures are registered once, in
tests/conftest.py (a second registration would start a second worker on the same queue, with
other paths, taking the first one's tasks).
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def e2e_paths(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    return {"repo": base / "wid-repo", "remote": base / "remote.git", "mail": base / "mail", "log": base / "worker.log",
            "site": base / "site", "archive": base / "archive", "webhook_port": _free_port()}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WEBHOOK_SECRET = "e2e-webhook-secret-not-for-production"


def _ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql
    from urllib.parse import urlparse

    parsed = urlparse(url)
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
        name = parsed.path.lstrip("/")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


TEST_DEPLOYMENT = f"tests-{os.getpid()}"


def portal_env(paths: dict, **overrides: str) -> dict:
    """The environment of a portal process (worker, beat, web) started by a test, on the test database."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "WID_REPO_PATH": str(paths["repo"]),
        "WID_REPO_REMOTE": str(paths["remote"]),
        # One write lock for the test process and the portal's processes (the lock is per deployment:
        # by default its remote's URL, which the test process does not always set).
        "DEPLOYMENT_NAME": TEST_DEPLOYMENT,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(paths["mail"]),
        "CELERY_TASK_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "WID_SITE_QUEUE": settings.WID_SITE_QUEUE,
        "RUNS_QUEUE": settings.RUNS_QUEUE,
        "WID_SITE_ROOT": str(paths["site"]),
        "WID_SITE_AUTO_BUILD": "true",
        "ARCHIVE_ROOT": str(paths["archive"]),
        # Events raised in the worker (finished jobs, drift) go to a receiver only the webhook
        # test starts; elsewhere they are retried quietly against a closed port.
        "NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{paths['webhook_port']}/hook",
        "NOTIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "NOTIFY_WEBHOOK_RETRY_BASE": "0.5",
        **overrides,
    }


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, e2e_paths):
    _ensure_database(settings.TF_STATE_DATABASE_URL)
    env = portal_env(e2e_paths)
    celery = [sys.executable, "-m", "celery", "-A", "portal"]
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    # Tasks left in the queue by earlier runs would name rows that no longer exist.
    queue = f"{queue},{settings.WID_SITE_QUEUE},{settings.RUNS_QUEUE}"
    subprocess.run([*celery, "purge", "-f", "-Q", queue], env=env, cwd=ROOT, check=True, capture_output=True)
    log = open(e2e_paths["log"], "w")
    worker = subprocess.Popen(
        [*celery, "worker", "-Q", queue, "--concurrency", "2", "--loglevel", "INFO", "-n", f"e2e-{os.getpid()}@%h"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "ready." not in e2e_paths["log"].read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail(f"the Celery worker did not start:\n{e2e_paths['log'].read_text()}")
        time.sleep(0.2)
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
    log.close()


@pytest.fixture
def e2e(settings, e2e_paths, celery_worker_process, transactional_db):
    """The test process shares the worker's repository and mailbox (pushes: see `with_remote`).

    Afterwards it waits for the worker to be idle: the database is emptied between tests, and a
    task still reading it would deadlock with that.
    """
    settings.WID_REPO_PATH = e2e_paths["repo"]
    settings.WID_REPO_REMOTE = ""
    settings.DEPLOYMENT_NAME = TEST_DEPLOYMENT  # the worker's write lock, whatever the remote
    settings.WID_SITE_ROOT = e2e_paths["site"]
    settings.ARCHIVE_ROOT = e2e_paths["archive"]
    yield e2e_paths
    _wait_for_idle_worker(e2e_paths["log"])


@pytest.fixture
def with_remote(settings, e2e):
    """Commits are pushed by the worker to the remote (which the test may make unreachable)."""
    settings.WID_REPO_REMOTE = str(e2e["remote"])
    return e2e["remote"]


def _wait_for_idle_worker(log: Path, timeout: float = 60) -> None:
    import redis

    from docs_site.models import SiteBuild
    from portal.work.models import Delivery
    from provisioning.models import Job, Run

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    busy = {}

    def idle() -> bool:
        busy.clear()
        busy.update({
            "tasks in the queue": broker.llen(settings.CELERY_TASK_DEFAULT_QUEUE),
            "site builds queued or running": SiteBuild.objects.filter(status__in=["queued", "running"]).count(),
            "e-mails due": Delivery.objects.filter(channel="email", status="pending", attempts=0).count(),
            "jobs active": Job.objects.filter(status__in=["queued", "running", "applying"]).count(),
            "runs active": Run.objects.filter(status__in=["queued", "running"]).count(),
        })
        return not any(busy.values())

    try:
        wait_until(idle, timeout=timeout, what="the worker to finish its tasks", log=log)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstill busy: {busy}") from None
    time.sleep(1)  # a task just taken off the queue (an e-mail) finishes reading


def wait_until(predicate, *, timeout: float = 30, what: str = "condition", log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    detail = f"\nworker log:\n{log.read_text()[-4000:]}" if log else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
