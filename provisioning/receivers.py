"""Provisioning's side of onboarding's domain events."""
from django.conf import settings
from django.dispatch import receiver

from onboarding.signals import wid_approved
from portal.work import dispatch
from provisioning import access, services
from provisioning.signals import job_finished
from provisioning.models import Job


@receiver(wid_approved, dispatch_uid="provisioning-apply-on-approval")
def apply_on_approval(sender, product, actor, **kwargs):
    """Approval (of a new product or of an amendment) applies the approved version, for the targets
    this installation can reach: now, or right after the product's active job."""
    access.on_consumer_approved(product, actor)
    if product.target not in settings.PROVISION_ON_APPROVAL_TARGETS:
        return
    services.request_apply(product=product, origin=Job.Origin.APPROVAL,
                           reason="approved by policy" if actor is None else f"approved by {actor.username}")


@receiver(job_finished, dispatch_uid="provisioning-pending-apply")
def start_waiting_apply(sender, job, **kwargs):
    dispatch.after_commit("provisioning.tasks.start_pending_apply", job.product_id)
