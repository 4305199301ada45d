"""Thin Celery tasks of the WID site; they run on their own queue (settings.WID_SITE_QUEUE), so a
long provisioning job never holds up a rebuild."""
from celery import shared_task
from celery.signals import worker_ready

from docs_site import services


@shared_task(ignore_result=True)
def build_site(build_id: int) -> str:
    return services.site_build(build_id)


@shared_task(ignore_result=True)
def request_site_build() -> int:
    """Beat's safety net: a build that finds nothing changed costs one query and no MkDocs run."""
    return services.site_request_build("periodic")


@worker_ready.connect
def _register_this_site(sender, **kwargs):
    """A site worker that starts makes its site known (and up to date) by asking for a build."""
    from django.conf import settings

    queues = {q.name for q in sender.app.amqp.queues.consume_from.values()} if sender.app.amqp.queues else set()
    if settings.WID_SITE_QUEUE in queues:
        services.site_request_build("site worker started")
