from pathlib import Path

from portal.settings.base import *  # noqa: F403
from portal.settings.base import BASE_DIR, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# End-to-end tests give their worker a file backend through the environment.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
# Unit tests point this at a fresh repository each (tests/conftest.py); a worker gets it from the environment.
WID_REPO_PATH = Path(env.str("WID_REPO_PATH", default=str(BASE_DIR / "var" / "test-wid-repo")))
WID_REPO_REMOTE = env.str("WID_REPO_REMOTE", default="")
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="portal-test")
CELERY_BEAT_SCHEDULE = {}
