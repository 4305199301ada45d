"""Filters of the platform's pages; bad values are shown next to their field."""
from django import forms

from onboarding.validation import LineFormField
from provisioning.models import AccessEvent, Job


class DashboardForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=90, required=False, label="Failures of the last (days)")


class _TeamAndDates(forms.Form):
    """A team from the portal's teams and a date range whose end is not before its start."""

    team = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "any"), *((t.slug, t.slug) for t in teams)]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            self.add_error("until", "The end date is before the start date.")
        return cleaned


class JobFilterForm(_TeamAndDates):
    product = LineFormField(required=False, max_length=42, label="Product", help_text="Part of its slug.")
    status = forms.ChoiceField(required=False, choices=[("", "any"), *Job.Status.choices])
    action = forms.ChoiceField(required=False, choices=[("", "any"), *Job.Action.choices])
    field_order = ["product", "team", "status", "action", "since", "until"]


class AccessFilterForm(_TeamAndDates):
    product = LineFormField(required=False, max_length=42, label="Product", help_text="Its slug.")
    kind = forms.ChoiceField(required=False, choices=[("", "any"), *AccessEvent.Kind.choices])
    subject = LineFormField(required=False, max_length=254, label="Person or product",
                            help_text="A username or a product's slug: the event's subject or actor.")
    field_order = ["product", "team", "kind", "subject", "since", "until"]

    def params(self) -> dict[str, str]:
        return {name: str(value) for name, value in self.cleaned_data.items() if value}
