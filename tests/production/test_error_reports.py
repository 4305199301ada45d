"""Error reports (the debug page, e-mails to ADMINS) never show a secret.

The secrets are made up afresh each run: a report quotes the source lines around each frame, and
a secret written in this file would be quoted from there.
"""
import secrets
import sys

import pytest
from django.views.debug import ExceptionReporter

KINDS = ("redis", "git", "hook", "webhook", "smtp", "db", "warehouse", "local", "product")


@pytest.fixture
def secret():
    tag = secrets.token_hex(6)
    return {kind: f"{kind}-{tag}" for kind in KINDS}


def _fail(warehouse_dsn, password, values):
    raise RuntimeError("the warehouse said no")


def _report(rf, settings, secret) -> str:
    settings.REDIS_URL = settings.CELERY_BROKER_URL = f"redis://:{secret['redis']}@redis.example.com:6379/0"
    settings.WID_REPO_REMOTE = f"https://portal-bot:{secret['git']}@git.example.com/platform/wids.git"
    settings.NOTIFY_WEBHOOK_URL = f"https://hooks.example.com/portal?channel=data&access_token={secret['hook']}"
    settings.NOTIFY_WEBHOOK_SECRET = secret["webhook"]
    settings.EMAIL_HOST_PASSWORD = secret["smtp"]
    # As runserver's request.META holds the process's environment.
    request = rf.post("/products/", {"name": "x"}, DATABASE_URL=f"postgres://portal:{secret['db']}@db.example.com/portal")
    try:
        _fail(f"postgresql://warehouse_admin:{secret['warehouse']}@127.0.0.1:5433/warehouse", secret["local"],
              {"storage_role": "p_churn", "storage_password": secret["product"]})
    except RuntimeError:
        reporter = ExceptionReporter(request, *sys.exc_info())
    return reporter.get_traceback_text() + reporter.get_traceback_html()


def test_an_error_report_shows_no_password_token_or_secret(rf, settings, secret):
    report = _report(rf, settings, secret)
    assert "the warehouse said no" in report
    assert [kind for kind, value in secret.items() if value in report] == []


def test_an_error_report_still_says_where_each_url_points(rf, settings, secret):
    report = _report(rf, settings, secret)
    assert "redis://:********************@redis.example.com:6379/0" in report
    assert "https://portal-bot:********************@git.example.com/platform/wids.git" in report
    assert "channel=data&amp;access_token=********************" in report
