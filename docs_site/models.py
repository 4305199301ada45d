"""Site builds: each a row of long work (portal.work), one queued and one running per site at most."""
from django.db import models
from django.db.models import Q

from portal.work.models import LogLine, Work


class SiteBuild(Work):
    """A request to build one site's output (an instance's WID_SITE_ROOT), then its build.

    Requests coalesce: while a queued build exists for a site, asking again adds nothing, and
    every change committed before the build starts is in it.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    site = models.CharField(max_length=64, help_text="which instance's site output (settings.WID_SITE_KEY)")
    queue = models.CharField(max_length=100, help_text="the queue of that instance's site worker")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    kind = models.CharField(max_length=20, blank=True, help_text="full or incremental, once built")
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["site"], condition=Q(status="queued"), name="one_queued_build_per_site"),
            models.UniqueConstraint(fields=["site"], condition=Q(status="running"), name="one_running_build_per_site"),
        ]


class SiteBuildLogLine(LogLine):
    build = models.ForeignKey(SiteBuild, on_delete=models.CASCADE, related_name="lines")

    class Meta:
        ordering = ["build", "number"]
        constraints = [models.UniqueConstraint(fields=["build", "number"], name="one_site_build_log_line_per_number")]
