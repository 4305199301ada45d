"""REST API of access: output ports, access requests and decisions, rotation, the access report, usage."""
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from onboarding import selectors as onboarding
from onboarding.apis import validated
from onboarding.validation import TextField
from portal.errors import NotAllowed, error_responses
from provisioning import access, ports, usage
from provisioning.models import AccessEvent, AccessRequest, PortRead


class PortOutput(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    location = serializers.DictField(allow_null=True, help_text="table: {schema, table}; feed: {path}; else null")
    consumers = serializers.ListField(child=serializers.DictField())


class ProductPortsApi(APIView):
    @extend_schema(responses={200: PortOutput(many=True), **error_responses(400, 403, 404)},
                   description="The product's output ports (of its approved version), where each is published, "
                               "and who reads them: products (granted, pending or awaiting approval) and people.")
    def get(self, request, slug):
        return Response(PortOutput(ports.product_ports(onboarding.product_get(slug)), many=True).data)


class AccessRequestOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    product = serializers.CharField(source="product.slug")
    kind = serializers.CharField()
    consumer = serializers.CharField(source="consumer.slug", allow_null=True, default=None)
    requester = serializers.CharField(source="requester.username", allow_null=True, default=None)
    purpose = serializers.CharField()
    until = serializers.DateField(allow_null=True)
    status = serializers.CharField()
    needs_custodian = serializers.BooleanField()
    owner_decision = serializers.CharField()
    owner_decided_by = serializers.CharField(source="owner_decided_by.username", allow_null=True, default=None)
    owner_decided_at = serializers.DateTimeField(allow_null=True)
    custodian_decision = serializers.CharField()
    custodian_decided_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, request) -> str:
        return f"/api/v1/access-requests/{request.pk}/"


class AccessRequestInput(serializers.Serializer):
    purpose = TextField(trim_whitespace=False, help_text="what the data is needed for")
    until = serializers.DateField(help_text="the last day of access (at most ACCESS_MAX_DAYS ahead)")


class DecisionInput(serializers.Serializer):
    comment = TextField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)


def _visible_requests(user, product):
    qs = AccessRequest.objects.filter(product=product).select_related(
        "product", "consumer", "requester", "owner_decided_by")
    if access.user_may_see_report(user, product):
        return qs
    return qs.filter(requester=user)


class ProductAccessRequestListApi(APIView):
    @extend_schema(responses={200: AccessRequestOutput(many=True), **error_responses(400, 403, 404)},
                   description="The product's access requests (its team and the platform see all, others their own).")
    def get(self, request, slug):
        product = onboarding.product_get(slug)
        return Response(AccessRequestOutput(_visible_requests(request.user, product)[:200], many=True).data)

    @extend_schema(request={"application/json": AccessRequestInput},
                   responses={201: AccessRequestOutput, **error_responses(400, 403, 404, 409)},
                   description="Ask for read access to the product's published ports, for a purpose until a date. "
                               "Its owners decide (and, for personal data, its custodian).")
    def post(self, request, slug):
        product = onboarding.product_get(slug)
        data = validated(request, AccessRequestInput)
        made = access.request_personal(user=request.user, product=product, purpose=data["purpose"],
                                       until=data["until"])
        return Response(AccessRequestOutput(access.request_get(made.pk)).data, status=status.HTTP_201_CREATED,
                        headers={"Location": f"/api/v1/access-requests/{made.pk}/"})


class AccessRequestDetailApi(APIView):
    @extend_schema(responses={200: AccessRequestOutput, **error_responses(400, 403, 404)})
    def get(self, request, request_id):
        made = access.request_get(request_id)
        if not (access.user_may_see_report(request.user, made.product) or made.requester_id == request.user.pk
                or (made.consumer is not None and onboarding.user_is_member(request.user, made.consumer.team))):
            raise NotAllowed("Only the producer's team, the requester and the platform see this request.")
        return Response(AccessRequestOutput(made).data)


def _decision_api(approve: bool | None, doc: str):
    class DecisionApi(APIView):
        @extend_schema(request={"application/json": DecisionInput},
                       responses={200: AccessRequestOutput, **error_responses(400, 403, 404, 409)}, description=doc)
        def post(self, request, request_id):
            comment = validated(request, DecisionInput).get("comment") or ""
            if approve is None:
                made = access.revoke(user=request.user, request_id=request_id, comment=comment)
            else:
                made = access.decide(user=request.user, request_id=request_id, approve=approve, comment=comment)
            return Response(AccessRequestOutput(access.request_get(made.pk)).data)

    name = {True: "Approve", False: "Reject", None: "Revoke"}[approve]
    DecisionApi.__name__ = DecisionApi.__qualname__ = f"AccessRequest{name}Api"
    return DecisionApi


AccessRequestApproveApi = _decision_api(True, "Approve (the producer's owners; a PII producer's custodian after them).")
AccessRequestRejectApi = _decision_api(False, "Reject, with a comment (the producer's owners).")
AccessRequestRevokeApi = _decision_api(None, "End an approved or pending access (owners, platform or the requester).")


