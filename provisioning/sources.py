"""The platform's register of ingestion sources (docs/adr/0022): databases to extract from, share
folders to copy spreadsheets from.

A WID names a source (`source: {name}`), never an address, a path or a credential: those stay in
this register, which only the platform writes and only the platform reads in full. Everyone signed
in may list the names, kinds and descriptions, to choose one. A database's connection is a
postgresql:// URL, or a reference (`env:NAME`, `file:/path`) to where the workers find one, so
that the portal's database need not hold the password at all; it is never shown, only masked.
"""
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from rest_framework import serializers

from onboarding import selectors as onboarding
from onboarding.validation import LineField, SlugField, TextField, unknown_keys
from portal.errors import Conflict, InvalidInput, NotAllowed, NotFound, flatten_errors
from provisioning.models import Source

# The ingestion that reads each kind of source.
PATTERN_KINDS = {"database_extract": Source.Kind.DATABASE, "spreadsheet": Source.Kind.SHARE}
URL_SCHEMES = ("postgresql", "postgres")
ENV_REFERENCE = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]{0,99})$")
MASK = "***"


# --- input ----------------------------------------------------------------------------------------
class SourceInput(serializers.Serializer):
    name = SlugField(help_text="What WIDs call it (source: {name}).")
    kind = serializers.ChoiceField(choices=Source.Kind.values, help_text="database or share.")
    description = TextField(required=False, allow_blank=True, default="", max_length=2000, trim_whitespace=False)
    connection = LineField(required=False, allow_blank=True, default="", max_length=2000, trim_whitespace=False,
                           help_text="database: a postgresql:// URL, or env:NAME or file:/path where the workers "
                                     "find one. Write-only.")
    path = LineField(required=False, allow_blank=True, default="", max_length=1000, trim_whitespace=False,
                     help_text="share: the folder's absolute path on the workers' machines.")

    def validate_connection(self, value):
        return check_connection(value) if value else value

    def validate_path(self, value):
        return check_share_path(value) if value else value

    def validate(self, attrs):
        needed, refused = ("connection", "path") if attrs["kind"] == Source.Kind.DATABASE else ("path", "connection")
        errors = {}
        if not attrs.get(needed):
            errors[needed] = [f"A {attrs['kind']} source needs its {needed}."]
        if attrs.get(refused):
            errors[refused] = [f"A {attrs['kind']} source has no {refused}."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class SourceChangeInput(serializers.Serializer):
    """What a registered source may change: its description, and where it is (a rotated password,
    a moved folder). Its name and kind are what WIDs rely on."""

    description = TextField(required=False, allow_blank=True, max_length=2000, trim_whitespace=False)
    connection = LineField(required=False, max_length=2000, trim_whitespace=False)
    path = LineField(required=False, max_length=1000, trim_whitespace=False)

    def validate_connection(self, value):
        return check_connection(value)

    def validate_path(self, value):
        return check_share_path(value)


def check_connection(value: str) -> str:
    """A postgresql:// URL libpq reads, or a reference. The message never repeats the value."""
    if ENV_REFERENCE.fullmatch(value):
        return value
    if value.startswith("file:"):
        check_absolute_path(value[len("file:"):])
        return value
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018  (urlsplit checks the port only when asked)
    except ValueError:
        raise serializers.ValidationError("The URL's port is not a number.") from None
    if parts.scheme not in URL_SCHEMES:
        raise serializers.ValidationError(
            "Give a postgresql://user:password@host:port/database URL, or env:NAME or file:/path naming where "
            "the workers find one.")
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(value)
    except Exception:  # noqa: BLE001  (psycopg's message may quote the URL)
        raise serializers.ValidationError("This URL cannot be read as a PostgreSQL connection URL.") from None
    if not params.get("dbname"):
        raise serializers.ValidationError("Name the database in the URL (postgresql://.../DATABASE).")
    return value


def check_absolute_path(value: str) -> str:
    if not value.startswith("/") or value == "/" or os.path.normpath(value) != value:
        raise serializers.ValidationError("Give an absolute, normalised path: no '..', no '//', no trailing '/'.")
    return value


def check_share_path(value: str) -> str:
    """An absolute folder, apart from everything the portal keeps: a share that held the lake or the
    pipelines' repositories would let one product copy another's data."""
    check_absolute_path(value)
    path = Path(value)
    for name in ("LAKE_ROOT", "PIPELINES_ROOT", "TERRAFORM_WORKDIR", "WID_REPO_PATH", "WID_SITE_ROOT", "BASE_DIR"):
        kept = Path(os.path.abspath(getattr(settings, name)))
        if path == kept or kept in path.parents or path in kept.parents:
            raise serializers.ValidationError(f"A share folder cannot hold or be inside the portal's {name}.")
    return value


def _clean(serializer_class, data) -> dict:
    if not isinstance(data, dict):
        raise InvalidInput("Send a JSON object.", errors={"body": ["Send a JSON object."]})
    unknown = unknown_keys(data, serializer_class())
    if unknown:
        raise InvalidInput(errors=unknown)
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise InvalidInput(errors=flatten_errors(serializer.errors))
    return dict(serializer.validated_data)


# --- reads ----------------------------------------------------------------------------------------
def source_list():
    return Source.objects.select_related("created_by").all()


def source_get(name: str) -> Source:
    try:
        return Source.objects.select_related("created_by").get(name=name)
    except Source.DoesNotExist:
        raise NotFound(f"No source {name!r} is registered.") from None


def masked(source: Source) -> str:
    """The connection with its password (and any secret parameter) hidden; a reference as it is."""
    if source.kind != Source.Kind.DATABASE:
        return ""
    value = source.connection
    if ENV_REFERENCE.fullmatch(value) or value.startswith("file:"):
        return value
    parts = urlsplit(value)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostinfo}" if ":" in userinfo else f"{user}@{hostinfo}"
    query = urlencode([(k, MASK if k in ("password", "sslpassword", "sslkey") else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def source_users(name: str) -> list[str]:
    """Slugs of the products whose WID (its current version, or the approved one of an amendment)
    reads this source."""
    return onboarding.product_slugs_naming_source(name)


def check_source_reference(cleaned: dict) -> dict[str, list[str]]:
    """One of settings.WID_REFERENCE_CHECKS: the source a WID names is registered, of the kind its
    ingestion reads. (Onboarding checks the shape; only the register knows the names.)"""
    ingestion = cleaned.get("ingestion") or "none"
    name = (cleaned.get("source") or {}).get("name")
    wanted = PATTERN_KINDS.get(ingestion)
    if wanted is None or not name:
        return {}
    kind = Source.objects.filter(name=name).values_list("kind", flat=True).first()
    if kind is None:
        return {"source.name": [f"No source named {name!r} is registered: choose one from /api/v1/sources/, or "
                                f"ask the platform team to register it."]}
    if kind != wanted:
        return {"source.name": [f"{name} is a {Source.Kind(kind).label}: a {ingestion} reads a "
                                f"{Source.Kind(wanted).label}."]}
    return {}


# --- writes (the platform only) -------------------------------------------------------------------
def _platform_only(user) -> None:
    """`user` None is the machine's own command line (`manage.py source`), which is the platform's."""
    if user is not None and not onboarding.user_is_platform(user):
        raise NotAllowed("Only the platform team registers, changes and removes sources.")


def source_create(*, user, data: dict) -> Source:
    _platform_only(user)
    values = _clean(SourceInput, data)
    try:
        with transaction.atomic():
            return Source.objects.create(created_by=user, **values)
    except IntegrityError:
        raise InvalidInput.on("name", f"A source named {values['name']!r} is registered already.") from None


def source_update(*, user, name: str, data: dict) -> Source:
    _platform_only(user)
    with transaction.atomic():
        source = Source.objects.select_for_update().filter(name=name).first()
        if source is None:
            raise NotFound(f"No source {name!r} is registered.")
        values = _clean(SourceChangeInput, data)
        wrong = {"connection": Source.Kind.SHARE, "path": Source.Kind.DATABASE}
        refused = {key: [f"A {source.kind} source has no {key}."] for key in values if wrong.get(key) == source.kind}
        if refused:
            raise InvalidInput(errors=refused)
        for key, value in values.items():
            setattr(source, key, value)
        source.save(update_fields=list(values) or None)
    return source_get(name)


def source_delete(*, user, name: str) -> None:
    """Refused while a product reads it: its next run would fail."""
    _platform_only(user)
    with transaction.atomic():
        source = Source.objects.select_for_update().filter(name=name).first()
        if source is None:
            raise NotFound(f"No source {name!r} is registered.")
        users = source_users(name)
        if users:
            raise Conflict(f"Source {name} is read by {', '.join(users)}: change their WIDs first.",
                           errors={"products": users})
        source.delete()


# --- on the worker --------------------------------------------------------------------------------
class Unresolvable(Exception):
    """The worker cannot tell where the source is; the message names neither address nor path."""


def connection_url(source: Source) -> str:
    """The URL a worker connects with: the stored one, or the one its reference names on this machine."""
    value = source.connection
    reference = ENV_REFERENCE.fullmatch(value)
    if reference:
        found = os.environ.get(reference.group(1), "").strip()
        if not found:
            raise Unresolvable(f"its connection is the environment variable {reference.group(1)}, which this "
                               "worker does not have")
        return found
    if value.startswith("file:"):
        try:
            return Path(value[len("file:"):]).read_text().strip()
        except OSError as exc:
            raise Unresolvable(f"the file holding its connection cannot be read on this worker ({exc.strerror})"
                               ) from None
    return value
