"""Field rules of a WID, shared by the REST API, the web form and the index rebuild.

A DRF serializer describes them once: the API uses it for its OpenAPI schema, and the services
run it on every input, whichever door the input came through.
"""
from django.conf import settings
from rest_framework import serializers

from onboarding import widfile
from portal.errors import InvalidInput, flatten_errors


class SlugField(serializers.RegexField):
    default_error_messages = {
        "invalid": (
            "Use 3 to 42 characters: lowercase letters, digits and hyphens, starting with a letter "
            "and ending with a letter or digit."
        )
    }

    def __init__(self, **kwargs):
        super().__init__(widfile.SLUG_PATTERN, max_length=42, **kwargs)


class PersonSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(max_length=254)


class ContactsSerializer(serializers.Serializer):
    business = PersonSerializer()
    technical = PersonSerializer()


class OutputSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$", error_messages={
        "invalid": "Use letters, digits, '_', '.' and '-', starting with a letter (at most 100)."
    })
    kind = serializers.ChoiceField(choices=widfile.OUTPUT_KINDS)


class SectionText(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        text = super().to_internal_value(data).replace("\r\n", "\n").replace("\r", "\n").strip("\n")
        if not text.strip():
            raise serializers.ValidationError("This section is required.")
        limit = settings.WID_SECTION_MAX_BYTES
        if len(text.encode("utf-8")) > limit:
            raise serializers.ValidationError(f"This section is longer than {limit // 1024} KiB.")
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
    name = serializers.CharField(max_length=200)
    domain = SlugField()
    team = SlugField()
    target = serializers.ChoiceField(choices=widfile.TARGETS)
    classification = serializers.ChoiceField(choices=widfile.CLASSIFICATIONS)
    pii = serializers.BooleanField()
    compute_tier = serializers.ChoiceField(choices=widfile.COMPUTE_TIERS)
    contacts = ContactsSerializer()
    data_custodian = PersonSerializer()
    depends_on = serializers.ListField(child=SlugField(), required=False, default=list, max_length=100)
    outputs = serializers.ListField(child=OutputSerializer(), required=False, default=list, max_length=100)
    sections = SectionsSerializer()

    def validate_name(self, value):
        if "\n" in value or "\r" in value:
            raise serializers.ValidationError("The name must be a single line.")
        return value.strip()

    def validate_depends_on(self, value):
        return list(dict.fromkeys(value))  # keep order, drop repeats


def clean_wid_input(data) -> dict:
    serializer = WidInputSerializer(data=data)
    if not serializer.is_valid():
        raise InvalidInput(errors=flatten_errors(serializer.errors))
    return serializer.validated_data


def merge_input(current: dict, changes: dict) -> dict:
    """A PATCH body laid over the current WID: nested objects merge, everything else replaces."""
    merged = dict(current)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_input(merged[key], value)
        else:
            merged[key] = value
    return merged
