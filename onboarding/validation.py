"""Field rules of a WID, shared by the REST API, the web form and the index rebuild.

A DRF serializer describes them once: the API uses it for its OpenAPI schema, and the services
run it on every input, whichever door the input came through.
"""
import re
from datetime import datetime, timezone

import sqlparse
from croniter import CroniterError, croniter
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import empty

from onboarding import widfile
from portal.errors import InvalidInput, flatten_errors


# What a single line of text never holds: C0 and C1 controls (DEL too), Unicode's line and paragraph
# separators, and the bidirectional controls that make text show in another order than it is stored.
_NOT_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What no text holds: PostgreSQL refuses NUL, and a lone surrogate has no UTF-8 form.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def refuse_control_characters(value: str) -> None:
    """A validator for single-line fields (Django forms and DRF alike)."""
    match = _NOT_IN_A_LINE.search(value)
    if match:
        raise DjangoValidationError(
            f"Remove the control character U+{ord(match.group()):04X}: this field is one line of plain text."
        )


def refuse_unstorable(value: str) -> None:
    """A validator for multi-line text, which keeps every other character."""
    match = _UNSTORABLE.search(value)
    if match:
        raise DjangoValidationError(f"The character U+{ord(match.group()):04X} cannot be stored; remove it.")


def clean_text(text: str) -> str:
    """The one clean-up of multi-line text (sections, comments): line endings become \\n, and
    blank lines at the start and the end go. Everything else is kept as sent."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


def one_line(text: str, limit: int) -> str:
    """Text made safe for a commit subject: control characters and separators become spaces."""
    return " ".join(_NOT_IN_A_LINE.sub(" ", text).split())[:limit].rstrip()


class StringOnly:
    """A string field that takes strings only: DRF would turn 5 or 1.5 into "5" or "1.5"."""

    def run_validation(self, data=empty):
        if data is not empty and data is not None and not isinstance(data, str):
            raise serializers.ValidationError("Send a string.")
        return super().run_validation(data)


class SingleLine(StringOnly):
    """One line of plain text. It checks before DRF trims the value, since trimming would
    silently drop some of these characters (U+2028 and U+001C count as whitespace)."""

    def run_validation(self, data=empty):
        if isinstance(data, str):
            try:
                refuse_control_characters(data)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.messages) from None
        return super().run_validation(data)


class TextField(StringOnly, serializers.CharField):
    pass


class LineFormField(forms.CharField):
    """The same rule for the HTML forms, checked on the value as typed (before it is trimmed)."""

    def to_python(self, value):
        if isinstance(value, str):
            refuse_control_characters(value)
        return super().to_python(value)


class LineField(SingleLine, serializers.CharField):
    pass


class EmailLine(SingleLine, serializers.EmailField):
    pass


class StrictBooleanField(serializers.BooleanField):
    """JSON's true and false only: "yes", 1 or "on" are not what a JSON client means by a flag."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class SlugField(SingleLine, serializers.RegexField):
    default_error_messages = {
        "invalid": (
            "Use 3 to 42 characters: lowercase letters, digits and hyphens, starting with a letter "
            "and ending with a letter or digit."
        )
    }

    def __init__(self, **kwargs):
        super().__init__(widfile.SLUG_PATTERN, max_length=42, **kwargs)


class PersonSerializer(serializers.Serializer):
    name = LineField(max_length=200)
    email = EmailLine(max_length=254)


class ContactsSerializer(serializers.Serializer):
    business = PersonSerializer()
    technical = PersonSerializer()


class OutputName(SingleLine, serializers.RegexField):
    pass


class StrictIntegerField(serializers.IntegerField):
    """JSON numbers that are whole only: DRF would take "5", 5.0 and true as 5 and 1."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("Send a whole number.")
        return super().to_internal_value(data)


IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
_IDENTIFIER_MESSAGE = "Use 1 to 63 lowercase letters, digits and '_', not starting with a digit."


class ColumnName(SingleLine, serializers.RegexField):
    default_error_messages = {"invalid": f"A column is a PostgreSQL identifier. {_IDENTIFIER_MESSAGE}"}

    def __init__(self, **kwargs):
        super().__init__(IDENTIFIER_PATTERN, **kwargs)


# An output's oldest acceptable age: a whole number of minutes, hours or days, at most a year.
_FRESHNESS_RE = re.compile(r"([0-9]{1,9})([mhd])")
_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}
FRESHNESS_MAX_MINUTES = 365 * 24 * 60


def freshness_minutes(value: str) -> int:
    """`24h` -> 1440: what the freshness checks compare an output's age with."""
    number, unit = _FRESHNESS_RE.fullmatch(value).groups()
    return int(number) * _MINUTES[unit]


