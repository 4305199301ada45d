"""REST API of onboarding: one view per resource, serializers for output, services for writes."""
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from onboarding import selectors, services
from onboarding.models import Membership, Product
from onboarding.validation import (
    ContactsSerializer, LineField, OutputSerializer, PersonSerializer, SectionsSerializer, SlugField, SourceSerializer,
    TextField, TriggersSerializer, WidInputSerializer, next_run, refuse_control_characters, unknown_keys,
)
from portal import pagecache
from portal.errors import InvalidInput, error_responses, flatten_errors


# --- serializers for output -----------------------------------------------------------------
class MemberOutput(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()


class TeamOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()


class TeamDetailOutput(TeamOutput):
    members = serializers.SerializerMethodField()

    def get_members(self, team) -> list[dict]:
        return MemberOutput(selectors.team_memberships(team), many=True).data


class ReviewEventOutput(serializers.Serializer):
    action = serializers.CharField()
    actor = serializers.CharField()
    actor_name = serializers.CharField()
    by_policy = serializers.BooleanField()
    comment = serializers.CharField()
    at = serializers.DateTimeField()


class ProductOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    domain = serializers.CharField()
    team = serializers.CharField(source="team.slug")
    status = serializers.CharField()
    version = serializers.IntegerField()
    approved_version = serializers.IntegerField(
        allow_null=True, help_text="The version whose infrastructure is live (null before the first approval); "
                                   "an approved product's later edits are an amendment until approved.")
    target = serializers.CharField()
    classification = serializers.CharField()
    pii = serializers.BooleanField()
    compute_tier = serializers.CharField()
    contacts = ContactsSerializer()
    data_custodian = PersonSerializer()
    depends_on = serializers.ListField(child=serializers.CharField())
    outputs = OutputSerializer(many=True)
    ingestion = serializers.CharField(help_text="file_drop, database_extract, spreadsheet or none.")
    source = SourceSerializer(allow_null=True)
    schedule = serializers.CharField(allow_null=True, help_text="Cron, five fields, UTC; null without one.")
    next_run = serializers.SerializerMethodField(
        help_text="When this WID's schedule would fire next (UTC); null without a schedule, or when the product is "
                  "retired or suspended. During an amendment this is the draft's schedule: when the live version "
                  "runs next is `triggers.next_run` of GET .../provisioning/.")
    triggers = TriggersSerializer(allow_null=True)
    suspended = serializers.BooleanField(help_text="Access to the product's data is switched off, the data kept.")
    sunset = serializers.DateField(allow_null=True, help_text="Set by deprecate: the day the product goes.")
    sections = SectionsSerializer()
    path = serializers.CharField()
    head_sha = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()

    def get_url(self, product) -> str:
        return f"/api/v1/products/{product.slug}/"

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_run(self, product) -> str | None:
        if product.status == "retired" or product.suspended:
            return None
        when = next_run(product.schedule)
        return when.isoformat().replace("+00:00", "Z") if when else None


class ProductDetailOutput(ProductOutput):
    review_log = ReviewEventOutput(source="review_events", many=True)


class CommitOutput(serializers.Serializer):
    version = serializers.IntegerField(source="number")
    sha = serializers.CharField(source="commit.sha")
    author = serializers.CharField(source="commit.author_name")
    author_email = serializers.CharField(source="commit.author_email")
    date = serializers.DateTimeField(source="commit.date")
    message = serializers.CharField(source="commit.message")


class WidUpdateInput(WidInputSerializer):
    version = serializers.IntegerField(min_value=1)


# What a GET of a product returns but a write does not set: accepted back unchanged, so that a
# client can GET, edit and PATCH the whole object.
READ_ONLY_KEYS = frozenset(ProductDetailOutput().fields) - frozenset(WidUpdateInput().fields)
# Of those, what moves by itself between the GET and the PATCH: accepted back with any value.
MOVING_KEYS = frozenset({"next_run"})


class CommentInput(serializers.Serializer):
    comment = TextField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)

    def validate_comment(self, value):
        return value or ""


def json_object(request, serializer: serializers.Serializer, *, also_known=frozenset()) -> dict:
    """The request's body: an object, with no key `serializer` does not know (400 naming each)."""
    data = request.data
    if not isinstance(data, dict):
        raise InvalidInput("Send a JSON object.", errors={"body": ["Send a JSON object."]})
    unknown = unknown_keys(data, serializer, also_known=also_known)
    if unknown:
        raise InvalidInput(errors=unknown)
    return data


