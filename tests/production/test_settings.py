"""Production settings: the default of every process, clean under `check --deploy`, secrets from files."""
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.settings.base import secret

ROOT = Path(__file__).resolve().parents[2]
# DJANGO_ALLOW_ASYNC_UNSAFE: the browser tests set it in this process; no deployment has it.
SETTINGS_VARIABLES = ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "SECRET_KEY_FILE", "ALLOWED_HOSTS", "DEBUG",
                      "DJANGO_ALLOW_ASYNC_UNSAFE")


def _environment(**extra) -> dict:
    """The test run's environment without any Django settings choice, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    return {**env, **extra}


def _production(**extra) -> dict:
    return _environment(SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="portal.example.com", **extra)


def _run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_it_passes_the_deploy_checks_with_the_variables_the_readme_lists():
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_it_reports_a_safety_switched_off_from_the_environment():
    result = _run([sys.executable, "manage.py", "check", "--deploy"], _production(SECURE_SSL_REDIRECT="false"))
    assert "security.W008" in result.stderr


PRINT_SETTINGS = "from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)"


@pytest.mark.parametrize("command", [
    [sys.executable, "-c", f"import portal.celery; {PRINT_SETTINGS}"],  # worker and beat
    [sys.executable, "-c", f"import portal.wsgi; {PRINT_SETTINGS}"],  # gunicorn
    [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", PRINT_SETTINGS],
], ids=["celery", "wsgi", "manage.py"])
def test_every_process_started_without_settings_runs_production_settings_without_debug(command):
    result = _run(command, _production(DEBUG="true"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["portal.settings.production", "False"]


def test_a_worker_started_without_settings_or_secret_key_refuses_and_says_why():
    result = _run([sys.executable, "-m", "celery", "-A", "portal", "worker", "--queues", "portal-test-never"],
                  _environment(ALLOWED_HOSTS="portal.example.com"))
    assert result.returncode != 0
    assert "Set SECRET_KEY (or SECRET_KEY_FILE, a file holding it): production settings" in result.stderr
    assert "DJANGO_SETTINGS_MODULE=portal.settings.dev" in result.stderr


def test_every_secret_can_come_from_a_file(tmp_path):
    values = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://portal:db-password@db.example.com:5432/portal",
        "TF_STATE_DATABASE_URL": "postgres://tfstate:state-password@db.example.com:5432/portal_tfstate",
        "REDIS_URL": "redis://:redis-password@redis.example.com:6379/0",
        "NOTIFY_WEBHOOK_SECRET": "webhook-secret",
        "EMAIL_HOST_PASSWORD": "smtp-password",
    }
    env = _environment(ALLOWED_HOSTS="portal.example.com")
    for name, value in values.items():
        env.pop(name, None)
        (tmp_path / name).write_text(value + "\n")  # as an editor or `echo` leaves it
        env[f"{name}_FILE"] = str(tmp_path / name)
    script = ("import json; from django.conf import settings as s; print(json.dumps({"
              "'SECRET_KEY': s.SECRET_KEY, 'DATABASE_PASSWORD': s.DATABASES['default']['PASSWORD'], "
              "'TF_STATE_DATABASE_URL': s.TF_STATE_DATABASE_URL, 'REDIS_URL': s.CELERY_BROKER_URL, "
              "'NOTIFY_WEBHOOK_SECRET': s.NOTIFY_WEBHOOK_SECRET, 'EMAIL_HOST_PASSWORD': s.EMAIL_HOST_PASSWORD}))")
    result = _run([sys.executable, "-c", f"import portal.celery; {script}"], env)
    assert result.returncode == 0, result.stderr
    expected = {**values, "DATABASE_PASSWORD": "db-password"}
    del expected["DATABASE_URL"]
    assert json.loads(result.stdout) == expected


def test_a_secret_file_keeps_everything_but_its_final_line_break(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("  spaces and\ttabs kept  \r\n")
    monkeypatch.setenv("PORTAL_TEST_SECRET_FILE", str(tmp_path / "key"))
    monkeypatch.delenv("PORTAL_TEST_SECRET", raising=False)
    assert secret("PORTAL_TEST_SECRET") == "  spaces and\ttabs kept  "


def test_a_secret_set_twice_is_refused(tmp_path, monkeypatch):
    (tmp_path / "key").write_text("from the file")
    monkeypatch.setenv("PORTAL_TEST_SECRET_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("PORTAL_TEST_SECRET", "from the environment")
    with pytest.raises(ImproperlyConfigured, match="Set PORTAL_TEST_SECRET or PORTAL_TEST_SECRET_FILE, not both"):
        secret("PORTAL_TEST_SECRET")


def test_an_unreadable_secret_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_TEST_SECRET_FILE", str(tmp_path / "missing"))
    monkeypatch.delenv("PORTAL_TEST_SECRET", raising=False)
    with pytest.raises(ImproperlyConfigured, match=r"PORTAL_TEST_SECRET_FILE names .*missing, which cannot be read"):
        secret("PORTAL_TEST_SECRET", default="unused")


def test_a_missing_required_secret_names_both_ways_to_set_it(monkeypatch):
    monkeypatch.delenv("PORTAL_TEST_SECRET", raising=False)
    monkeypatch.delenv("PORTAL_TEST_SECRET_FILE", raising=False)
    with pytest.raises(ImproperlyConfigured, match=r"Set PORTAL_TEST_SECRET \(or PORTAL_TEST_SECRET_FILE"):
        secret("PORTAL_TEST_SECRET")
