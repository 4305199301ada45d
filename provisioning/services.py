"""Provisioning jobs: start, run, confirm, cancel, retry, and the reconciler for lost workers.

A job is a database row. Starting one inserts it (a partial unique index allows one active job
per product: the lock) and enqueues `run_job` after the commit. A worker claims it with a
conditional UPDATE, renders the product's working directory, and runs terraform through the
adapter, appending every output line to the job's log as it comes.
"""
import logging
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from onboarding import selectors as onboarding
from onboarding import services as onboarding_services
from portal.errors import Conflict, InvalidInput, NotAllowed, NotFound
from portal.work import kernel
from provisioning import archives, signals, terraform
from provisioning.models import Archive, Job, JobLogLine, Provisioning
from provisioning.rendering import ProductSpec, RenderError, naming_a_full_disk, render

logger = logging.getLogger(__name__)

PLAN_FILE = "job.tfplan"
REDACTED = "(sensitive)"


def _fail_lost_job(job: Job, reason: str) -> bool:
    """The reconciler's verdict on a job whose worker died or that outran its deadline: failed, once.

    Terraform's state lock was held by the dead process's database connection, which PostgreSQL
    closed with it; the product's lock (its active job) ends here.
    """
    with transaction.atomic():  # the status and the line saying why, seen together
        if not Job.objects.filter(pk=job.pk, status=job.status, heartbeat_at=job.heartbeat_at).update(
                status=Job.Status.FAILED, finished_at=timezone.now(), error=f"Failed: {reason}. Retry it."[:2000]):
            return False
        _append(job, f"Error: {reason}. Terraform's state lock was released with its process; "
                     "retry to complete the change (a retry adopts whatever the lost run had created).")
    job.refresh_from_db()
    signals.job_finished.send(sender=Job, job=job)
    return True


JOBS = kernel.register(kernel.Kind(
    name="job", model=Job, task="provisioning.tasks.run_job",
    waiting=Q(status=Job.Status.QUEUED), running=Q(status__in=[Job.Status.RUNNING, Job.Status.APPLYING]),
    on_lost=_fail_lost_job, log_model=JobLogLine, log_fk="job",
))


# --- permissions --------------------------------------------------------------------------------
def user_can_start(user, product, action: str) -> bool:
    if action == Job.Action.PLAN:
        return onboarding.user_is_platform(user) or onboarding.user_can_edit_product(user, product)
    return onboarding.user_is_platform(user)


def user_can_read_credentials(user, product) -> bool:
    return onboarding.user_is_platform(user) or onboarding.user_is_member(user, product.team)


# --- starting -----------------------------------------------------------------------------------
def live_meta(product) -> dict:
    """The WID's front matter at its approved version, read from git: what provisioning builds,
    never an amendment still in draft. (Before any approval: the index row, for plans of a draft.)"""
    doc = onboarding.approved_document(product)
    if doc is not None:
        return doc.meta
    return {"team": product.team.slug, "target": product.target, "classification": product.classification,
            "pii": product.pii, "compute_tier": product.compute_tier, "depends_on": list(product.depends_on),
            "outputs": list(product.outputs)}


def product_spec(product) -> ProductSpec:
    from provisioning import access

    meta = live_meta(product)
    state = Provisioning.objects.filter(product=product).first()
    return ProductSpec(
        slug=product.slug, domain=product.domain, team=meta["team"], target=meta["target"],
        classification=meta["classification"], pii=meta["pii"], compute_tier=meta["compute_tier"],
        wid_url=f"{settings.PORTAL_BASE_URL}/products/{product.slug}/",
        reads=tuple(access.granted_reads(product, meta["depends_on"])),
        readers=tuple(access.personal_readers(product)),
        password_generation=state.password_generation if state else 0,
        outputs=tuple(dict(o) for o in meta["outputs"]),
        ingestion=meta.get("ingestion") or "none",
        suspended=product.suspended,
    )


