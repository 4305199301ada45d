"""Asking for site builds: bursts of changes make one build, and builds of one site never overlap.

Every instance of the portal serves a site output of its own (WID_SITE_ROOT, named by
WID_SITE_KEY) built by its own site worker (WID_SITE_QUEUE). A change asks every known site for a
build: a queued `SiteBuild` row per site, unless one is already queued (a partial unique index), so
a burst of changes makes one build, and changes made during a build go into the next. The rows are
the truth; Celery only wakes the site's worker, and the reconciler wakes it again if Redis lost
the call. A second partial unique index keeps one build per site running.
"""
import hashlib
import socket
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from docs_site import builder
from docs_site.models import SiteBuild, SiteBuildLogLine
from onboarding.widrepo import get_repository
from portal.work import kernel

KNOWN_FOR = timedelta(days=30)  # a site that asked for no build this long is taken as gone
WAIT_SECONDS = 1.0  # a request that finds a build of its site running tries again this much later


def site_key() -> str:
    if settings.WID_SITE_KEY:
        return settings.WID_SITE_KEY
    return hashlib.sha1(f"{socket.gethostname()}:{settings.WID_SITE_ROOT}".encode()).hexdigest()[:16]


BUILDS = kernel.register(kernel.Kind(
    name="site-build", model=SiteBuild, task="docs_site.tasks.build_site", queue=lambda build: build.queue,
    waiting=Q(status=SiteBuild.Status.QUEUED), running=Q(status=SiteBuild.Status.RUNNING),
    log_model=SiteBuildLogLine, log_fk="build",
))


def site_request_build(reason: str = "") -> int:
    """Ask every known site for a build; returns how many sites were asked. Writes rows in the
    caller's transaction (they are sent once it commits)."""
    own = (site_key(), settings.WID_SITE_QUEUE)
    recent = (SiteBuild.objects.filter(created_at__gte=timezone.now() - KNOWN_FOR).exclude(site=own[0])
              .order_by("site", "-created_at").distinct("site").values_list("site", "queue"))
    sites = [own, *recent]
    for site, queue in sites:
        try:
            with transaction.atomic():
                build = SiteBuild.objects.create(site=site, queue=queue, reason=reason[:200])
        except IntegrityError:
            continue  # a build of it is queued already: this change goes into that one
        kernel.dispatch(build)
    return len(sites)


def _catch_up() -> None:
    """In a shared deployment this instance's copy may be behind the remote: the site shows it all."""
    repo = get_repository()
    if repo.shared:
        with repo.locked():
            repo.sync()


def site_build(build_id: int) -> str:
    """Build the site for a queued request, if it is this instance's and no build of it runs."""
    build = SiteBuild.objects.filter(pk=build_id).first()
    if build is None or build.status != SiteBuild.Status.QUEUED:
        return "not queued"
    if build.site != site_key():
        return "another instance's"  # its own site worker takes it (its queue was misrouted here)
    try:
        with transaction.atomic():
            claimed = kernel.claim(SiteBuild, build.pk, timeout=settings.WID_SITE_BUILD_TIMEOUT)
    except IntegrityError:  # a build of this site is running: this request waits for it
        SiteBuild.objects.filter(pk=build.pk).update(available_at=timezone.now() + timedelta(seconds=WAIT_SECONDS))
        kernel.dispatch_later(build, WAIT_SECONDS)
        return "waiting"
    if not claimed:
        return "taken"
    build.refresh_from_db()
    with kernel.Beat(build):
        try:
            _catch_up()
            result = builder.build()
        except Exception as exc:
            kernel.append(build, f"Error: {type(exc).__name__}: {exc}")
            SiteBuild.objects.filter(pk=build.pk).update(status=SiteBuild.Status.FAILED, finished_at=timezone.now(),
                                                         error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
    kernel.append(build, f"{result.kind} build: {result.pages} pages, {result.rendered} rendered, "
                         f"{result.seconds:.2f} s")
    SiteBuild.objects.filter(pk=build.pk).update(status=SiteBuild.Status.SUCCEEDED, kind=result.kind,
                                                 finished_at=timezone.now())
    return result.kind
