"""Reads of provisioning for other parts of the portal (the WID site, the dashboards)."""
from provisioning import health
from provisioning.models import Job, Provisioning
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
    for product_id, summary in health.summaries().items():
        if product_id in summaries:
            summaries[product_id]["health"] = summary
    active = Job.objects.filter(status__in=Job.ACTIVE).values_list("product_id", "id", "action", "status")
    for product_id, job_id, action, status in active:
        summaries.setdefault(product_id, {"provisioned": False, "retired": False, "outputs": {}, "last_job": None})
        summaries[product_id]["active_job"] = {"id": job_id, "action": action, "status": status}
    return summaries