def is_live(product) -> bool:
    """Whether the product has an approved version to provision (its amendment's state aside)."""
    return product.status != "retired" and (product.approved_version is not None or product.status == "approved")


def _check_startable(product, action: str) -> None:
    if action not in Job.Action.values:
        raise InvalidInput.on("action", f"Choose one of: {', '.join(Job.Action.values)}.")
    if not is_live(product):
        raise Conflict(f"{product.slug} is {product.get_status_display()}: only a WID with an approved version "
                       "is provisioned.")


def request_apply(*, product, origin: str, reason: str) -> Job | None:
    """Apply the product's approved version now, or, if a job of the product is active, right after it
    (never skipped: the change it carries would be lost otherwise). None when it waits."""
    with transaction.atomic():
        state, _ = Provisioning.objects.select_for_update().get_or_create(product=product)
        if not Job.objects.filter(product=product, status__in=Job.ACTIVE).exists():
            try:
                with transaction.atomic():
                    return job_start(user=None, product=product, action=Job.Action.APPLY, reason=reason, origin=origin)
            except Conflict:
                pass  # one started meanwhile: wait for it
        state.pending_origin = origin if not state.pending_origin or state.pending_origin == origin else Job.Origin.APPROVAL
        state.pending_reason = reason[:200]
        state.save(update_fields=["pending_origin", "pending_reason"])
        return None


def start_pending_apply(product) -> Job | None:
    """Start the apply that waited for the product's previous job (on its end, and from beat)."""
    with transaction.atomic():
        state = Provisioning.objects.select_for_update().filter(product=product).exclude(pending_origin="").first()
        if state is None or Job.objects.filter(product=product, status__in=Job.ACTIVE).exists():
            return None
        origin, reason = state.pending_origin, state.pending_reason
        state.pending_origin, state.pending_reason = "", ""
        state.save(update_fields=["pending_origin", "pending_reason"])
        if not is_live(product):
            return None
        try:
            with transaction.atomic():
                return job_start(user=None, product=product, action=Job.Action.APPLY, reason=reason, origin=origin)
        except Conflict:
            state.pending_origin, state.pending_reason = origin, reason
            state.save(update_fields=["pending_origin", "pending_reason"])
            return None


def start_pending_applies() -> int:
    started = 0
    for state in Provisioning.objects.exclude(pending_origin="").select_related("product", "product__team"):
        started += start_pending_apply(state.product) is not None
    return started


def live_dependants(product) -> list[str]:
    """Slugs of the products whose live WID reads this one: what its destroy would break."""
    return [p.slug for p in onboarding.product_live_dependants(product.slug)]


def _destroy_options(product, action: str, *, archive: bool, force: bool, reason: str) -> dict:
    """A destroy's options, checked (400 naming the field); only a destroy takes them."""
    if action != Job.Action.DESTROY:
        for field, given in (("archive", archive is not True), ("force", force), ("reason", reason)):
            if given:
                raise InvalidInput.on(field, f"Only a destroy takes {field}.")
        return {}
    for field, value in (("archive", archive), ("force", force)):
        if not isinstance(value, bool):
            raise InvalidInput.on(field, "true or false.")
    if not isinstance(reason, str):
        raise InvalidInput.on("reason", "A text.")
    try:
        reason = onboarding_services._clean_comment(reason, required=False)
    except InvalidInput as exc:
        raise InvalidInput.on("reason", exc.errors["comment"][0]) from None
    if archive and product.target not in archives.TARGETS:
        raise InvalidInput.on("archive", f"This portal archives {', '.join(archives.TARGETS)} products only: back a "
                                         f"{product.target} product up by its cloud's means, then destroy it with "
                                         "archive: false.")
    if force and not reason.strip():
        raise InvalidInput.on("reason", "Say why the destroy goes ahead although products depend on it: "
                                        "it is recorded on the job, in its log and in the WID's review log.")
    return {"archive": archive, "force": force, "destroy_reason": reason}


