"""Rebuild the WID site after every WID change, every finished job or drift check, every change of
health, and a change of usage."""
from django.conf import settings
from django.dispatch import receiver

from docs_site.services import site_request_build
from onboarding.signals import wid_saved
from provisioning.signals import drift_detected, health_changed, job_finished, usage_changed


@receiver(wid_saved, dispatch_uid="docs-site-wid-saved")
@receiver(job_finished, dispatch_uid="docs-site-job-finished")
@receiver(drift_detected, dispatch_uid="docs-site-drift")
@receiver(usage_changed, dispatch_uid="docs-site-usage")
@receiver(health_changed, dispatch_uid="docs-site-health")
def rebuild_soon(sender, **kwargs):
    if settings.WID_SITE_AUTO_BUILD:
        site_request_build("a WID or its provisioning changed")
