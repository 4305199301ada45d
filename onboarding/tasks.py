"""Thin Celery tasks: they take ids, load rows and hand off to services or adapters."""
import logging

from celery import shared_task

from onboarding import services
from onboarding.widrepo import GitError

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=20)
def push_wid_repo(self) -> str:
    """Push the WID repository to WID_REPO_REMOTE; retried with back-off while it is unreachable.

    A push sends every commit not yet on the remote, so a failed push loses nothing: the next
    one (or the periodic one from beat) carries it. A refused push is replayed onto the remote's
    tip by the service; only a replay that needs a person (both sides changed one WID) stops here.
    """
    try:
        return services.wid_repo_push()
    except GitError as exc:
        if exc.permanent:
            logger.error("push to the WID remote needs a person, not retrying: %s", exc)
            raise
        raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 300)) from exc


@shared_task
def check_index() -> int:
    """Log every difference between the WID repository and the index (beat runs it periodically)."""
    differences = services.index_check()
    for line in differences:
        logger.error("index check: %s", line)
    return len(differences)


@shared_task
def suspend_at_sunset() -> list[str]:
    """Suspend the deprecated products whose sunset date has come (beat runs it)."""
    return services.suspend_at_sunset()