class FreshnessField(LineField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not _FRESHNESS_RE.fullmatch(value):
            raise serializers.ValidationError("Write a whole number and a unit: 30m, 24h or 7d.")
        minutes = freshness_minutes(value)
        if minutes <= 0:
            raise serializers.ValidationError("An age above 0: 30m, 24h or 7d.")
        if minutes > FRESHNESS_MAX_MINUTES:
            raise serializers.ValidationError("At most 365 days (365d).")
        return value


class ChecksSerializer(serializers.Serializer):
    """What each run checks of the output's data: at least `rows_min` rows; no NULL in the
    `not_null` columns; no two rows sharing the values of the `unique` columns (one key, together)."""

    rows_min = StrictIntegerField(min_value=0, required=False)
    not_null = serializers.ListField(child=ColumnName(), required=False, max_length=100)
    unique = serializers.ListField(child=ColumnName(), required=False, max_length=100)


class OutputSerializer(serializers.Serializer):
    name = OutputName(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$", error_messages={
        "invalid": "Use letters, digits, '_', '.' and '-', starting with a letter (at most 100)."
    })
    kind = serializers.ChoiceField(choices=widfile.OUTPUT_KINDS)
    freshness = FreshnessField(required=False, max_length=12,
                               help_text="Oldest acceptable age of the data: 30m, 24h, 7d (at most 365d).")
    checks = ChecksSerializer(required=False)

    def validate(self, attrs):
        # A table port becomes a table in the product's published schema: a plain PostgreSQL identifier.
        if attrs.get("kind") == "table" and not TABLE_PORT_RE.fullmatch(attrs.get("name", "")):
            raise serializers.ValidationError({"name": [
                "A table output is published as a warehouse table: use 1 to 63 lowercase letters, digits and "
                "'_', starting with a letter."]})
        if "checks" in attrs and not attrs["checks"]:
            del attrs["checks"]  # no checks: absent, as when left out
        errors = {}
        for key in ("freshness", "checks"):
            if key in attrs and attrs.get("kind") not in widfile.CHECKED_OUTPUT_KINDS:
                errors[key] = [f"Only a table or a feed output has {key}: a run writes their data."]
        for key in ("not_null", "unique"):
            columns = attrs.get("checks", {}).get(key, [])
            repeated = sorted({c for c in columns if columns.count(c) > 1})
            if repeated and "checks" not in errors:
                errors["checks"] = [f"{key} names a column twice: {', '.join(repeated)}."]
        if errors:
            raise serializers.ValidationError(errors)
        return plain(attrs)


