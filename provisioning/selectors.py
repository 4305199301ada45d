"""Reads of provisioning for other parts of the portal (the WID site, the dashboards)."""
from provisioning import archives
from provisioning.models import Archive, Job, Provisioning
from provisioning.services import REDACTED


def status_summaries() -> dict[int, dict]:
    """{product id: what the public WID site may show of its infrastructure}: no secrets."""
    summaries = {}
    for state in Provisioning.objects.select_related("last_job"):
        last = state.last_job
        summaries[state.product_id] = {
            "provisioned": state.provisioned, "retired": state.retired,
            "provisioned_at": state.provisioned_at, "template_version": state.template_version,
            "drifted": state.drifted, "drift_checked_at": state.drift_checked_at,
            "outputs": {k: v for k, v in sorted(state.outputs.items()) if v != REDACTED},
            "last_job": {"id": last.pk, "action": last.action, "status": last.status,
                         "finished_at": last.finished_at} if last else None,
        }
    active = Job.objects.filter(status__in=Job.ACTIVE).values_list("product_id", "id", "action", "status")
    for product_id, job_id, action, status in active:
        summaries.setdefault(product_id, {"provisioned": False, "retired": False, "outputs": {}, "last_job": None})
        summaries[product_id]["active_job"] = {"id": job_id, "action": action, "status": status}
    return summaries


def archive_summary(product) -> dict | None:
    """What a retired product's tombstone says of its destroy: when, by whom, whether forced and why,
    which live products depended on it then, and where its archive is until when (`archive`: the
    newest one still kept, None when there is none; `archives`: every one, a destroy that needed a
    retry may have two). None when the product was never destroyed."""
    job = (Job.objects.filter(product=product, action=Job.Action.DESTROY, status=Job.Status.SUCCEEDED)
           .select_related("requested_by", "confirmed_by").order_by("-finished_at", "-id").first())
    if job is None:
        return None
    kept = [archives.describe(a) for a in Archive.objects.filter(product=product).order_by("-created_at", "-id")]
    return {
        "job": job.pk, "destroyed_at": job.finished_at,
        "requested_by": job.requested_by.username if job.requested_by else None,
        "confirmed_by": job.confirmed_by.username if job.confirmed_by else None,
        "force": job.force, "reason": job.destroy_reason, "dependants": list(job.dependants),
        "archived": job.archive,
        "archive": next((a for a in kept if a["deleted_at"] is None), None),
        "archives": kept,
    }