def validated(request, serializer_class: type[serializers.Serializer]) -> dict:
    serializer = serializer_class(data=json_object(request, serializer_class()))
    if not serializer.is_valid():
        raise InvalidInput(errors=flatten_errors(serializer.errors))
    return serializer.validated_data


def _product_response(product: Product, code=status.HTTP_200_OK) -> Response:
    product = Product.objects.select_related("team").prefetch_related("review_events").get(pk=product.pk)
    return Response(ProductDetailOutput(product).data, status=code)


# --- teams --------------------------------------------------------------------------------------
class TeamInput(serializers.Serializer):
    slug = SlugField()
    name = LineField(max_length=200)


class MemberInput(serializers.Serializer):
    username = LineField(max_length=150)
    role = serializers.ChoiceField(choices=Membership.Role.values, default=Membership.Role.MEMBER)


class TeamListApi(APIView):

    @extend_schema(responses={200: TeamOutput(many=True), **error_responses(400, 403, 404)})
    def get(self, request):
        return Response(TeamOutput(selectors.team_list(), many=True).data)

    @extend_schema(request={"application/json": TeamInput}, responses={201: TeamDetailOutput, **error_responses(400, 403, 404)})
    def post(self, request):
        data = validated(request, TeamInput)
        team = services.team_create(user=request.user, slug=data["slug"], name=data["name"])
        return Response(TeamDetailOutput(team).data, status=status.HTTP_201_CREATED)


class TeamDetailApi(APIView):
    @extend_schema(responses={200: TeamDetailOutput, **error_responses(400, 403, 404)})
    def get(self, request, slug):
        return Response(TeamDetailOutput(selectors.team_get(slug)).data)


class TeamMemberListApi(APIView):

    @extend_schema(responses={200: MemberOutput(many=True), **error_responses(400, 403, 404)})
    def get(self, request, slug):
        return Response(MemberOutput(selectors.team_memberships(selectors.team_get(slug)), many=True).data)

    @extend_schema(request={"application/json": MemberInput},
                   responses={201: MemberOutput, **error_responses(400, 403, 404, 409)})
    def post(self, request, slug):
        team = selectors.team_get(slug)
        membership = services.team_member_add(actor=request.user, team=team, **validated(request, MemberInput))
        return Response(MemberOutput(membership).data, status=status.HTTP_201_CREATED)


