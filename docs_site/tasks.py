"""Thin Celery tasks of the WID site; they run on their own queue (settings.WID_SITE_QUEUE), so a
long provisioning job never holds up a rebuild."""
from celery import shared_task

from docs_site import services


@shared_task(bind=True, max_retries=None)
def build_site(self) -> list[str]:
    results = services.site_build_pending()
    if results is None:  # another build is running; it or this one, later, takes the changes
        raise self.retry(countdown=1)
    return [result.kind for result in results]


@shared_task
def request_site_build() -> None:
    """Beat's safety net: a build that finds nothing changed costs one query and no MkDocs run."""
    services.site_request_build()
