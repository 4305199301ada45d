from portal.settings.base import *  # noqa: F403
from portal.settings.base import env

DEBUG = env.bool("DEBUG", default=True)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
# Rendered rows outlive a restart in Redis; while templates are being edited, render every time.
PAGE_CACHE_SECONDS = env.int("PAGE_CACHE_SECONDS", default=0)