def _refuse_while_read(product, *, force: bool) -> list[str]:
    """The live dependants a destroy would break: 409 listing them, unless it is forced."""
    dependants = live_dependants(product)
    if dependants and not force:
        raise Conflict(f"Live products depend on {product.slug}: {', '.join(dependants)}. Retire them or drop the "
                       "dependency first; the platform may destroy anyway with force: true and a reason.",
                       errors={"force": ["Products depend on this one."]}, extra={"dependants": dependants})
    return dependants


def _destroy_line(job: Job) -> str:
    who = job.requested_by.username if job.requested_by else "the portal"
    parts = [f"Destroy asked by {who}",
             "archive first (ARCHIVE_ROOT)" if job.archive else "no archive (archive: false): the data goes with it"]
    if job.force:
        parts.append(f"forced although {', '.join(job.dependants)} depend(s) on it" if job.dependants
                     else "forced (no live product depends on it now)")
    if job.destroy_reason:
        parts.append(f"reason: {job.destroy_reason}")
    return "; ".join(parts) + "."


def job_start(*, user, product, action: str, reason: str = "", retry_of: Job | None = None,
              origin: str = Job.Origin.REQUEST, archive: bool = True, force: bool = False,
              destroy_reason: str = "") -> Job:
    """Insert a queued job and run it after the commit; 409 if the product already has one.

    A destroy archives the product first unless `archive` is False, and is refused (409 with the
    dependants) while live products read the product, unless `force` with a `destroy_reason`."""
    if user is not None and not user_can_start(user, product, action):
        who = "the product's team and the platform" if action == Job.Action.PLAN else "the platform team"
        raise NotAllowed(f"Only {who} start {action} jobs.")
    options = _destroy_options(product, action, archive=archive, force=force, reason=destroy_reason)
    _check_startable(product, action)
    if action == Job.Action.DESTROY:
        options["dependants"] = _refuse_while_read(product, force=force)
    try:
        with transaction.atomic():
            job = Job.objects.create(product=product, action=action, requested_by=user, reason=reason[:200],
                                     retry_of=retry_of, origin=origin, **options)
    except IntegrityError:
        active = Job.objects.filter(product=product, status__in=Job.ACTIVE).first()
        raise Conflict(f"{product.slug} already has a job running"
                       + (f" (#{active.pk}, {active.status})." if active else "."),
                       errors={"job": [f"/api/v1/jobs/{active.pk}/" if active else ""]}) from None
    if action == Job.Action.DESTROY:
        _append(job, _destroy_line(job))
    Provisioning.objects.get_or_create(product=product)
    kernel.dispatch(job)
    return job


def job_get(job_id: int) -> Job:
    try:
        return Job.objects.select_related("product", "product__team", "requested_by", "archive_record").get(pk=job_id)
    except Job.DoesNotExist:
        raise NotFound(f"No job {job_id}.") from None


def job_confirm(*, user, job: Job) -> Job:
    if not onboarding.user_is_platform(user):
        raise NotAllowed("Only the platform team confirms a plan that changes or destroys resources.")
    updated = Job.objects.filter(pk=job.pk, status=Job.Status.PLANNED).update(
        status=Job.Status.QUEUED, confirmed_by=user, confirmed_summary=job.plan_summary, step="",
        available_at=timezone.now())
    if not updated:
        raise Conflict(f"Job #{job.pk} is {job.status}: only a planned job waits for confirmation.")
    job.refresh_from_db()
    kernel.dispatch(job)
    return job