def plain(value):
    """Validated data as plain dicts and lists (DRF gives OrderedDicts, which YAML cannot write)."""
    if isinstance(value, dict):
        return {key: plain(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [plain(inner) for inner in value]
    return value


TABLE_PORT_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
SOURCE_TABLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}")
QUERY_MAX_LENGTH = 10_000
# What a query that only reads never holds (a shape check: the extract also runs it read-only).
_WRITING_KEYWORDS = {"INTO", "COPY", "CALL", "DO", "LOCK", "SET", "RESET", "GRANT", "REVOKE", "VACUUM",
                     "ANALYZE", "REFRESH", "NOTIFY", "LISTEN", "EXECUTE", "PREPARE", "DISCARD"}


class SourceTable(SingleLine, serializers.RegexField):
    default_error_messages = {"invalid": f"Write schema.table, each part a PostgreSQL identifier. {_IDENTIFIER_MESSAGE}"}

    def __init__(self, **kwargs):
        super().__init__(rf"^{SOURCE_TABLE_RE.pattern}$", max_length=127, **kwargs)


class QueryText(StringOnly, serializers.CharField):
    """One SQL SELECT, kept as written (line endings aside), without a final semicolon."""

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            refuse_unstorable(text)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        text = clean_text(text).strip()
        if len(text) > QUERY_MAX_LENGTH:
            raise serializers.ValidationError(f"At most {QUERY_MAX_LENGTH:,} characters.")
        statements = [s for s in sqlparse.split(text) if s.strip().rstrip(";").strip()]
        if len(statements) != 1:
            raise serializers.ValidationError("Write one SELECT statement." if statements
                                              else "Write a SELECT statement.")
        statement = sqlparse.parse(statements[0])[0]
        if statement.get_type() != "SELECT":
            raise serializers.ValidationError("Only a SELECT reads: write one SELECT statement.")
        for token in statement.flatten():
            if (token.ttype in (sqlparse.tokens.DML, sqlparse.tokens.DDL) and token.normalized != "SELECT") \
                    or (token.is_keyword and token.normalized in _WRITING_KEYWORDS):
                raise serializers.ValidationError(f"A SELECT that only reads: {token.normalized} is not allowed.")
        return statements[0].strip().rstrip(";").rstrip()


class SourceSerializer(serializers.Serializer):
    """Where a database extract or a spreadsheet comes from: a source the platform registered, by name
    (its address and credentials stay with the platform), and for a database, a table or a query."""

    name = SlugField(help_text="The name of a source the platform registered.")
    table = SourceTable(required=False, allow_null=True, help_text="schema.table, for a database extract.")
    query = QueryText(required=False, allow_null=True, help_text="One SELECT, for a database extract.")

    def validate(self, attrs):
        return {key: value for key, value in attrs.items() if value is not None}

    def to_representation(self, instance):
        # Null (accepted, to drop a stored key in a PATCH) is never stored, nor shown for what is absent.
        return {key: value for key, value in super().to_representation(instance).items() if value is not None}


def next_run(schedule: str | None, *, after: datetime | None = None) -> datetime | None:
    """When `schedule` fires next (UTC), or None without one."""
    if not schedule:
        return None
    start = after or datetime.now(timezone.utc)
    return croniter(schedule, start.astimezone(timezone.utc)).get_next(datetime)


class ScheduleField(LineField):
    """A five-field cron expression (minute hour day-of-month month day-of-week, UTC)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=100, **kwargs)

    def to_internal_value(self, data):
        value = " ".join(super().to_internal_value(data).split())
        if len(value.split(" ")) != 5:
            raise serializers.ValidationError(
                "Write five cron fields: minute hour day-of-month month day-of-week, e.g. \"0 6 * * *\".")
        if not croniter.is_valid(value):
            raise serializers.ValidationError(f"{value!r} is not a valid cron expression.")
        try:
            next_run(value)
        except (CroniterError, ValueError, KeyError, OverflowError):  # 31 February: valid, and never comes
            raise serializers.ValidationError(f"{value!r} never fires: no date matches it.") from None
        return value


class TriggersSerializer(serializers.Serializer):
    """What else starts a run: a new file in the product's raw/ area, a successful run of an upstream."""

    on_file = StrictBooleanField(required=False, default=False)
    on_upstream = serializers.ListField(child=SlugField(), required=False, default=list, max_length=100)

    def validate_on_upstream(self, value):
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise serializers.ValidationError(f"Name each upstream once: {', '.join(repeated)} repeats.")
        return value


# Markdown that Python-Markdown takes minutes or its whole stack to render (measured: 4,000 `[`
# in one paragraph take 8 s, the time growing with the square of their number; lists nested 75
# deep exhaust the stack, 200 `>` in a row take 11 s). Ordinary writing comes nowhere near these.
_MAX_BRACKETS_PER_PARAGRAPH = 300
_MAX_BRACKETS = 3000
_LONG_RUN = re.compile(r"([*_>\[])\1{199}")
_DEEP_NESTING = re.compile(r"^(?:[ \t]*(?:>[ \t]*|(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$))){7}", re.MULTILINE)
_DEEP_INDENT = re.compile(r"^[ \t]{28,}(?:>|[-*+]|\d{1,9}[.)])(?:[ \t]|$)", re.MULTILINE)


def markdown_too_costly(text: str) -> str | None:
    """Why rendering `text` would cost too much, or None."""
    if text.count("[") > _MAX_BRACKETS:
        return f"More than {_MAX_BRACKETS:,} '[' in one section: it could not be rendered in reasonable time."
    if any(paragraph.count("[") > _MAX_BRACKETS_PER_PARAGRAPH for paragraph in re.split(r"\n[ \t]*\n", text)):
        return f"A paragraph holds more than {_MAX_BRACKETS_PER_PARAGRAPH} '[': split it."
    run = _LONG_RUN.search(text)
    if run:
        return f"A run of 200 or more {run.group(1)!r} could not be rendered in reasonable time; shorten it."
    if _DEEP_NESTING.search(text) or _DEEP_INDENT.search(text):
        return "Lists or quotes are nested too deeply (at most 6 levels)."
    return None


class SectionText(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Send a string.")
        try:
            refuse_unstorable(data)  # before measuring it in UTF-8, which a lone surrogate has no form in
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        text = clean_text(super().to_internal_value(data))
        if not text.strip():
            raise serializers.ValidationError("This section is required.")
        limit = settings.WID_SECTION_MAX_BYTES
        if len(text.encode("utf-8")) > limit:
            raise serializers.ValidationError(f"This section is longer than {limit // 1024} KiB.")
        costly = markdown_too_costly(text)
        if costly:
            raise serializers.ValidationError(costly)
        reserved = sorted({line for line in text.split("\n") if line.rstrip() in widfile.RESERVED_HEADINGS})
        if reserved:
            raise serializers.ValidationError(
                f"The heading {reserved[0].strip()!r} is reserved for the WID's own structure; use another title."
            )
        return text


class SectionsSerializer(serializers.Serializer):
    value_proposition = SectionText()
    architecture = SectionText()
    integration_points = SectionText()
    data_surfacing = SectionText()


class WidInputSerializer(serializers.Serializer):
    """A WID as a team writes it: its front matter fields and its sections."""

    slug = SlugField()
    name = LineField(max_length=200)
    domain = SlugField()
    team = SlugField()
    target = serializers.ChoiceField(choices=widfile.TARGETS)
    classification = serializers.ChoiceField(choices=widfile.CLASSIFICATIONS)
    pii = StrictBooleanField()
    compute_tier = serializers.ChoiceField(choices=widfile.COMPUTE_TIERS)
    contacts = ContactsSerializer()
    data_custodian = PersonSerializer()
    depends_on = serializers.ListField(child=SlugField(), required=False, default=list, max_length=100)
    outputs = serializers.ListField(child=OutputSerializer(), required=False, default=list, max_length=100)
    ingestion = serializers.ChoiceField(choices=widfile.INGESTIONS, required=False, allow_null=True,
                                        help_text="How data reaches the product's raw/ area; none when left out.")
    source = SourceSerializer(required=False, allow_null=True,
                              help_text="Required for database_extract and spreadsheet, refused otherwise.")
    schedule = ScheduleField(required=False, allow_null=True, help_text="Cron, five fields, UTC: \"0 6 * * *\".")
    triggers = TriggersSerializer(required=False, allow_null=True)
    sections = SectionsSerializer()

    def validate_depends_on(self, value):
        return list(dict.fromkeys(value))  # keep order, drop repeats

    def validate_outputs(self, value):
        names = [o["name"] for o in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise serializers.ValidationError(f"Each output has a name of its own: {', '.join(repeated)} repeats.")
        return value

    def validate(self, attrs):
        errors = {}
        ingestion = attrs.get("ingestion") or "none"
        source = attrs.get("source")
        if ingestion in SOURCED_INGESTIONS and not source:
            errors["source"] = [f"A {ingestion} names its source: {{\"name\": ...}}"
                                + (" and a table or a query." if ingestion == "database_extract" else ".")]
        elif source and ingestion not in SOURCED_INGESTIONS:
            errors["source"] = ["Only a database_extract or a spreadsheet ingestion has a source."]
        elif source and ingestion == "database_extract" and ("table" in source) == ("query" in source):
            errors["source"] = ["A database extract reads a table or a query: give one of the two."]
        elif source and ingestion == "spreadsheet":
            errors.update({f"source.{key}": ["A spreadsheet source is its name only (the platform registers "
                                             "its folder)."] for key in ("table", "query") if key in source})
        triggers = attrs.get("triggers")
        if triggers:
            outside = [s for s in triggers["on_upstream"] if s not in attrs.get("depends_on", [])]
            if outside:
                errors["triggers.on_upstream"] = [
                    f"A run is triggered only by products it depends on: add {', '.join(outside)} to depends_on."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


SOURCED_INGESTIONS = ("database_extract", "spreadsheet")


def clean_wid_input(data) -> dict:
    serializer = WidInputSerializer(data=data)
    if not serializer.is_valid():
        raise InvalidInput(errors=flatten_errors(serializer.errors))
    return serializer.validated_data


def unknown_keys(data, serializer: serializers.Serializer, *, also_known=frozenset()) -> dict[str, list[str]]:
    """Every key of `data`, nested ones included, that `serializer` has no field for, as
    `{"contacts.business.phone": [...]}`; DRF would drop them silently, and the sender would
    never learn that a misspelt key was not saved."""
    errors: dict[str, list[str]] = {}

    def walk(prefix: str, value, field) -> None:
        if isinstance(field, serializers.ListSerializer | serializers.ListField):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    walk(f"{prefix}{index}.", item, field.child)
        elif isinstance(field, serializers.Serializer) and isinstance(value, dict):
            for key, inner in value.items():
                if key in field.fields:
                    walk(f"{prefix}{key}.", inner, field.fields[key])
                elif not (prefix == "" and key in also_known):
                    errors[f"{prefix}{key}"] = ["Unknown field: leave it out, or check its spelling."]

    walk("", data, serializer)
    return errors


def merge_input(current: dict, changes: dict) -> dict:
    """A PATCH body laid over the current WID: nested objects merge, everything else replaces."""
    merged = dict(current)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_input(merged[key], value)
        else:
            merged[key] = value
    return merged
