"""What every piece of long work has in common: a row that says who runs it, since when, until when.

Concrete work (provisioning jobs, pipeline runs, site builds) subclasses `Work` and names its log
model; `portal.work.kernel` claims, beats, logs and reconciles them all the same way.
"""
import uuid

from django.db import models
from django.utils import timezone


class Work(models.Model):
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the process that claimed it")
    process_group = models.IntegerField(null=True, blank=True,
                                        help_text="the child process group it runs, on the worker's host")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    available_at = models.DateTimeField(default=timezone.now, help_text="not to be started before")
    # The wake-up call: when it was last sent, and to which Redis (its run id changes on a restart,
    # so a queued row whose call went to a Redis that is gone is sent again at once).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatched_to = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    log_lines = models.PositiveIntegerField(default=0)
    log_bytes = models.PositiveBigIntegerField(default=0)
    log_truncated = models.BooleanField(default=False)
    log_pruned_at = models.DateTimeField(null=True, blank=True, help_text="when retention removed its log")

    class Meta:
        abstract = True


class LogLine(models.Model):
    number = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True)
    text = models.TextField()

    class Meta:
        abstract = True


class Delivery(Work):
    """One message to the outside (a webhook POST or an e-mail): an outbox row, written in the
    transaction that records the change it reports.

    The row is the truth about the delivery; the worker's task and the reconciler only act on
    it, so a lost task, a restarted Redis or a receiver that is down for hours loses nothing.
    Each attempt is a line of its log.
    """

    class Channel(models.TextChoices):
        WEBHOOK = "webhook"
        EMAIL = "email"

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up: a permanent refusal or the last attempt failed

    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.WEBHOOK)
    event = models.CharField(max_length=40)
    url = models.CharField(max_length=2000, blank=True, help_text="NOTIFY_WEBHOOK_URL when the event happened")
    recipients = models.JSONField(default=list, blank=True, help_text="e-mail addresses (e-mails only)")
    payload = models.JSONField(help_text="the webhook's data, or an e-mail's subject and body")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "available_at"], name="delivery_due")]

    def __str__(self):
        return f"{self.channel} {self.event} {self.delivery_id} ({self.status})"


class DeliveryLogLine(LogLine):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="lines")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="one_delivery_log_line_per_number")]
