"""Provisioning's side of onboarding's domain events."""
from django.conf import settings
from django.dispatch import receiver

from onboarding.signals import wid_approved
from provisioning import services
from provisioning.models import Job


@receiver(wid_approved, dispatch_uid="provisioning-apply-on-approval")
def apply_on_approval(sender, product, actor, **kwargs):
    """Approval starts an apply job, for the targets this installation can reach."""
    if product.target not in settings.PROVISION_ON_APPROVAL_TARGETS:
        return
    if Job.objects.filter(product=product, status__in=Job.ACTIVE).exists():
        return
    services.job_start(user=None, product=product, action=Job.Action.APPLY,
                       reason="approved by policy" if actor is None else f"approved by {actor.username}")
