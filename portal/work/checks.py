"""System checks: long work stops at its own deadline, well before Celery or Redis step in."""
from django.conf import settings
from django.core.checks import Error, register


@register()
def check_time_limits(app_configs=None, **kwargs):
    longest = max(settings.JOB_TIMEOUT_SECONDS, settings.RUN_TIMEOUT_SECONDS, settings.WID_SITE_BUILD_TIMEOUT)
    soft, hard = settings.CELERY_TASK_SOFT_TIME_LIMIT, settings.CELERY_TASK_TIME_LIMIT
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    errors = []
    if not longest < soft < hard < visibility:
        errors.append(Error(
            "Work must stop at its own deadline before Celery's soft and hard time limits, and those before "
            "Redis redelivers an unacknowledged task: need "
            "max(JOB_TIMEOUT_SECONDS, RUN_TIMEOUT_SECONDS, WID_SITE_BUILD_TIMEOUT) < CELERY_TASK_SOFT_TIME_LIMIT "
            "< CELERY_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT.",
            hint=f"They are {longest} < {soft} < {hard} < {visibility}.", id="work.E001"))
    if settings.WORK_LOST_AFTER_SECONDS <= 2 * settings.WORK_HEARTBEAT_SECONDS:
        errors.append(Error("WORK_LOST_AFTER_SECONDS must be more than twice WORK_HEARTBEAT_SECONDS, or a live "
                            "worker that misses one beat is taken for dead.", id="work.E002"))
    return errors
