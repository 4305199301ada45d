"""Follows README's "Run it in production": its environment file and its gunicorn unit, on a free port.

The README's blocks are read from the README itself, so the two cannot drift apart. What cannot be
used here as written is replaced: paths under /etc/portal and /var/lib/portal go to a temporary
directory, the secrets' files are written there, the database is the one pytest-django created,
and nothing is pushed (no git server) or queued where another portal's worker would take it.
"""
import http.client
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from rest_framework.authtoken.models import Token

from tests.factories import TeamFactory, member_of

ROOT = Path(__file__).resolve().parents[2]
HOST = "portal.example.com"
PASSWORD = "a long production password"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Run it in production\n", 1)[1].split("\n## ", 1)[0]


def readme_block(first_line: str) -> str:
    blocks = re.findall(r"```\w*\n(.*?)```", readme_section(), flags=re.S)
    [block] = [b for b in blocks if b.startswith(first_line)]
    return block


def production_environment(tmp_path: Path) -> dict:
    env = {}
    for line in readme_block("# /etc/portal/env").splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            env[name] = value
    db = connection.settings_dict
    file_contents = {
        "SECRET_KEY_FILE": secrets.token_urlsafe(50),
        "DATABASE_URL_FILE": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "TF_STATE_DATABASE_URL_FILE": settings.TF_STATE_DATABASE_URL,
    }
    for name, value in env.items():
        if value.startswith("/etc/portal/"):
            path = tmp_path / "etc" / Path(value).name
            path.parent.mkdir(exist_ok=True)
            path.write_text(file_contents.get(name, secrets.token_urlsafe(20)) + "\n")
            path.chmod(0o600)
            env[name] = str(path)
        elif value.startswith(("/var/lib/portal/", "/srv/")):
            env[name] = str(tmp_path / Path(value).name)
    test_queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), **env,
        "REDIS_URL": settings.CELERY_BROKER_URL,
        "WID_REPO_REMOTE": "",
        # gunicorn itself trusts X-Forwarded-Proto from 127.0.0.1; a proxy on another machine it
        # does not, and then Django's SECURE_PROXY_SSL_HEADER must: so here gunicorn trusts nobody.
        "FORWARDED_ALLOW_IPS": "192.0.2.1",
        "WID_SITE_AUTO_BUILD": "false",
        "CELERY_TASK_DEFAULT_QUEUE": test_queue, "WID_SITE_QUEUE": f"{test_queue}-site", "RUNS_QUEUE": f"{test_queue}-runs",
    }


def gunicorn_command(port: int) -> list[str]:
    [exec_start] = [line for line in readme_block("# /etc/systemd/system/portal-web.service").splitlines()
                    if line.startswith("ExecStart=")]
    program, *args = shlex.split(exec_start.removeprefix("ExecStart="))
    assert program == "/opt/portal/.venv/bin/gunicorn"
    args[args.index("--bind") + 1] = f"127.0.0.1:{port}"
    return [sys.executable, "-m", "gunicorn", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """Plain HTTP to gunicorn, as the TLS-ending proxy in front of it speaks, cookies kept by hand
    (they are `Secure`, which a client library would not send over plain HTTP)."""

    def __init__(self, port: int):
        self.port, self.cookies = port, {}

    def request(self, method, path, *, body=None, headers=None, via_proxy=True):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Host": HOST, **(headers or {})}
        if via_proxy:
            headers["X-Forwarded-Proto"] = "https"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.text = response.read().decode()
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie(header)
            for name, morsel in cookie.items():
                assert morsel["secure"] and morsel["samesite"], f"{name} cookie is not Secure and SameSite"
                self.cookies[name] = morsel.value
        return response


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")
    server = subprocess.Popen(gunicorn_command(port), cwd=ROOT, env=production_environment(tmp_path),
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if Browser(port).request("GET", "/healthz/", via_proxy=False).status == 200:
                break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"gunicorn did not answer /healthz/:\n{(tmp_path / 'gunicorn.log').read_text()[-4000:]}")
        time.sleep(0.2)
    server.log = tmp_path / "gunicorn.log"
    yield server, port
    if server.poll() is None:
        server.kill()
        server.wait()
    log.close()


def test_the_portal_runs_in_production_as_the_readme_says(gunicorn):
    server, port = gunicorn
    team = TeamFactory(slug="growth-analytics", name="Growth analytics")
    alice = member_of(team, username="alice", first_name="Alice", last_name="Analyst")
    hasher = PBKDF2PasswordHasher()
    alice.password = hasher.encode(PASSWORD, hasher.salt())  # production's own hasher, not the tests' fast one
    alice.save()
    token = Token.objects.create(user=alice).key
    browser = Browser(port)

    health = browser.request("GET", "/healthz/", via_proxy=False)
    assert (health.status, json.loads(health.text)) == (200, {"status": "ok", "database": "ok", "redis": "ok"})

    plain = browser.request("GET", "/accounts/login/", via_proxy=False)
    assert (plain.status, plain.headers["Location"]) == (301, f"https://{HOST}/accounts/login/")

    login_page = browser.request("GET", "/accounts/login/")
    assert login_page.status == 200
    assert login_page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)[1]
    signed_in = browser.request(
        "POST", "/accounts/login/", body=f"csrfmiddlewaretoken={csrf}&username=alice&password={PASSWORD.replace(' ', '+')}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": f"https://{HOST}"})
    assert signed_in.status == 302, signed_in.text[:2000]
    assert "sessionid" in browser.cookies
    page = browser.request("GET", signed_in.headers["Location"])
    assert page.status == 200 and "Alice" in page.text

    api = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    created = browser.request("POST", "/api/v1/products/", headers=api, body=json.dumps({
        "slug": "web-sessions", "name": "Web sessions", "domain": "growth", "team": "growth-analytics",
        "target": "local", "classification": "internal", "pii": False, "compute_tier": "small",
        "contacts": {"business": {"name": "Maria", "email": "maria@example.com"},
                     "technical": {"name": "Tom", "email": "tom@example.com"}},
        "data_custodian": {"name": "Carla", "email": "carla@example.com"},
        "sections": {"value_proposition": "Why", "architecture": "How",
                     "integration_points": "With what", "data_surfacing": "For whom"}}))
    assert created.status == 201, created.text
    listed = browser.request("GET", "/api/v1/products/", headers=api)
    assert listed.status == 200
    assert [p["slug"] for p in json.loads(listed.text)["results"]] == ["web-sessions"]
    markdown = browser.request("GET", "/api/v1/products/web-sessions/markdown/", headers=api)
    assert markdown.status == 200 and "slug: web-sessions" in markdown.text

    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=40) == 0
    log = server.log.read_text()
    assert "Shutting down: Master" in log and "Traceback" not in log
