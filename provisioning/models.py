"""Provisioning jobs (a database row each, with an append-only log), product state, audit."""
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Job(models.Model):
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
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log_lines = models.PositiveIntegerField(default=0)

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


class JobLogLine(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="lines")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True)
    text = models.TextField()

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


class Run(models.Model):
    """One run of a product's scaffolded pipeline, on the product's own compute quota."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    FINISHED = (Status.SUCCEEDED, Status.FAILED)

    product = models.ForeignKey("onboarding.Product", on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    queue = models.CharField(max_length=100)
    commit = models.CharField(max_length=40, blank=True, help_text="the pipeline repository's commit that ran")
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    log_lines = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class RunLogLine(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="lines")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True)
    text = models.TextField()

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="one_run_log_line_per_number")]


class WebhookDelivery(models.Model):
    """One event for the outgoing webhook: an outbox row, written with the change it reports.

    The row is the truth about the delivery; the worker's task and beat's sweep only act on it,
    so a lost task, a worker restart or a receiver that is down for hours loses nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up: a permanent refusal (4xx) or the last attempt failed

    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=40)
    url = models.CharField(max_length=2000, help_text="NOTIFY_WEBHOOK_URL when the event happened")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_due")]

    def __str__(self):
        return f"{self.event} {self.delivery_id} ({self.status})"