class TeamMemberDetailApi(APIView):
    @extend_schema(responses={204: None, **error_responses(400, 403, 404, 409)})
    def delete(self, request, slug, username):
        services.team_member_remove(actor=request.user, team=selectors.team_get(slug), username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- products ----------------------------------------------------------------------------------
class ProductListApi(APIView):
    @extend_schema(
        operation_id="v1_products_list",  # a paginated page, which spectacular would take for a single product
        parameters=[*(OpenApiParameter(name, str) for name in ("team", "domain", "status")),
                    *(OpenApiParameter(name, int) for name in ("limit", "offset"))],
        responses={200: inline_serializer("PaginatedProductList", {  # LimitOffsetPagination's page
            "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True), "results": ProductOutput(many=True),
        }), **error_responses(400, 403, 404)},
    )
    def get(self, request):
        params = request.query_params
        for name in ("team", "domain", "status"):
            try:
                refuse_control_characters(params.get(name, ""))  # PostgreSQL refuses NUL outright
            except DjangoValidationError as exc:
                raise InvalidInput.on(name, exc.messages[0]) from None
        key = None
        if pagecache.enabled():  # the same page for everyone: keyed by the data's fingerprint and the query
            key = f"api-products:{pagecache.product_fingerprint()}:{request.scheme}://{request.get_host()}:{params.urlencode()}"
            data = cache.get(key)
            if data is not None:
                return Response(data)
        products = selectors.product_list(team=params.get("team"), domain=params.get("domain"), status=params.get("status"))
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(products, request, view=self)
        response = paginator.get_paginated_response(ProductOutput(page, many=True).data)
        if key:
            cache.set(key, response.data, settings.PAGE_CACHE_SECONDS)
        return response

    @extend_schema(request={"application/json": WidInputSerializer},
                   responses={201: ProductDetailOutput, **error_responses(400, 403, 503)})
    def post(self, request):
        data = request.data
        unknown = unknown_keys(data, WidInputSerializer()) if isinstance(data, dict) else {}
        if unknown:  # with every other bad field named too, in one answer
            checked = WidInputSerializer(data=data)
            raise InvalidInput(errors={**({} if checked.is_valid() else flatten_errors(checked.errors)), **unknown})
        product = services.wid_create(user=request.user, data=data)
        return _product_response(product, status.HTTP_201_CREATED)


class ProductDetailApi(APIView):
    @extend_schema(responses={200: ProductDetailOutput, **error_responses(400, 403, 404)})
    def get(self, request, slug):
        return _product_response(selectors.product_get(slug))

    @extend_schema(request={"application/json": WidUpdateInput},
                   responses={200: ProductDetailOutput, **error_responses(400, 403, 404, 409, 503)},
                   description="Send the `version` you read and the fields to change; the keys a GET returns "
                               "and a write does not set may be sent back unchanged.")
    def patch(self, request, slug):
        data = dict(json_object(request, WidUpdateInput(), also_known=READ_ONLY_KEYS))
        sent_back = {key: data.pop(key) for key in READ_ONLY_KEYS & set(data)}
        if sent_back:
            product = Product.objects.select_related("team").prefetch_related("review_events").get(
                pk=selectors.product_get(slug).pk)
            current = ProductDetailOutput(product).data
            changed = {key: ["Set by the portal: send it unchanged or leave it out."]
                       for key, value in sent_back.items() if value != current[key] and key not in MOVING_KEYS}
            if changed:
                raise InvalidInput(errors=changed)
        product = services.wid_update(user=request.user, slug=slug, data=data)
        return _product_response(product)


class ProductMarkdownApi(APIView):
    @extend_schema(responses={(200, "text/markdown"): str, **error_responses(400, 403, 404)})
    def get(self, request, slug):
        text = selectors.product_markdown(selectors.product_get(slug))
        return HttpResponse(text, content_type="text/markdown; charset=utf-8")


class ProductHistoryApi(APIView):
    @extend_schema(responses={200: CommitOutput(many=True), **error_responses(400, 403, 404)})
    def get(self, request, slug):
        return Response(CommitOutput(selectors.product_history(selectors.product_get(slug)), many=True).data)


def _lifecycle_api(service, doc: str):
    class LifecycleApi(APIView):
        @extend_schema(request={"application/json": CommentInput},
                       responses={200: ProductDetailOutput, **error_responses(400, 403, 404, 409, 503)}, description=doc)
        def post(self, request, slug):
            product = service(user=request.user, slug=slug, comment=validated(request, CommentInput).get("comment", ""))
            return _product_response(product)

    LifecycleApi.__name__ = LifecycleApi.__qualname__ = f"{service.__name__.title().replace('_', '')}Api"
    return LifecycleApi


ProductSubmitApi = _lifecycle_api(
    services.wid_submit, "Submit for review; the policy may approve a low-risk WID at once."
)
ProductApproveApi = _lifecycle_api(services.wid_approve, "Approve (platform team only).")
ProductRejectApi = _lifecycle_api(services.wid_reject, "Reject with a comment (platform team only).")
ProductRequestChangesApi = _lifecycle_api(
    services.wid_request_changes, "Ask the team for changes, with a comment (platform team only)."
)
ProductWithdrawApi = _lifecycle_api(
    services.wid_withdraw, "Drop the open amendment of an approved product: the WID returns to its approved version."
)


class DeprecateInput(serializers.Serializer):
    sunset = serializers.DateField(input_formats=["iso-8601"], help_text="The day the product goes: after today.")
    comment = TextField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False,
                        help_text="Why, and what its readers use instead: every consuming team reads it.")

    def validate_comment(self, value):
        return value or ""


class ProductDeprecateApi(APIView):
    @extend_schema(request={"application/json": DeprecateInput},
                   responses={200: ProductDetailOutput, **error_responses(400, 403, 404, 409, 503)},
                   description="Deprecate an approved product (its team or the platform): status `deprecated`, "
                               "`sunset` set, every consuming team told (e-mail, webhook `wid.deprecated`). It takes "
                               "no amendment and no new dependant from then on; its jobs and its destroy go on.")
    def post(self, request, slug):
        data = validated(request, DeprecateInput)
        product = services.wid_deprecate(user=request.user, slug=slug, sunset=data["sunset"],
                                         comment=data.get("comment", ""))
        return _product_response(product)


ProductSuspendApi = _lifecycle_api(
    services.wid_suspend, "Switch off access to the product's data, data kept (platform team only): `suspended: "
                          "true` in the WID, its status unchanged."
)
ProductResumeApi = _lifecycle_api(services.wid_resume, "Switch access back on after a suspension (platform team only).")
