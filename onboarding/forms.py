"""The WID web form: flat fields for the browser, mapped to and from the API's nested shape.

The form does no validation of its own beyond shape: the same services (and their field
rules) serve the form and the API, and their field errors are mapped back onto these fields.
"""
import re

from django import forms

from onboarding import widfile
from onboarding.validation import LineFormField, clean_wid_input
from portal.errors import InvalidInput

SECTION_HELP = {
    "value_proposition": "What the product does and the value it brings, to whom.",
    "architecture": "Sources, processing, storage and tools; diagrams as links.",
    "integration_points": "Systems and products it reads from and writes to, and how.",
    "data_surfacing": "How people and systems consume the data: tables, dashboards, APIs.",
}


def _choices(values):
    return [(v, v.replace("_", " ")) for v in values]


# An output per line: `name: kind`, then options after semicolons, e.g.
# `churn_scores: table; freshness 24h; rows_min 1; not_null customer_id, day; unique customer_id`.
OUTPUT_OPTIONS = ("freshness", "rows_min", "not_null", "unique")


def parse_output_line(line: str) -> dict:
    """One line of the outputs box in the API's shape; ValueError says what is wrong with its shape
    (the services judge the values)."""
    head, *options = line.split(";")
    name, _, kind = head.partition(":")
    output, checks, seen = {"name": name.strip(), "kind": kind.strip()}, {}, set()
    for option in (o.strip() for o in options):
        if not option:
            continue
        key, _, value = option.partition(" ")
        value = value.strip()
        if key not in OUTPUT_OPTIONS:
            raise ValueError(f"{key!r} is not an option: use {', '.join(OUTPUT_OPTIONS)}.")
        if key in seen:
            raise ValueError(f"{key} is given twice.")
        seen.add(key)
        if key == "freshness":
            output["freshness"] = value
        elif key == "rows_min":
            if not re.fullmatch(r"[0-9]{1,9}", value):
                raise ValueError("rows_min takes a whole number, e.g. rows_min 1.")
            checks["rows_min"] = int(value)
        else:
            checks[key] = [column.strip() for column in value.split(",") if column.strip()]
    if checks:
        output["checks"] = checks
    return output


def format_output_line(output: dict) -> str:
    parts = [f"{output['name']}: {output['kind']}"]
    if output.get("freshness"):
        parts.append(f"freshness {output['freshness']}")
    checks = output.get("checks") or {}
    if "rows_min" in checks:
        parts.append(f"rows_min {checks['rows_min']}")
    parts += [f"{key} {', '.join(checks[key])}" for key in ("not_null", "unique") if key in checks]
    return "; ".join(parts)


