"""Thin Celery tasks: ids in, services do the work."""
from celery import shared_task

from provisioning import services


@shared_task(acks_late=True)
def run_job(job_id: int) -> None:
    # Safe to deliver twice (a redelivery after a lost worker): the claim is a conditional UPDATE.
    services.job_run(job_id)


@shared_task
def check_drift_all() -> int:
    """Fan out one drift check per provisioned product (beat runs this every DRIFT_CHECK_INTERVAL)."""
    ids = list(services.drift_candidates().values_list("product_id", flat=True))
    for product_id in ids:
        check_drift.delay(product_id)
    return len(ids)


@shared_task
def check_drift(product_id: int) -> bool:
    state = services.drift_candidates().filter(product_id=product_id).first()
    return services.drift_check(state.product) if state else False


@shared_task
def execute_run(run_id: int) -> str:
    from provisioning import runs

    return runs.run_execute(run_id)


@shared_task
def start_pending_apply(product_id: int) -> bool:
    from onboarding.models import Product

    product = Product.objects.select_related("team").filter(pk=product_id).first()
    return product is not None and services.start_pending_apply(product) is not None


@shared_task
def start_pending_applies() -> int:
    """Beat's sweep: an apply that waited for a job whose end was not heard (a lost wake-up)."""
    return services.start_pending_applies()


@shared_task
def expire_access() -> int:
    from provisioning import access

    return access.expire_sweep()


@shared_task
def log_access_events() -> int:
    from provisioning import access

    return access.log_access_events()


@shared_task
def sample_usage() -> dict:
    """Beat's `sample-usage`, every USAGE_SAMPLE_SECONDS: what readers read in the warehouse since the last."""
    from provisioning import usage

    return usage.sample()


@shared_task
def check_health() -> int:
    """Beat's sweep: outputs turned stale, products never evaluated, runs whose measurement was lost."""
    from provisioning import health

    return health.evaluate_due()


@shared_task
def sweep_archives() -> int:
    """Beat: delete destroyed products' archives past their retention date."""
    from provisioning import archives

    return archives.archives_sweep()


@shared_task(ignore_result=True)
def watch_raw_folders() -> int:
    """Beat's watch tick (every RUN_WATCH_INTERVAL): files in products' raw/ start their runs."""
    from provisioning import triggers

    return triggers.watch_raw_folders()


@shared_task(ignore_result=True)
def start_scheduled_runs() -> int:
    """Beat's schedule tick (every RUN_SCHEDULE_INTERVAL): the runs whose cron slot has come."""
    from provisioning import triggers

    return triggers.start_scheduled_runs()
