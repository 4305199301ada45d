"""A whole portal for a fault test: its own Redis, a supervised worker and beat, a web server.

Everything but PostgreSQL (the test database) is the test's own, on free ports and queues of its
own, so that stopping its Redis or killing its worker touches nothing else on the machine.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings

from tests.worker import ROOT, _ensure_database, portal_env, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own that keeps nothing across a restart, as on these machines."""

    def __init__(self, workdir: Path):
        self.port, self.dir = free_port(), workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # as a crash: nothing saved, every queued message gone
            self.process.wait(timeout=10)


class Portal:
    """Worker and beat under scripts/supervise.py (as `make run` runs them) and a web server."""

    def __init__(self, tmp_path: Path, redis: PrivateRedis, *, beat: bool = True, site_queue: str = "",
                 **overrides: str):
        """`beat=False` and a `site_queue` of its own: a second instance of one deployment."""
        _ensure_database(settings.TF_STATE_DATABASE_URL)
        queue = f"fault-{os.getpid()}-{redis.port}"
        site_queue = site_queue or f"{queue}-site"
        self.beat = beat
        self.paths = {"repo": tmp_path / "wid-repo", "remote": tmp_path / "remote.git", "mail": tmp_path / "mail",
                      "site": tmp_path / "site", "archive": tmp_path / "archive", "webhook_port": free_port()}
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.web_port = free_port()
        self.env = portal_env(self.paths, **{
            "REDIS_URL": redis.url, "CACHE_URL": redis.url, "CELERY_TASK_DEFAULT_QUEUE": queue,
            "WID_SITE_QUEUE": site_queue, "RUNS_QUEUE": f"{queue}-runs", "WID_SITE_AUTO_BUILD": "false",
            "WID_REPO_REMOTE": "", "WORK_RECONCILE_INTERVAL": "1", "WORK_HEARTBEAT_SECONDS": "1",
            "WORK_LOST_AFTER_SECONDS": "10", "PROVISION_ON_APPROVAL_TARGETS": "local",
            "PORTAL_BASE_URL": f"http://127.0.0.1:{self.web_port}", "TERRAFORM_WORKDIR": str(tmp_path / "tf-work"),
            **overrides})
        self.workdir = tmp_path / "tf-work"
        self.queues = f"{queue},{site_queue},{queue}-runs"
        self.processes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "w")
        supervised = [sys.executable, str(ROOT / "scripts" / "supervise.py"), "--name", name, "--grace", "10", "--",
                      *command]
        self.processes[name] = subprocess.Popen(supervised, env=self.env, cwd=ROOT, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "portal"]
        self._start("worker", [*celery, "worker", "-Q", self.queues, "--concurrency", "3", "--loglevel", "INFO",
                               "-n", f"fault-{self.web_port}@%h"])
        if self.beat:
            self._start("beat", [*celery, "beat", "--loglevel", "INFO", "--schedule",
                                 str(self.logs / "celerybeat-schedule")])
        self._start("web", [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.web_port}"])
        self.wait_for(lambda: "ready." in self.log("worker"), 60, "the worker to start")
        self.wait_for(lambda: self._answers(), 60, "the web server to start")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz/", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def alive(self) -> dict[str, bool]:
        return {name: process.poll() is None for name, process in self.processes.items()}

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def request(self, method: str, path: str, *, token: str = "", session: str = "", body=None,
                timeout: float = 30) -> tuple[int, dict, str]:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        if session:
            headers["Cookie"] = f"sessionid={session}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode(errors="replace")

    def wait_for(self, predicate, timeout: float, what: str):
        try:
            return wait_until(predicate, timeout=timeout, what=what)
        except AssertionError as exc:
            logs = "\n".join(f"--- {name}\n{self.log(name)[-3000:]}" for name in self.processes)
            raise AssertionError(f"{exc}\n{logs}") from None
