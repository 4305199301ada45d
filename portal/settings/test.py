from portal.settings.base import *  # noqa: F403
from portal.settings.base import BASE_DIR, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Each test points this at a fresh repository (see tests/conftest.py).
WID_REPO_PATH = BASE_DIR / "var" / "test-wid-repo"
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="portal-test")
CELERY_BEAT_SCHEDULE = {}
