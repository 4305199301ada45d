"""Filters of the platform's pages; bad values are shown next to their field."""
from django import forms

from onboarding.validation import LineFormField
from provisioning.models import Job


class DashboardForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=90, required=False, label="Failures of the last (days)")


class JobFilterForm(forms.Form):
    product = LineFormField(required=False, max_length=42, label="Product", help_text="Part of its slug.")
    team = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "any"), *Job.Status.choices])
    action = forms.ChoiceField(required=False, choices=[("", "any"), *Job.Action.choices])
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