def job_cancel(*, user, job: Job) -> Job:
    if not (onboarding.user_is_platform(user) or (job.action == Job.Action.PLAN and job.requested_by_id == user.pk
                                                   and onboarding.user_can_edit_product(user, job.product))):
        raise NotAllowed("Only the platform team (or who started a plan, while in the product's team) cancels a job.")
    now = timezone.now()
    # Not yet picked up by a worker, or waiting for a confirmation: nothing runs, stop it here.
    if Job.objects.filter(pk=job.pk, status__in=[Job.Status.QUEUED, Job.Status.PLANNED]).update(
            status=Job.Status.CANCELLED, cancel_requested=True, finished_at=now):
        _append(job, f"Cancelled by {user.username}.")
        job.refresh_from_db()
        signals.job_finished.send(sender=Job, job=job)
    elif Job.objects.filter(pk=job.pk, status__in=[Job.Status.RUNNING, Job.Status.APPLYING]).update(
            cancel_requested=True):
        # The worker's heartbeat reads the flag and stops terraform with an interrupt.
        _append(job, f"Cancel requested by {user.username}; stopping terraform.")
    else:
        raise Conflict(f"Job #{job.pk} has already finished ({job.status}).")
    job.refresh_from_db()
    return job


def job_retry(*, user, job: Job) -> Job:
    if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
        raise Conflict(f"Job #{job.pk} is {job.status}: only a failed or cancelled job is retried.")
    return job_start(user=user, product=job.product, action=job.action, reason=f"retry of #{job.pk}", retry_of=job,
                     origin=job.origin, archive=job.archive, force=job.force, destroy_reason=job.destroy_reason)


# --- the log ------------------------------------------------------------------------------------
def _append(job: Job, text: str) -> None:
    kernel.append(job, text, redact=tuple(_secrets()))


def _secrets() -> list[str]:
    try:
        return [settings.WAREHOUSE_ADMIN_PASSWORD_FILE.read_text().strip()]
    except OSError:
        return []


def job_log(job: Job, *, offset: int = 0, limit: int = 1000) -> list[JobLogLine]:
    return kernel.log_from(job, offset=offset, limit=limit)


# --- running ------------------------------------------------------------------------------------
def warehouse_admin() -> dict:
    """The local warehouse's admin login, which the provider and the archives use."""
    return {"host": "127.0.0.1", "port": settings.WAREHOUSE_PORT, "dbname": settings.WAREHOUSE_DATABASE,
            "user": "warehouse_admin", "password": settings.WAREHOUSE_ADMIN_PASSWORD_FILE.read_text().strip()}


def warehouse_dsn() -> str:
    admin = warehouse_admin()
    return f"postgresql://{admin['user']}:{admin['password']}@{admin['host']}:{admin['port']}/{admin['dbname']}"


def state_conn_str() -> str:
    """TF_STATE_DATABASE_URL for the pg backend, whose driver insists on SSL unless told not to."""
    url = settings.TF_STATE_DATABASE_URL
    return url if "sslmode=" in url else url + ("&" if "?" in url else "?") + "sslmode=disable"


@kernel.outlasting_db_restarts
def _set(job: Job, **fields) -> None:
    if "error" in fields:
        fields["error"] = kernel.storable(fields["error"])
    for name, value in fields.items():
        setattr(job, name, value)
    # Only while it runs: a job the reconciler has ended is never brought back by its old worker.
    Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE).update(**fields)


def _finish(job: Job, status: str, **fields) -> None:
    """End the job once: a job the reconciler already failed (its heartbeat stopped) keeps that end."""
    if "error" in fields:
        fields["error"] = kernel.storable(fields["error"])
    fields.update(status=status, finished_at=timezone.now())
    if not _end(job, fields):
        logger.warning("job %s had already ended; its worker's %s is not recorded", job.pk, status)
        return
    for name, value in fields.items():
        setattr(job, name, value)
    _announce_finished(job)


@kernel.outlasting_db_restarts
def _end(job: Job, fields: dict) -> bool:
    return bool(Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE).update(**fields))


@kernel.outlasting_db_restarts
def _announce_finished(job: Job) -> None:
    # Its receivers write to the outbox: a database restart here must not fail a finished job.
    signals.job_finished.send(sender=Job, job=job)