class RotateOutput(serializers.Serializer):
    job = serializers.IntegerField(allow_null=True, help_text="the apply job, or null when it waits for the active one")
    detail = serializers.CharField()


class CredentialsRotateApi(APIView):
    @extend_schema(request=None, responses={202: RotateOutput, **error_responses(400, 403, 404, 409)},
                   description="A new password for the product's login, through a Terraform apply "
                               "(its team and the platform); the old password is refused after it.")
    def post(self, request, slug):
        job = access.rotate(user=request.user, product=onboarding.product_get(slug))
        detail = (f"Rotating in job #{job.pk}." if job else
                  "Rotating right after the product's active job.")
        return Response({"job": job.pk if job else None, "detail": detail}, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/v1/jobs/{job.pk}/"} if job else None)


class AccessEventOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    product = serializers.CharField(source="product.slug")
    team = serializers.CharField(source="product.team.slug")
    kind = serializers.CharField()
    subject_kind = serializers.CharField()
    subject = serializers.CharField()
    actor = serializers.CharField()
    detail = serializers.CharField()
    request = serializers.IntegerField(source="request_id", allow_null=True)


class ReaderProductOutput(serializers.Serializer):
    product = serializers.CharField()
    team = serializers.CharField()
    since = serializers.DateTimeField(allow_null=True)


class ReaderPersonOutput(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField()
    until = serializers.DateField()
    request = serializers.IntegerField()


class ProductAccessApi(APIView):
    @extend_schema(responses={200: inline_serializer("AccessReport", {
        "product": serializers.CharField(),
        "readers": inline_serializer("Readers", {"products": ReaderProductOutput(many=True),
                                                 "people": ReaderPersonOutput(many=True)}),
        "events": AccessEventOutput(many=True),
    }), **error_responses(400, 403, 404)},
        description="Who can read the product now, and every request, decision, grant, revocation and "
                    "credentials read (its team and the platform).")
    def get(self, request, slug):
        product = onboarding.product_get(slug)
        if not access.user_may_see_report(request.user, product):
            raise NotAllowed("Only the product's team and the platform see its access report.")
        return Response({"product": product.slug, "readers": access.readers_now(product),
                         "events": AccessEventOutput(access.events(product=product)[:1000], many=True).data})


class AccessEventsApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("product", str), OpenApiParameter("team", str),
                               OpenApiParameter("kind", str, enum=AccessEvent.Kind.values),
                               OpenApiParameter("subject", str), OpenApiParameter("since", str),
                               OpenApiParameter("until", str)],
                   responses={200: AccessEventOutput(many=True), **error_responses(400, 403, 404)},
                   description="Every access event of the platform, newest first, filtered (the platform team).")
    def get(self, request):
        if not onboarding.user_is_platform(request.user):
            raise NotAllowed("The platform-wide access report is the platform team's.")
        return Response(AccessEventOutput(ports.filtered_events(request.query_params)[:5000], many=True).data)



class CanReadOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["product", "person"])
    who = serializers.CharField(allow_null=True, help_text="a product's slug; a person's username, or null when "
                                                           "hidden (only the team and the platform see names)")
    team = serializers.CharField(allow_null=True, help_text="a product's team")
    until = serializers.DateField(allow_null=True, help_text="a person's last day")


class ReadByOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PortRead.ReaderKind.values,
                                   help_text="product: its login read; person: a personal login read; "
                                             "run: a successful run of a consumer (feeds)")
    who = serializers.CharField(allow_null=True)
    first_read_at = serializers.DateTimeField()
    last_read_at = serializers.DateTimeField(help_text="the sample that saw the read (every USAGE_SAMPLE_SECONDS), "
                                                       "or the run's end")
    reads = serializers.IntegerField(help_text="statements (or runs) counted")


class FailedReadOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PortRead.ReaderKind.values)
    who = serializers.CharField(allow_null=True)
    last_failed_at = serializers.DateTimeField()
    failed_reads = serializers.IntegerField()
    error = serializers.CharField(help_text="the warehouse's last refusal, e.g. permission denied for schema ...")


class PortUsageOutput(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    measured = serializers.BooleanField(help_text="table and feed ports; the others are read outside the warehouse")
    can_read = CanReadOutput(many=True)
    read_by = ReadByOutput(many=True)
    failed_reads = FailedReadOutput(many=True)


class ProductUsageApi(APIView):
    @extend_schema(responses={200: PortUsageOutput(many=True), **error_responses(400, 403, 404)},
                   description="Per output port of the approved version: who can read it, who did (measured in "
                               "the warehouse: statements of consumers' and people's logins naming its table; for "
                               "a feed, consumers' successful runs) and when last, and refused reads. Anyone "
                               "signed in; people's names for the product's team and the platform only.")
    def get(self, request, slug):
        product = onboarding.product_get(slug)
        return Response(PortUsageOutput(usage.port_usage(product, user=request.user), many=True).data)
