"""REST API of provisioning: jobs (202 with the job's URL), their live logs, credentials."""
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from onboarding import selectors as onboarding
from portal.errors import InvalidInput, error_responses
from provisioning import archives, runs, services, triggers
from provisioning.models import Archive, Job, Provisioning, Run


class ArchiveOutput(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.IntegerField()
    path = serializers.CharField()
    created_at = serializers.DateTimeField()
    delete_after = serializers.DateTimeField()
    deleted_at = serializers.DateTimeField(allow_null=True)
    size = serializers.IntegerField()
    schemas = serializers.ListField(child=serializers.CharField())
    lake = serializers.BooleanField()
    pipeline = serializers.BooleanField()
    missing = serializers.ListField(child=serializers.CharField())


class DestroyOutput(serializers.Serializer):
    archive = serializers.BooleanField()
    force = serializers.BooleanField()
    reason = serializers.CharField()
    dependants = serializers.ListField(child=serializers.CharField())
    archived = ArchiveOutput(allow_null=True)


class JobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    product = serializers.CharField(source="product.slug")
    action = serializers.CharField()
    status = serializers.CharField()
    step = serializers.CharField()
    reason = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    confirmed_by = serializers.CharField(source="confirmed_by.username", allow_null=True, default=None)
    retry_of = serializers.IntegerField(source="retry_of_id", allow_null=True)
    plan_summary = serializers.DictField(child=serializers.IntegerField(), allow_null=True)
    planned_changes = serializers.ListField(child=serializers.CharField())
    outputs = serializers.DictField()
    error = serializers.CharField()
    log_lines = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    destroy = serializers.SerializerMethodField()

    def get_url(self, job) -> str:
        return f"/api/v1/jobs/{job.pk}/"

    @extend_schema_field(DestroyOutput(allow_null=True))
    def get_destroy(self, job) -> dict | None:
        """A destroy's options, who depended on the product, and its archive; null for other jobs."""
        if job.action != Job.Action.DESTROY:
            return None
        try:
            archive = job.archive_record
        except Archive.DoesNotExist:
            archive = None
        return {"archive": job.archive, "force": job.force, "reason": job.destroy_reason,
                "dependants": job.dependants, "archived": archives.describe(archive)}


class LogLineOutput(serializers.Serializer):
    number = serializers.IntegerField()
    at = serializers.DateTimeField()
    text = serializers.CharField()


class JobInput(serializers.Serializer):
    action = serializers.ChoiceField(Job.Action.values)
    archive = serializers.BooleanField(required=False, default=True,
                                       help_text="destroy only: archive the data first (platform; false deletes it)")
    force = serializers.BooleanField(required=False, default=False,
                                     help_text="destroy only: go ahead although live products depend on it")
    reason = serializers.CharField(required=False, allow_blank=True, help_text="destroy only: required with force")


def _job_response(job: Job, code=status.HTTP_200_OK) -> Response:
    job = services.job_get(job.pk)
    headers = {"Location": f"/api/v1/jobs/{job.pk}/"} if code == status.HTTP_202_ACCEPTED else None
    return Response(JobOutput(job).data, status=code, headers=headers)


class ProductJobListApi(APIView):
    @extend_schema(responses={200: JobOutput(many=True), **error_responses(400, 403, 404)})
    def get(self, request, slug):
        product = onboarding.product_get(slug)
        jobs = Job.objects.filter(product=product).select_related("product", "requested_by", "confirmed_by",
                                                                  "archive_record")[:100]
        return Response(JobOutput(jobs, many=True).data)

    @extend_schema(request={"application/json": JobInput}, responses={202: JobOutput, **error_responses(400, 403, 404, 409)})
    def post(self, request, slug):
        product = onboarding.product_get(slug)
        data = request.data
        if not isinstance(data, dict):
            raise InvalidInput("Send a JSON object.", errors={"body": ["Send a JSON object."]})
        unknown = sorted(set(data) - set(JobInput().fields))
        if unknown:
            raise InvalidInput(errors={key: ["Unknown field: leave it out, or check its spelling."] for key in unknown})
        action = data.get("action")
        if not isinstance(action, str) or action not in Job.Action.values:
            raise InvalidInput.on("action", f"Choose one of: {', '.join(Job.Action.values)}.")
        job = services.job_start(user=request.user, product=product, action=action,
                                 archive=data.get("archive", True), force=data.get("force", False),
                                 destroy_reason=data.get("reason", ""))
        return _job_response(job, status.HTTP_202_ACCEPTED)


class JobDetailApi(APIView):
    @extend_schema(responses={200: JobOutput, **error_responses(400, 403, 404)})
    def get(self, request, job_id):
        return _job_response(services.job_get(job_id))


class JobLogApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("offset", int, description="number of the last line you have")],
                   responses={200: inline_serializer("JobLog", {
                       "lines": LogLineOutput(many=True), "next_offset": serializers.IntegerField(),
                       "status": serializers.CharField(), "step": serializers.CharField(),
                       "finished": serializers.BooleanField()}), **error_responses(400, 403, 404)})
    def get(self, request, job_id):
        job = services.job_get(job_id)
        offset = _offset(request)
        lines = services.job_log(job, offset=offset)
        return Response({
            "lines": LogLineOutput(lines, many=True).data,
            "next_offset": lines[-1].number if lines else offset,
            "status": job.status, "step": job.step, "finished": job.status in Job.FINISHED,
        })


