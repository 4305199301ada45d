import logging

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from onboarding.rendering import render_markdown
from onboarding.validation import markdown_too_costly

logger = logging.getLogger(__name__)
register = template.Library()


@register.filter
def wid_markdown(text: str) -> str:
    """A section as HTML; one that cannot be rendered (too costly, or the renderer fails) is shown
    as written, with the reason, and the rest of the page stands."""
    problem = markdown_too_costly(text or "")
    if problem is None:
        try:
            return mark_safe(render_markdown(text))  # sanitised by nh3 in render_markdown
        except Exception as exc:
            logger.exception("a WID section could not be rendered")
            problem = type(exc).__name__
    return format_html('<p class="wid-warning" role="note">This section could not be rendered: {} '
                       'Here it is as written.</p><pre>{}</pre>', problem, text)


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
