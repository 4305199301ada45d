"""Provisioning jobs (a database row each, with an append-only log), product state, audit."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from onboarding.models import slug_validator
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

    class Origin(models.TextChoices):
        """What asked for the job. A job the portal started for an approved change (an amendment, a
        rotation, a grant or revocation of access) applies a plan that only adds, updates in place or
        removes access without a confirmation; a replacement or a destroy still waits for the platform."""
        REQUEST = "request"
        APPROVAL = "approval"
        ROTATION = "rotation"
        ACCESS = "access"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.PLANNED, Status.APPLYING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    SELF_CONFIRMING = (Origin.APPROVAL, Origin.ROTATION, Origin.ACCESS)

    product = models.ForeignKey("onboarding.Product", on_delete=models.PROTECT, related_name="jobs")
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.REQUEST)
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
    # An apply asked for while another job of the product was active: started when that one ends.
    pending_origin = models.CharField(max_length=10, choices=Job.Origin.choices, blank=True)
    pending_reason = models.CharField(max_length=200, blank=True)
    # One more on every rotation of the product's password (a Terraform variable).
    password_generation = models.PositiveIntegerField(default=0)


class CredentialRead(models.Model):
    """Audit log: every read of a product's credentials."""

    class Kind(models.TextChoices):
        PRODUCT = "product", "the product's login"
        PERSONAL = "personal", "a personal login"
        BREAK_GLASS = "break_glass", "break-glass read by the platform"

    product = models.ForeignKey("onboarding.Product", on_delete=models.CASCADE, related_name="credential_reads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.PRODUCT)
    role = models.CharField(max_length=64, blank=True, help_text="the warehouse login read")
    reason = models.TextField(blank=True)


class AccessRequest(models.Model):
    """A request to read a product's published ports: by a product that depends on a sensitive one,
    or by a person for a purpose until a date. The producer's owners decide; for personal data its
    custodian too (through a signed, single-use link)."""

    class Kind(models.TextChoices):
        PRODUCT = "product"
        PERSON = "person"

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        REVOKED = "revoked"
        EXPIRED = "expired"

    OPEN = (Status.PENDING, Status.APPROVED)

    product = models.ForeignKey("onboarding.Product", on_delete=models.PROTECT, related_name="access_requests",
                                help_text="the producer, whose data is asked for")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    consumer = models.ForeignKey("onboarding.Product", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="access_requests_made")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="access_requests")
    purpose = models.TextField()
    until = models.DateField(null=True, blank=True, help_text="a person's access ends at the end of this day (UTC)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    needs_custodian = models.BooleanField(default=False)
    owner_decision = models.CharField(max_length=10, blank=True)
    owner_decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+")
    owner_decided_at = models.DateTimeField(null=True, blank=True)
    owner_comment = models.TextField(blank=True)
    custodian_email = models.CharField(max_length=254, blank=True)
    custodian_decision = models.CharField(max_length=10, blank=True)
    custodian_decided_at = models.DateTimeField(null=True, blank=True)
    custodian_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "consumer"], condition=Q(status__in=["pending", "approved"]),
                                    name="one_open_access_request_per_consumer"),
            models.UniqueConstraint(fields=["product", "requester"],
                                    condition=Q(status__in=["pending", "approved"], kind="person"),
                                    name="one_open_access_request_per_person"),
        ]

    @property
    def role_name(self) -> str:
        """The person's own warehouse login (a personal request only)."""
        return f"a_{self.pk}"

    @property
    def subject(self) -> str:
        return self.consumer.slug if self.kind == self.Kind.PRODUCT else self.requester.username


class AccessEvent(models.Model):
    """The access report's record: every request, decision, grant, revocation and credentials read."""

    class Kind(models.TextChoices):
        REQUESTED = "requested"
        APPROVED = "approved"
        REJECTED = "rejected"
        GRANTED = "granted"
        REVOKED = "revoked"
        EXPIRED = "expired"
        CREDENTIALS_READ = "credentials_read"
        ROTATED = "rotated"

    product = models.ForeignKey("onboarding.Product", on_delete=models.CASCADE, related_name="access_events")
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    subject_kind = models.CharField(max_length=10, help_text="product, person or team")
    subject = models.CharField(max_length=150, help_text="a product's slug or a username")
    actor = models.CharField(max_length=254, blank=True,
                             help_text="username (a custodian's e-mail); empty when the portal acted")
    actor_name = models.CharField(max_length=300, blank=True)
    detail = models.TextField(blank=True)
    git_pending = models.BooleanField(default=False, db_index=True,
                                      help_text="to be written into the producer's review log in git")
    request = models.ForeignKey(AccessRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def git_comment(self) -> str:
        return f"{self.subject_kind} {self.subject}: {self.detail}" if self.detail else f"{self.subject_kind} {self.subject}"

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


class Source(models.Model):
    """A system the platform registered for products to ingest from (docs/adr/0022). A WID names it
    (`source: {name}`); its address and credentials stay here and on the worker, never in a WID."""

    class Kind(models.TextChoices):
        DATABASE = "database", "database"
        SHARE = "share", "share folder"

    name = models.CharField(max_length=42, unique=True, validators=[slug_validator])
    kind = models.CharField(max_length=10, choices=Kind.choices)
    description = models.TextField(blank=True)
    connection = models.TextField(blank=True, help_text="database: a postgresql:// URL, or env:NAME or file:/path "
                                                        "naming where the worker finds one; never shown")
    path = models.TextField(blank=True, help_text="share: an absolute folder on the workers' machines")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(
            condition=(Q(kind="database") & ~Q(connection="") & Q(path=""))
            | (Q(kind="share") & Q(connection="") & ~Q(path="")),
            name="source_has_what_its_kind_needs")]

    def __str__(self):
        return self.name


class StagedFile(models.Model):
    """A file of a share folder that the worker copied into a product's raw/ area, as it was then:
    the next run copies it again only when it changed."""

    product = models.ForeignKey("onboarding.Product", on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=42)
    name = models.CharField(max_length=255, help_text="the file's name in the share folder")
    size = models.BigIntegerField()
    mtime_ns = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    targets = models.JSONField(default=list, help_text="the files it became in raw/")
    staged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["product", "source", "name"], name="one_staged_file_per_name")]
