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
    # A destroy's options (docs/adr/0020), kept by its retries: archive the data first (the default),
    # go ahead although live products read it (force, with the platform's reason), and who read it.
    archive = models.BooleanField(default=True, help_text="a destroy archives the product's data first")
    force = models.BooleanField(default=False, help_text="a destroy although live products depend on it")
    destroy_reason = models.TextField(blank=True, help_text="the platform's reason, required with force")
    dependants = models.JSONField(default=list, blank=True,
                                  help_text="slugs of the live products that depended on it, at the destroy")

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


class Archive(models.Model):
    """What a destroy kept of a product: its schemas (pg_dump), lake folder and pipeline repository in
    one folder under ARCHIVE_ROOT with a manifest, until `delete_after` (the sweep deletes it then)."""

    product = models.ForeignKey("onboarding.Product", on_delete=models.PROTECT, related_name="archives")
    job = models.OneToOneField(Job, on_delete=models.PROTECT, related_name="archive_record")
    path = models.CharField(max_length=1000, help_text="the archive's folder")
    created_at = models.DateTimeField(default=timezone.now)
    delete_after = models.DateTimeField(db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    size = models.PositiveBigIntegerField(help_text="bytes, all files")
    manifest = models.JSONField(help_text="manifest.json as written: parts, files and their sha256")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"archive #{self.pk} of {self.product_id} ({self.path})"


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

    MANUAL, SCHEDULE, FILE, UPSTREAM = "manual", "schedule", "file", "upstream:"

    product = models.ForeignKey("onboarding.Product", on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    queue = models.CharField(max_length=100)
    commit = models.CharField(max_length=40, blank=True, help_text="the pipeline repository's commit that ran")
    exit_code = models.IntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # What started it (provisioning/triggers.py, docs/adr/0021): manual, schedule, file, or
    # upstream:<slug>#<run id>; and its wave, the id of the run that began the chain it belongs to.
    trigger = models.CharField(max_length=120, default=MANUAL)
    wave = models.BigIntegerField(null=True, blank=True, db_index=True)
    chained_at = models.DateTimeField(null=True, blank=True,
                                      help_text="when its end was handed on to the products that run after it")
    stopped_chain = models.JSONField(default=list, blank=True,
                                     help_text="products of its wave that got no run because this one failed")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "available_at"], name="run_waiting"),
                   # The sweep for ends never handed on (a worker died between the two).
                   models.Index(fields=["finished_at"], condition=Q(chained_at__isnull=True),
                                name="run_not_chained")]
        constraints = [
            # A product runs once per wave, however many of its upstreams end at the same moment.
            models.UniqueConstraint(fields=["product", "wave"], condition=Q(trigger__startswith="upstream:"),
                                    name="one_upstream_run_per_product_and_wave"),
        ]


class RunLogLine(LogLine):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="lines")

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="one_run_log_line_per_number")]


class PortRead(models.Model):
    """Measured use of one output port by one reader (docs/adr/0019): a consumer product's login or a
    person's login whose statements named the port's table (pg_stat_statements), or, for a feed, a
    consumer's successful run (its confinement mounts the producer's curated/ folder). Refused reads
    (permission denied in the warehouse's log) count apart. Written only by the usage sampler."""

    class ReaderKind(models.TextChoices):
        PRODUCT = "product"
        PERSON = "person"
        RUN = "run"

    product = models.ForeignKey("onboarding.Product", on_delete=models.CASCADE, related_name="port_reads",
                                help_text="the producer")
    port = models.CharField(max_length=63)
    reader_kind = models.CharField(max_length=10, choices=ReaderKind.choices)
    reader = models.CharField(max_length=150, help_text="a consumer's slug or a person's username")
    role = models.CharField(max_length=64, blank=True, help_text="the warehouse login last seen reading")
    first_seen = models.DateTimeField()
    reads = models.PositiveBigIntegerField(default=0)
    last_read_at = models.DateTimeField(null=True, blank=True, db_index=True)
    failed_reads = models.PositiveBigIntegerField(default=0)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["product", "port", "reader_kind", "reader"]
        constraints = [models.UniqueConstraint(fields=["product", "port", "reader_kind", "reader"],
                                               name="one_port_read_per_reader")]


class StatementCount(models.Model):
    """The calls of one pg_stat_statements entry at the last sample, for entries of readers' logins
    that name a published schema: the next sample counts only what grew."""

    userid = models.BigIntegerField(help_text="the role's oid")
    dbid = models.BigIntegerField()
    queryid = models.BigIntegerField()
    toplevel = models.BooleanField()
    calls = models.PositiveBigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["userid", "dbid", "queryid", "toplevel"],
                                               name="one_count_per_statement")]


