"""Production: the default of every process (manage.py, gunicorn, Celery), so that a process started
without settings never runs with DEBUG. `manage.py check --deploy` reports nothing with the variables
the README's "Run it in production" lists; each safety below can be relaxed from the environment.
"""
from django.core.exceptions import ImproperlyConfigured

from portal.settings.base import *  # noqa: F403
from portal.settings.base import env, secret

DEBUG = False
try:
    SECRET_KEY = secret("SECRET_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
except ImproperlyConfigured as exc:
    raise ImproperlyConfigured(
        f"{exc}: production settings, the default of manage.py, gunicorn and Celery, need it; "
        "for development set DJANGO_SETTINGS_MODULE=portal.settings.dev") from None
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Load balancers and process managers check health over plain HTTP, on the portal's own port.
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
# Behind a proxy that ends TLS, the header it sets to say so: "HTTP_X_FORWARDED_PROTO,https". Only
# for a proxy that always sets (overwrites) it, or any client could claim to be on HTTPS.
SECURE_PROXY_SSL_HEADER = env.tuple("SECURE_PROXY_SSL_HEADER", default=None)
if SECURE_PROXY_SSL_HEADER is not None and len(SECURE_PROXY_SSL_HEADER) != 2:
    raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must be HEADER,VALUE, e.g. HTTP_X_FORWARDED_PROTO,https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