class WidForm(forms.Form):
    slug = LineFormField(help_text="Lowercase letters, digits and hyphens; never changes.", max_length=100)
    name = LineFormField(max_length=300)
    domain = LineFormField(help_text="The business domain, e.g. growth or finance.", max_length=100)
    team = forms.ChoiceField()
    target = forms.ChoiceField(choices=_choices(widfile.TARGETS))
    classification = forms.ChoiceField(choices=_choices(widfile.CLASSIFICATIONS))
    pii = forms.BooleanField(required=False, label="Holds personal data (PII)")
    compute_tier = forms.ChoiceField(choices=_choices(widfile.COMPUTE_TIERS))
    contacts_business_name = LineFormField(label="Business contact: name", max_length=300)
    contacts_business_email = LineFormField(label="Business contact: e-mail", max_length=300)
    contacts_technical_name = LineFormField(label="Technical contact: name", max_length=300)
    contacts_technical_email = LineFormField(label="Technical contact: e-mail", max_length=300)
    data_custodian_name = LineFormField(label="Data custodian: name", max_length=300)
    data_custodian_email = LineFormField(label="Data custodian: e-mail", max_length=300)
    depends_on = LineFormField(
        required=False, label="Depends on", help_text="Slugs of the products it reads from, separated by commas."
    )
    outputs = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="How the data is surfaced, one per line as name: kind (kinds: "
        + ", ".join(widfile.OUTPUT_KINDS) + "). A table or feed may add, after semicolons: freshness 24h; "
        "rows_min 1; not_null column, column; unique column.",
    )
    ingestion = forms.ChoiceField(choices=_choices(widfile.INGESTIONS), initial="none", required=False,
                                  help_text="How data reaches the product's raw/ area.")
    source_name = LineFormField(required=False, label="Source", max_length=100,
                                help_text="For a database extract or a spreadsheet: the name of a source the "
                                          "platform registered.")
    source_table = LineFormField(required=False, label="Source table", max_length=200,
                                 help_text="For a database extract: schema.table (or a query below, not both).")
    source_query = forms.CharField(required=False, label="Source query", widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text="For a database extract: one SELECT.")
    schedule = LineFormField(required=False, max_length=200,
                             help_text="Cron, five fields, UTC: minute hour day-of-month month day-of-week, "
                                       "e.g. 0 6 * * * for 06:00 every day.")
    triggers_on_file = forms.BooleanField(required=False, label="Run when a new file arrives in raw/")
    triggers_on_upstream = LineFormField(
        required=False, label="Run after these upstreams", max_length=5000,
        help_text="Slugs of products it depends on, separated by commas: a successful run of one starts a run.")
    section_value_proposition = forms.CharField(label="Value proposition", widget=forms.Textarea(attrs={"rows": 8}),
                                                help_text=SECTION_HELP["value_proposition"], strip=False)
    section_architecture = forms.CharField(label="Architecture", widget=forms.Textarea(attrs={"rows": 8}),
                                           help_text=SECTION_HELP["architecture"], strip=False)
    section_integration_points = forms.CharField(label="Integration points", widget=forms.Textarea(attrs={"rows": 8}),
                                                 help_text=SECTION_HELP["integration_points"], strip=False)
    section_data_surfacing = forms.CharField(label="Data surfacing", widget=forms.Textarea(attrs={"rows": 8}),
                                             help_text=SECTION_HELP["data_surfacing"], strip=False)
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, teams=(), editing=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.slug, f"{t.name} ({t.slug})") for t in teams]
        for name in ("contacts_business_email", "contacts_technical_email", "data_custodian_email"):
            self.fields[name].widget.input_type = "email"
        if editing:
            for name in ("slug", "domain"):
                self.fields[name].disabled = True

    def clean_outputs(self):
        problems = []
        for number, line in enumerate((self.cleaned_data.get("outputs") or "").splitlines(), start=1):
            try:
                parse_output_line(line)
            except ValueError as exc:
                problems.append(f"Line {number}: {exc}")
        if problems:
            raise forms.ValidationError(problems)
        return self.cleaned_data.get("outputs")

    @property
    def section_fields(self):
        return [self[f"section_{key}"] for key, _ in widfile.SECTIONS]

    def to_input(self) -> dict:
        """The API's shape, from the form's raw values (validated by the services, not here)."""
        d = self.cleaned_data
        outputs = [parse_output_line(line) for line in (d.get("outputs") or "").splitlines() if line.strip()]
        # Every key of the source, null when blank: the service lays the input over the stored WID, and
        # a stored query must go when a table replaces it.
        source = {key: (d.get(f"source_{key}") or "").strip() or None for key in ("name", "table", "query")}
        upstream = [s.strip() for s in (d.get("triggers_on_upstream") or "").split(",") if s.strip()]
        return {
            "slug": d.get("slug", ""), "name": d.get("name", ""), "domain": d.get("domain", ""),
            "team": d.get("team", ""), "target": d.get("target", ""), "classification": d.get("classification", ""),
            "pii": bool(d.get("pii")), "compute_tier": d.get("compute_tier", ""),
            "contacts": {
                role: {"name": d.get(f"contacts_{role}_name", ""), "email": d.get(f"contacts_{role}_email", "")}
                for role in ("business", "technical")
            },
            "data_custodian": {"name": d.get("data_custodian_name", ""), "email": d.get("data_custodian_email", "")},
            "depends_on": [s.strip() for s in (d.get("depends_on") or "").split(",") if s.strip()],
            "outputs": outputs,
            "ingestion": d.get("ingestion") or "none",
            "source": source if any(source.values()) else None,
            "schedule": d.get("schedule") or None,
            "triggers": {"on_file": bool(d.get("triggers_on_file")), "on_upstream": upstream}
            if d.get("triggers_on_file") or upstream else None,
            "sections": {key: d.get(f"section_{key}", "") for key, _ in widfile.SECTIONS},
        }

    @staticmethod
    def initial_from(data: dict, version: int | None = None) -> dict:
        initial = {k: data.get(k) for k in ("slug", "name", "domain", "team", "target", "classification",
                                             "pii", "compute_tier")}
        for role in ("business", "technical"):
            initial[f"contacts_{role}_name"] = data["contacts"][role]["name"]
            initial[f"contacts_{role}_email"] = data["contacts"][role]["email"]
        initial["data_custodian_name"] = data["data_custodian"]["name"]
        initial["data_custodian_email"] = data["data_custodian"]["email"]
        initial["depends_on"] = ", ".join(data["depends_on"])
        initial["outputs"] = "\n".join(format_output_line(o) for o in data["outputs"])
        initial["ingestion"] = data.get("ingestion") or "none"
        for key in ("name", "table", "query"):
            initial[f"source_{key}"] = (data.get("source") or {}).get(key, "")
        initial["schedule"] = data.get("schedule") or ""
        triggers = data.get("triggers") or {}
        initial["triggers_on_file"] = bool(triggers.get("on_file"))
        initial["triggers_on_upstream"] = ", ".join(triggers.get("on_upstream", []))
        for key, _ in widfile.SECTIONS:
            initial[f"section_{key}"] = data["sections"][key]
        initial["version"] = version
        return initial

    def check_with_service_rules(self) -> None:
        """On a form that is already invalid, also report what the services' rules (ADR 0004) say
        about the other fields, so that one round shows every problem. Saves nothing."""
        try:
            clean_wid_input(self.to_input())
        except InvalidInput as exc:
            self.add_service_errors(exc.errors, skip=set(self.errors))

    def add_service_errors(self, errors: dict[str, list[str]], *, skip: set[str] = frozenset()) -> None:
        """Put `{"contacts.business.email": [...]}` style errors on the matching form fields."""
        for key, messages in errors.items():
            parts = key.split(".")
            if parts[0] == "sections" and len(parts) > 1:
                field = f"section_{parts[1]}"
            elif parts[0] in ("contacts", "data_custodian"):
                field = "_".join(parts)
            elif parts[0] in ("source", "triggers"):
                field = "_".join(parts[:2]) if len(parts) > 1 else {"source": "source_name",
                                                                    "triggers": "triggers_on_upstream"}[parts[0]]
            elif parts[0] == "outputs" and len(parts) > 1 and parts[1].isdigit():
                field = "outputs"
                messages = [f"Line {int(parts[1]) + 1}{' (' + parts[2] + ')' if len(parts) > 2 else ''}: {m}"
                            for m in messages]
            else:
                field = parts[0]
            if field in skip:
                continue  # the form's own message for it is already there
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class CommentForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class DeprecateForm(CommentForm):
    sunset = forms.CharField(required=False)  # judged by the service, which names it in its refusal


class TeamForm(forms.Form):
    slug = LineFormField(max_length=100, help_text="Lowercase letters, digits and hyphens.")
    name = LineFormField(max_length=300)


class MemberForm(forms.Form):
    username = LineFormField(max_length=150)
    role = forms.ChoiceField(choices=[("member", "member"), ("owner", "owner")])
