"""Provisioning jobs (a database row each, with an append-only log), product state, audit."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.work.models import LogLine, Work


class Job(Work):
    class Action(models.TextChoices):
        PLAN = "plan"
        APPLY = "apply"
        DESTROY = "destroy"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PLANNED = "planned"
        APPLYING = "applying"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.PLANNED, Status.APPLYING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    product = models.ForeignKey("onboarding.Product", on_delete=models.PROTECT, related_name="jobs")
    action = models.CharField(max_length=10, choices=Action.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    step = models.CharField(max_length=20, blank=True, help_text="render, init, plan, apply, outputs")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", help_text="empty when the policy's approval started it")
    reason = models.CharField(max_length=200, blank=True)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    confirmed_summary = models.JSONField(null=True, blank=True)
    plan_summary = models.JSONField(null=True, blank=True)
    planned_changes = models.JSONField(default=list, blank=True)
    outputs = models.JSONField(default=dict, blank=True, help_text="sensitive values redacted")
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The lock: one active job per product. A worker that dies leaves its job active until
            # the reconciler (beat) fails it, so the lock cannot be held forever.
            models.UniqueConstraint(fields=["product"], condition=Q(status__in=["queued", "running", "planned",
                                                                                "applying"]),
                                    name="one_active_job_per_product"),
        ]
        # The dashboard's recent failures: without it, every failed job ever is read to keep a week's.
        indexes = [models.Index(fields=["status", "finished_at"], name="job_status_finished")]

    def __str__(self):
        return f"{self.action} #{self.pk} of {self.product_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class JobLogLine(LogLine):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="lines")

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="one_log_line_per_number")]


class Provisioning(models.Model):
    """What provisioning knows of one product: its infrastructure's state, in short."""

    product = models.OneToOneField("onboarding.Product", on_delete=models.CASCADE, related_name="provisioning")
    provisioned = models.BooleanField(default=False)
    last_job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    provisioned_at = models.DateTimeField(null=True, blank=True)
    template_version = models.CharField(max_length=20, blank=True)
    outputs = models.JSONField(default=dict, blank=True, help_text="non-secret outputs of the last apply")
    drifted = models.BooleanField(default=False)
    drift_checked_at = models.DateTimeField(null=True, blank=True)
    drift_details = models.JSONField(default=list, blank=True)
    retired = models.BooleanField(default=False)


class CredentialRead(models.Model):
    """Audit log: every read of a product's credentials."""

    product = models.ForeignKey("onboarding.Product", on_delete=models.CASCADE, related_name="credential_reads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]


class Run(Work):
    """One run of a product's scaffolded pipeline, on the product's own compute quota."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    product = models.ForeignKey("onboarding.Product", on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    queue = models.CharField(max_length=100)
    commit = models.CharField(max_length=40, blank=True, help_text="the pipeline repository's commit that ran")
    exit_code = models.IntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "available_at"], name="run_waiting")]


class RunLogLine(LogLine):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="lines")

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="one_run_log_line_per_number")]