def _redact(outputs: dict) -> dict:
    return {name: (REDACTED if o.get("sensitive") else o.get("value")) for name, o in outputs.items()}


def job_run(job_id: int) -> None:
    """Run a queued job to its end (or to `planned`); called by the worker, safe to call twice."""
    if not kernel.claim(Job, job_id, timeout=settings.JOB_TIMEOUT_SECONDS):
        logger.info("job %s is not queued any more; nothing to do", job_id)
        return
    job = job_get(job_id)
    with kernel.Beat(job, cancel_field="cancel_requested") as beat:
        _run_claimed(job, beat)


def _run_claimed(job: Job, beat: kernel.Beat) -> None:
    product = job.product
    try:
        _set(job, step="render")
        _append(job, f"Rendering the {product.target} template for {product.slug}.")
        workdir = render(product_spec(product))
        tf = terraform.Terraform(
            workdir, workspace=product.slug, extra_env={"LOCALPLATFORM_WAREHOUSE_DSN": warehouse_dsn()},
            on_line=partial(_append, job), should_cancel=beat.should_cancel,
            deadline=kernel.seconds_left(job), on_start=partial(kernel.record_process_group, job),
        )
        _set(job, step="init")
        tf.init({"conn_str": state_conn_str()})
        state = terraform.read_state(state_conn_str(), workspace=product.slug)
        if state is None:
            tf.new_workspace()  # before any long command: see DESIGN, pg backend facts
        if job.action == Job.Action.APPLY and not (state and state.resources):
            # Nothing exists yet, so nothing can be changed or destroyed: plan and apply in one run.
            _set(job, status=Job.Status.APPLYING, step="apply")
            plan = tf.apply()
            _set(job, plan_summary=plan.summary, planned_changes=plan.changed_resources)
        elif _applied_if_safe(job, tf):
            pass
        else:
            _set(job, step="plan")
            plan = tf.plan(PLAN_FILE, destroy=job.action == Job.Action.DESTROY)
            _set(job, plan_summary=plan.summary, planned_changes=plan.changed_resources)
            if job.action == Job.Action.PLAN:
                _append(job, f"Plan: {plan.add} to add, {plan.change} to change, {plan.remove} to destroy.")
                _finish(job, Job.Status.SUCCEEDED, step="")
                return
            needs_confirmation = plan.touches_existing or job.action == Job.Action.DESTROY
            if needs_confirmation and job.origin in Job.SELF_CONFIRMING and job.action == Job.Action.APPLY \
                    and plan.only_updates_in_place:
                _append(job, f"This plan only updates in place or changes access, for an approved change "
                             f"({job.get_origin_display()}): applied without a confirmation.")
                needs_confirmation = False
            if needs_confirmation and job.confirmed_summary != plan.summary:
                if job.confirmed_summary is not None:
                    _append(job, "The plan differs from the one confirmed; confirm again.")
                _append(job, "This plan changes or destroys existing resources: "
                             "waiting for a platform member to confirm.")
                _set(job, status=Job.Status.PLANNED, step="confirm", confirmed_summary=None)
                return
            if job.action == Job.Action.DESTROY:
                _before_destroy(job, beat)
            _set(job, status=Job.Status.APPLYING, step="apply")
            tf.apply(PLAN_FILE)
        _set(job, step="outputs")
        final = terraform.read_state(state_conn_str(), workspace=product.slug)
        outputs = _redact(final.outputs if final else {})
        # Personal logins by name (their passwords stay in the state): the access report reads them.
        outputs["readers"] = sorted(((final.outputs if final else {}).get("reader_passwords") or {}).get("value") or {})
        _record_success(job, outputs)
        _finish(job, Job.Status.SUCCEEDED, step="", outputs=outputs)
    except terraform.Cancelled:
        _append(job, "Cancelled; terraform stopped. The state records whatever it had done.")
        _finish(job, Job.Status.CANCELLED, step="")
    except archives.Cancelled:
        _append(job, "Cancelled while archiving; nothing was destroyed.")
        _finish(job, Job.Status.CANCELLED, step="")
    except (archives.ArchiveError, DestroyRefused) as exc:
        what = "The archive failed" if isinstance(exc, archives.ArchiveError) else "Refused"
        _append(job, f"Error: {what}: {exc}")
        _append(job, "Nothing was destroyed. Retry once the cause is fixed (a retry keeps this job's options), "
                     "or start a destroy with other options.")
        _finish(job, Job.Status.FAILED, error=f"{what}: {exc}; nothing was destroyed."[:2000])
    except (terraform.TerraformError, RenderError) as exc:
        message = naming_a_full_disk(str(exc))
        _append(job, f"Error: {message}")
        _append(job, "This will fail the same way until the template or the WID changes." if getattr(
            exc, "permanent", False) else "This may pass on a retry (a retry adopts whatever this run created).")
        _finish(job, Job.Status.FAILED, error=message[:2000])
    except Exception as exc:
        logger.exception("job %s failed unexpectedly", job.pk)
        _append(job, f"Error: {type(exc).__name__}: {exc}")
        _finish(job, Job.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
    else:
        if job.action == Job.Action.DESTROY and job.status == Job.Status.SUCCEEDED:
            _retire_after_destroy(job)


def _applied_if_safe(job: Job, tf: terraform.Terraform) -> bool:
    """An apply the portal started for an approved change (amendment, rotation, access) plans and
    applies in one terraform run when the plan only creates, updates in place or revokes access:
    Terraform's own question is answered from the plan it printed. Anything else is declined before
    a change, and the job takes the usual way (plan file, confirmation when needed)."""
    if job.action != Job.Action.APPLY or job.origin not in Job.SELF_CONFIRMING or job.confirmed_summary is not None:
        return False
    _set(job, status=Job.Status.APPLYING, step="apply")
    plan, applied = tf.apply_if(lambda p: p.accounted_for and p.only_updates_in_place)
    _set(job, plan_summary=plan.summary, planned_changes=plan.changed_resources)
    if applied:
        _append(job, f"The plan only updated in place or changed access, for an approved change "
                     f"({job.get_origin_display()}): applied without a confirmation.")
        return True
    _append(job, "The plan replaces or destroys something: planning it for a platform member to confirm.")
    _set(job, status=Job.Status.RUNNING)
    return False


class DestroyRefused(Exception):
    """Live products came to depend on the product between the destroy's start and its apply."""


def _before_destroy(job: Job, beat: kernel.Beat) -> None:
    """What a confirmed destroy does before Terraform deletes anything: look again at who reads the
    product (recorded on the job), then archive it unless told not to. Either failing fails the job
    with everything still in place."""
    slug = job.product.slug
    dependants = live_dependants(job.product)
    _set(job, dependants=dependants)
    if dependants and not job.force:
        raise DestroyRefused(f"{', '.join(dependants)} now depend(s) on {slug}; destroy with force and a reason "
                             "to go ahead")
    if dependants:
        _append(job, f"Forced: {', '.join(dependants)} depend(s) on {slug} and lose(s) its data; "
                     f"reason: {job.destroy_reason}")
    if not job.archive:
        _append(job, f"No archive (archive: false, asked by "
                     f"{job.requested_by.username if job.requested_by else 'the portal'}): the data goes with it.")
        return
    _set(job, step="archive")
    _append(job, f"Archiving {slug} before anything is destroyed.")
    archive = archives.archive_make(job=job, warehouse=warehouse_admin(), on_line=partial(_append, job),
                                    deadline=kernel.seconds_left(job), should_cancel=beat.should_cancel,
                                    on_start=partial(kernel.record_process_group, job))
    _append(job, f"Archived to {archive.path} ({archive.size:,} bytes; missing: "
                 f"{', '.join(archive.manifest['missing']) or 'nothing'}), kept until {archive.delete_after:%Y-%m-%d}. "
                 f"Restore with: manage.py restore_archive {slug} --archive {archive.pk}")


def _retire_comment(job: Job) -> str:
    parts = [f"Decommissioned by destroy job #{job.pk}"]
    archive = Archive.objects.filter(job=job).first()
    if archive:
        parts.append(f"archive #{archive.pk} kept until {archive.delete_after:%Y-%m-%d}")
    elif not job.archive:
        parts.append("not archived (archive: false)")
    if job.dependants:
        parts.append(f"{'forced although ' if job.force else ''}{', '.join(job.dependants)} depended on it")
    if job.destroy_reason:
        parts.append(f"reason: {job.destroy_reason}")
    return "; ".join(parts) + "."


def _retire_after_destroy(job: Job) -> None:
    """The WID follows its destroyed infrastructure; a failure here never undoes the destroy."""
    try:
        onboarding_services.wid_retire(user=job.confirmed_by or job.requested_by, slug=job.product.slug,
                                       comment=_retire_comment(job))
    except Exception as exc:
        logger.exception("destroy job %s succeeded but %s could not be retired", job.pk, job.product.slug)
        _append(job, f"The infrastructure is destroyed, but the WID could not be marked retired ({exc}); "
                     "retire it from the product page.")


@kernel.outlasting_db_restarts
def _record_success(job: Job, outputs: dict) -> None:
    from provisioning import access

    state, _ = Provisioning.objects.get_or_create(product=job.product)
    destroyed = job.action == Job.Action.DESTROY
    first = not state.provisioned and not destroyed
    access.record_applied(job.product, before=state.outputs if state.provisioned else {},
                          after={} if destroyed else outputs)
    state.provisioned = not destroyed
    state.retired = destroyed
    state.last_job = job
    state.provisioned_at = None if destroyed else timezone.now()
    state.outputs = {} if destroyed else outputs
    state.template_version = "" if destroyed else str(outputs.get("template_version") or "")
    state.drifted = False
    state.save()
    if first or destroyed:
        access.after_provisioned(job.product, retired=destroyed)


# --- drift -------------------------------------------------------------------------------------
def drift_check(product) -> bool:
    """A refresh-only plan of a provisioned product; flags it drifted when reality moved.

    Runs in a working directory of its own and without taking the state lock (a refresh-only
    plan writes nothing), so it never waits on, or blocks, the product's jobs.
    """
    spec = product_spec(product)
    workdir = render(spec, settings.TERRAFORM_WORKDIR / f"{product.slug}.drift")
    tf = terraform.Terraform(workdir, workspace=product.slug,
                             extra_env={"LOCALPLATFORM_WAREHOUSE_DSN": warehouse_dsn()})
    tf.init({"conn_str": state_conn_str()})
    plan = tf.plan("drift.tfplan", refresh_only=True, lock=False)
    drifted = bool(plan.changed_resources) or plan.touches_existing
    details = sorted(set(plan.changed_resources)) if drifted else []
    newly = drifted and Provisioning.objects.filter(product=product, drifted=False).exists()
    Provisioning.objects.filter(product=product).update(
        drifted=drifted, drift_checked_at=timezone.now(), drift_details=details)
    if newly:
        signals.drift_detected.send(sender=Provisioning, product=product, details=details)
    return drifted


def drift_candidates():
    return Provisioning.objects.filter(provisioned=True, retired=False).select_related("product", "product__team")


# --- credentials --------------------------------------------------------------------------------
def credentials_read(*, user, product, remote_addr: str | None = None, reason: str = "") -> dict:
    from provisioning import access

    return access.credentials(user=user, product=product, reason=reason, remote_addr=remote_addr)