def _offset(request) -> int:
    try:
        return max(0, int(request.query_params.get("offset", 0)))
    except ValueError:
        raise InvalidInput.on("offset", "A whole number.") from None


def _job_action(service, doc: str):
    class JobActionApi(APIView):
        @extend_schema(request=None, responses={200: JobOutput, 202: JobOutput, **error_responses(400, 403, 404, 409)},
                       description=doc)
        def post(self, request, job_id):
            job = service(user=request.user, job=services.job_get(job_id))
            return _job_response(job, status.HTTP_202_ACCEPTED if job.status == Job.Status.QUEUED else 200)

    JobActionApi.__name__ = JobActionApi.__qualname__ = f"{service.__name__.title().replace('_', '')}Api"
    return JobActionApi


JobConfirmApi = _job_action(services.job_confirm, "Confirm a planned job that changes or destroys (platform).")
JobCancelApi = _job_action(services.job_cancel, "Cancel a queued, planned or running job.")
JobRetryApi = _job_action(services.job_retry, "Start a new job from a failed or cancelled one.")


class CredentialsApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("reason", str, description="required for restricted or PII products, and for "
                                                                "a platform member outside the owning team")],
        responses={200: inline_serializer("Credentials", {
            **{name: serializers.CharField(allow_null=True) for name in (
                "host", "database", "user", "password", "schema", "published_schema", "lake_path", "kind",
                "valid_until")},
            "port": serializers.IntegerField(allow_null=True)}), **error_responses(400, 403, 404, 409)},
        description="The product's login for its team; a person's own login for an approved access request; "
                    "every read audited, a read with a reason e-mailed to the team and the custodian.")
    def get(self, request, slug):
        product = onboarding.product_get(slug)
        reason = request.query_params.get("reason", "")
        data = services.credentials_read(user=request.user, product=product, reason=reason,
                                         remote_addr=request.META.get("REMOTE_ADDR"))
        return Response(data, headers={"Cache-Control": "no-store"})


