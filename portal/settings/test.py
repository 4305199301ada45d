import os
from pathlib import Path

from portal.settings.base import *  # noqa: F403
from portal.settings.base import BASE_DIR, CELERY_BEAT_SCHEDULE, DATABASES, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# End-to-end tests give their worker a file backend through the environment.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
# Unit tests point this at a fresh repository each (tests/conftest.py); a worker gets it from the environment.
WID_REPO_PATH = Path(env.str("WID_REPO_PATH", default=str(BASE_DIR / "var" / "test-wid-repo")))
WID_REPO_REMOTE = env.str("WID_REPO_REMOTE", default="")


def _own(queue: str) -> str:
    """Each pytest-xdist process (`make test` runs two) has queues of its own: its tasks name rows of
    its own database. Idempotent, since the portal processes a test starts inherit both variables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"{queue}-{worker}" if worker and not queue.endswith(f"-{worker}") else queue


CELERY_TASK_DEFAULT_QUEUE = _own(env.str("CELERY_TASK_DEFAULT_QUEUE", default="portal-test"))
# Only the reconciler: fault tests run beat (tests/faults); the triggers' test (tests/e2e) adds their
# ticks with TRIGGERS_BEAT=true.
CELERY_BEAT_SCHEDULE = {"reconcile-work": CELERY_BEAT_SCHEDULE["reconcile-work"],
                        **({name: CELERY_BEAT_SCHEDULE[name] for name in ("watch-raw-folders", "start-scheduled-runs")}
                           if env.bool("TRIGGERS_BEAT", default=False) else {})}
WID_SITE_QUEUE = _own(env.str("WID_SITE_QUEUE", default=f"{CELERY_TASK_DEFAULT_QUEUE}-site"))
RUNS_QUEUE = _own(env.str("RUNS_QUEUE", default=f"{CELERY_TASK_DEFAULT_QUEUE}-runs"))
CELERY_TASK_ROUTES = {"docs_site.tasks.*": {"queue": WID_SITE_QUEUE},
                      "provisioning.tasks.execute_run": {"queue": RUNS_QUEUE}}
# Tests that follow the site turn this on (and give the site a directory of their own).
WID_SITE_AUTO_BUILD = env.bool("WID_SITE_AUTO_BUILD", default=False)
WID_SITE_ROOT = Path(env.str("WID_SITE_ROOT", default=str(BASE_DIR / "var" / "test-site")))
# Tests opt in to provisioning on approval (tests/provisioning); elsewhere approval only decides.
PROVISION_ON_APPROVAL_TARGETS = env.list("PROVISION_ON_APPROVAL_TARGETS", default=[])
TF_STATE_DATABASE_URL = env.str("TF_STATE_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/portal_tfstate_test")
TERRAFORM_WORKDIR = Path(env.str("TERRAFORM_WORKDIR", default=str(BASE_DIR / "var" / "test-tf-work")))
LAKE_ROOT = Path(env.str("LAKE_ROOT", default=str(BASE_DIR / "var" / "test-lake")))
PIPELINES_ROOT = Path(env.str("PIPELINES_ROOT", default=str(BASE_DIR / "var" / "test-pipelines")))
ARCHIVE_ROOT = Path(env.str("ARCHIVE_ROOT", default=str(BASE_DIR / "var" / "test-archive")))
DASHBOARD_CACHE_SECONDS = 0
# Tests that check the page cache turn it on; a process's cache of its own (tests run side by side).
PAGE_CACHE_SECONDS = 0
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DATABASES["default"]["CONN_MAX_AGE"] = 0
