from django import template
from django.utils.safestring import mark_safe

from onboarding.rendering import render_markdown

register = template.Library()


@register.filter
def wid_markdown(text: str) -> str:
    return mark_safe(render_markdown(text))  # sanitised by nh3 in render_markdown


@register.filter
def humanize_status(value: str) -> str:
    return (value or "").replace("_", " ")


@register.filter
def diff_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "diff-file"
    if line.startswith("@@"):
        return "diff-hunk"
    if line.startswith("+"):
        return "diff-add"
    if line.startswith("-"):
        return "diff-del"
    return ""


@register.filter
def duration(seconds) -> str:
    """1 h 5 min, 3 min, 2 d 4 h: a lead time for people; a dash when there is none."""
    if seconds is None:
        return "–"
    minutes = round(seconds / 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"