class ProvisioningOutput(serializers.Serializer):
    provisioned = serializers.BooleanField()
    provisioned_at = serializers.DateTimeField(allow_null=True)
    retired = serializers.BooleanField()
    template_version = serializers.CharField()
    outputs = serializers.DictField()
    drifted = serializers.BooleanField()
    drift_checked_at = serializers.DateTimeField(allow_null=True)
    drift_details = serializers.ListField(child=serializers.CharField())
    last_job = serializers.IntegerField(source="last_job_id", allow_null=True)
    dependencies = serializers.SerializerMethodField()
    pending_apply = serializers.CharField(source="pending_reason")
    triggers = serializers.SerializerMethodField()

    def get_dependencies(self, state) -> list[dict]:
        """Each product this one reads (in its approved version) and whether the grant is in place."""
        from provisioning import access
        from provisioning.services import live_meta

        return access.dependency_states(state.product, live_meta(state.product)["depends_on"])

    @extend_schema_field(inline_serializer("TriggerState", {
        "schedule": serializers.CharField(), "next_run": serializers.DateTimeField(allow_null=True),
        "last_scheduled_run": serializers.DateTimeField(allow_null=True), "on_file": serializers.BooleanField(),
        "on_upstream": serializers.ListField(child=serializers.CharField()),
        "files_waiting": serializers.BooleanField(), "files_changed_at": serializers.DateTimeField(allow_null=True),
        "paused": serializers.CharField(help_text="why its triggers start nothing now (suspended, retired, "
                                                  "not provisioned), or empty")}))
    def get_triggers(self, state) -> dict:
        """What starts its runs besides a person, from its approved WID, and where each trigger stands."""
        return triggers.summary(state.product)


class ProductProvisioningApi(APIView):
    @extend_schema(responses={200: ProvisioningOutput, **error_responses(400, 403, 404)}, description="Infrastructure state: provisioned, drifted, outputs.")
    def get(self, request, slug):
        product = onboarding.product_get(slug)
        state = Provisioning.objects.filter(product=product).first() or Provisioning(product=product)
        return Response(ProvisioningOutput(state).data)


class RunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    product = serializers.CharField(source="product.slug")
    status = serializers.CharField()
    queue = serializers.CharField()
    commit = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    exit_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    trigger = serializers.CharField(help_text="manual, schedule, file or upstream:<slug>#<run id>")
    wave = serializers.IntegerField(allow_null=True, help_text="the id of the run that began its chain")
    chain_stopped_at = serializers.SerializerMethodField(
        help_text="the product where a failure stopped this run's wave, or null")
    stopped_chain = serializers.ListField(child=serializers.CharField(),
                                         help_text="the products that got no run because this one failed")
    log_lines = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, run) -> str:
        return f"/api/v1/runs/{run.pk}/"

    def get_chain_stopped_at(self, run) -> str | None:
        stopped = self.context["stopped"] if "stopped" in self.context else triggers.chains_stopped([run])
        return stopped.get(run.wave)


class ProductRunListApi(APIView):
    @extend_schema(responses={200: RunOutput(many=True), **error_responses(400, 403, 404)})
    def get(self, request, slug):
        product = onboarding.product_get(slug)
        latest = list(Run.objects.filter(product=product).select_related("product")[:100])
        return Response(RunOutput(latest, many=True, context={"stopped": triggers.chains_stopped(latest)}).data)

    @extend_schema(request=None, responses={202: RunOutput, **error_responses(400, 403, 404, 409)},
                   description="Run the product's scaffolded pipeline on its own compute (its team and the platform).")
    def post(self, request, slug):
        run = runs.run_start(user=request.user, product=onboarding.product_get(slug))
        return Response(RunOutput(runs.run_get(run.pk)).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/v1/runs/{run.pk}/"})


class RunDetailApi(APIView):
    @extend_schema(responses={200: RunOutput, **error_responses(400, 403, 404)})
    def get(self, request, run_id):
        return Response(RunOutput(runs.run_get(run_id)).data)


class RunLogApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("offset", int)], responses={200: inline_serializer("RunLog", {
        "lines": LogLineOutput(many=True), "next_offset": serializers.IntegerField(),
        "status": serializers.CharField(), "finished": serializers.BooleanField()}), **error_responses(400, 403, 404)})
    def get(self, request, run_id):
        run = runs.run_get(run_id)
        offset = _offset(request)
        lines = runs.run_log(run, offset=offset)
        return Response({"lines": LogLineOutput(lines, many=True).data,
                         "next_offset": lines[-1].number if lines else offset,
                         "status": run.status, "finished": run.status in Run.FINISHED})