class UsageCursor(models.Model):
    """Where the usage sampler stopped: one row, locked while a sample runs, so samples never overlap.
    A part never sampled yet takes a baseline instead of counting (what happened before is not dated)."""

    statements_at = models.DateTimeField(null=True, blank=True, help_text="last sample of pg_stat_statements")
    stats_reset = models.DateTimeField(null=True, blank=True, help_text="pg_stat_statements_info.stats_reset seen")
    log_positions = models.JSONField(null=True, blank=True,
                                     help_text="{log file: {offset, modified}} read up to, in the warehouse's log")
    runs_until = models.DateTimeField(null=True, blank=True, help_text="runs finished up to here are counted")


class PortMeasurement(models.Model):
    """What the worker measured of one output port right after a run (docs/adr/0023): rows, files,
    the declared checks' results. Never what the pipeline said of itself, since a pipeline could lie."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="measurements")
    product = models.ForeignKey("onboarding.Product", on_delete=models.CASCADE, related_name="port_measurements")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, help_text="table or feed")
    rows = models.BigIntegerField(null=True, blank=True,
                                  help_text="the table's rows, or the feed's CSV rows; empty when it does not exist")
    files = models.PositiveIntegerField(null=True, blank=True, help_text="a feed's files")
    newest_at = models.DateTimeField(null=True, blank=True, help_text="a feed's newest file")
    write_mark = models.CharField(max_length=60, blank=True,
                                  help_text="a table's oid and the warehouse's count of its rows inserted, updated "
                                            "and deleted: when it moves, the run wrote the table")
    updated_at = models.DateTimeField(null=True, blank=True,
                                      help_text="its data's last update as far as known after this run: the end of "
                                                "the last succeeded run that wrote the table, the feed's newest file")
    checks = models.JSONField(default=list, blank=True, help_text="[{check, passed, detail}]")
    measured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-measured_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="one_measurement_per_run_and_port")]
        indexes = [models.Index(fields=["product", "name", "-measured_at"], name="measurement_latest")]

    @property
    def failed_checks(self) -> list[dict]:
        return [c for c in self.checks if not c.get("passed")]


class ProductHealth(models.Model):
    """A product's health as last evaluated, and notified: its state is written in the transaction that
    records the e-mails and webhooks announcing it, so each change of state is told once."""

    class State(models.TextChoices):
        OK = "ok"
        STALE = "stale"
        FAILING = "failing"

    product = models.OneToOneField("onboarding.Product", on_delete=models.CASCADE, related_name="health")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OK, db_index=True)
    since = models.DateTimeField(default=timezone.now, help_text="when it entered this state")
    reasons = models.JSONField(default=list, blank=True, help_text="why it is stale or failing, one line each")
    evaluated_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                  help_text="when an output may turn stale: beat evaluates it again then")
    last_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 help_text="the newest run whose ports were measured")


class TriggerState(models.Model):
    """What starts a product's runs besides a person, and where each trigger stands (docs/adr/0021).

    The configuration is the WID's at its approved version, copied here (`config_version` says
    which) so that beat's frequent ticks read PostgreSQL, never git. The rest is the triggers'
    memory, shared by every scheduler and worker: the last scheduled slot started, and what the
    product's raw/ folder held when last looked at.
    """

    product = models.OneToOneField("onboarding.Product", on_delete=models.CASCADE, related_name="trigger_state")
    config_version = models.PositiveIntegerField(null=True, blank=True, help_text="the approved version read")
    schedule = models.CharField(max_length=100, blank=True, help_text="cron, UTC; empty: none")
    on_file = models.BooleanField(default=False)
    on_upstream = models.JSONField(default=list, blank=True, help_text="slugs whose successful runs start one here")
    next_run = models.DateTimeField(null=True, blank=True, db_index=True, help_text="the next scheduled slot")
    schedule_slot = models.DateTimeField(null=True, blank=True, help_text="the last scheduled slot started")
    raw_seen = models.JSONField(default=dict, blank=True, help_text="raw/ when last looked at: {path: [mtime_ns, size]}")
    raw_changed_at = models.DateTimeField(null=True, blank=True, help_text="when raw/ was last seen to change")
    raw_pending = models.BooleanField(default=False, help_text="files arrived that no run has started for yet")

    class Meta:
        indexes = [models.Index(fields=["on_file"], condition=Q(on_file=True), name="trigger_watching")]


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
