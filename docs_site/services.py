"""Asking for site builds: bursts of changes make one build, and builds never overlap.

Each change adds to a pending count in Redis and schedules the build task, unless one is already
scheduled. The task takes a Redis lock (so builds on every machine take turns) and builds while
changes are pending: changes made during a build are all handled by the next one. A task that
finds the lock taken comes back a moment later instead of waiting in a worker.
"""
import hashlib

import redis
from django.conf import settings
from redis.exceptions import LockError

from docs_site import builder


def _keys() -> tuple[str, str, str]:
    site = hashlib.sha1(str(settings.WID_SITE_ROOT).encode()).hexdigest()[:10]
    return tuple(f"portal:site:{site}:{name}" for name in ("pending", "scheduled", "lock"))


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def site_request_build() -> None:
    """Build the site soon; call after the change has committed (`transaction.on_commit`)."""
    pending, scheduled, _ = _keys()
    r = _redis()
    r.incr(pending)
    if r.set(scheduled, "1", nx=True, ex=settings.WID_SITE_BUILD_TIMEOUT):
        from docs_site.tasks import build_site

        build_site.apply_async(countdown=settings.WID_SITE_BUILD_DELAY)


def site_build_pending() -> list[builder.BuildResult] | None:
    """Build while builds are asked for; None if another build holds the lock."""
    pending, scheduled, lock_key = _keys()
    r = _redis()
    lock = r.lock(lock_key, timeout=settings.WID_SITE_BUILD_TIMEOUT)
    if not lock.acquire(blocking=False):
        return None
    results = []
    try:
        while True:
            r.delete(scheduled)  # from here on, a new change schedules another task
            if not int(r.getdel(pending) or 0):
                return results
            results.append(builder.build())
    finally:
        try:
            lock.release()
        except LockError:
            pass  # expired during a very long build; the next build takes it anew
