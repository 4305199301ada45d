"""Provisioning's side of onboarding's domain events."""
from django.conf import settings
from django.dispatch import receiver

from onboarding import selectors as onboarding
from onboarding.signals import wid_approved, wid_resumed, wid_suspended
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


@receiver(wid_suspended, dispatch_uid="provisioning-apply-on-suspension")
@receiver(wid_resumed, dispatch_uid="provisioning-apply-on-resumption")
def apply_on_suspension(sender, slug, actor, signal, **kwargs):
    """Suspending or resuming switches access off or on through the product's own state (the
    `suspended` variable): an apply of the live version, now or right after the active job, that
    changes access in place and so needs no confirmation (docs/adr/0024)."""
    what = "suspended" if signal is wid_suspended else "resumed"
    # Nothing provisioned yet: nothing to switch; its first apply renders the WID's `suspended` as it is then.
    access.apply_access(onboarding.product_get(slug), f"{what} by {actor}" if actor else what)


@receiver(job_finished, dispatch_uid="provisioning-pending-apply")
def start_waiting_apply(sender, job, **kwargs):
    dispatch.after_commit("provisioning.tasks.start_pending_apply", job.product_id)
