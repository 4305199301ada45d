"""The database side of onboarding: teams (database only) and an index of the WID repository.

Products and review events are rebuilt from git by `manage.py rebuild_index`; nothing in them
is authoritative except as a fast copy of the files.
"""
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from onboarding import widfile

slug_validator = RegexValidator(
    widfile.SLUG_PATTERN,
    "Use 3 to 42 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen.",
)


def _choices(values):
    return [(v, v.replace("_", " ")) for v in values]


class Team(models.Model):
    slug = models.CharField(max_length=42, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_user_and_team")]
        ordering = ["team", "user__username"]


class Product(models.Model):
    slug = models.CharField(max_length=42, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=42, validators=[slug_validator], db_index=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="products")
    status = models.CharField(max_length=20, choices=_choices(widfile.STATUSES), db_index=True)
    version = models.PositiveIntegerField()
    approved_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="the version whose infrastructure is live; empty before the first approval")
    target = models.CharField(max_length=10, choices=_choices(widfile.TARGETS))
    classification = models.CharField(max_length=20, choices=_choices(widfile.CLASSIFICATIONS))
    pii = models.BooleanField()
    compute_tier = models.CharField(max_length=10, choices=_choices(widfile.COMPUTE_TIERS))
    contacts = models.JSONField()
    data_custodian = models.JSONField()
    depends_on = models.JSONField(default=list)
    outputs = models.JSONField(default=list)
    ingestion = models.CharField(max_length=20, choices=_choices(widfile.INGESTIONS), default="none")
    source = models.JSONField(null=True, blank=True)
    schedule = models.CharField(max_length=100, null=True, blank=True, help_text="cron, UTC; null without one")
    triggers = models.JSONField(null=True, blank=True)
    suspended = models.BooleanField(default=False, help_text="access revoked, data kept (the WID says so)")
    sunset = models.DateField(null=True, blank=True, help_text="when a deprecated product goes")
    sections = models.JSONField()
    path = models.CharField(max_length=200)
    head_sha = models.CharField(max_length=40)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class ReviewEvent(models.Model):
    """One entry of a WID's review log (the `## Review log` section of its file)."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="review_events")
    position = models.PositiveIntegerField()
    action = models.CharField(max_length=20, choices=_choices(widfile.REVIEW_ACTIONS))
    actor = models.CharField(max_length=150, blank=True, help_text="username; empty when the policy decided")
    actor_name = models.CharField(max_length=300, blank=True)
    comment = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["product", "position"]
        constraints = [models.UniqueConstraint(fields=["product", "position"], name="one_event_per_position")]

    @property
    def by_policy(self) -> bool:
        return not self.actor


class MembershipEvent(models.Model):
    """Append-only audit of team membership, so "was this person in the team at time T" has an
    answer after they left (the four-eyes rule asks it about the moment a WID was submitted)."""

    class Kind(models.TextChoices):
        JOINED = "joined"
        LEFT = "left"
        ROLE_CHANGED = "role_changed"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="membership_events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership_events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    role = models.CharField(max_length=10, choices=Membership.Role.choices, help_text="the role after the event")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+", help_text="who made the change")
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["team", "user", "at"], name="membership_event_lookup")]
