import os

from celery import Celery
from kombu import Connection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.production")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A worker that lost Redis tries again 2, 4, 6 ... up to 30 s apart (kombu's defaults, which Celery
# does not expose): after a long outage, the first job approved once Redis is back would wait up to
# half a minute. Every second is cheap against a local broker, and the work waits in PostgreSQL anyway.
_ensure_connection = Connection.ensure_connection


def _ensure_connection_every_second(self, *args, interval_start=1, interval_step=0, interval_max=1, **kwargs):
    return _ensure_connection(self, *args, interval_start=interval_start, interval_step=interval_step,
                              interval_max=interval_max, **kwargs)


Connection.ensure_connection = _ensure_connection_every_second
