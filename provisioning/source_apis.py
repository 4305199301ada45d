"""REST API of the ingestion sources' register: the platform registers, changes and removes them;
anyone signed in lists their names, kinds and descriptions (to name one in a WID), nothing more."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from onboarding import selectors as onboarding
from portal.errors import error_responses
from provisioning import sources


class SourcePublicOutput(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    description = serializers.CharField()


class SourceOutput(SourcePublicOutput):
    """The platform's view: where the source is (a connection only masked), and who reads it."""

    connection = serializers.SerializerMethodField(help_text="database: the URL with its password masked, "
                                                             "or the reference; share: empty")
    path = serializers.CharField()
    used_by = serializers.SerializerMethodField(help_text="slugs of the products whose WID names it")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()

    def get_connection(self, source) -> str:
        return sources.masked(source)

    def get_used_by(self, source) -> list[str]:
        return sources.source_users(source.name)


def _shown(user, source_or_sources, *, many=False):
    output = SourceOutput if onboarding.user_is_platform(user) else SourcePublicOutput
    return output(source_or_sources, many=many).data


class SourceListApi(APIView):
    @extend_schema(responses={200: SourceOutput(many=True), **error_responses(400, 403)},
                   description="Registered sources: name, kind and description for everyone signed in; "
                               "where each is and which products read it for the platform only.")
    def get(self, request):
        return Response(_shown(request.user, sources.source_list(), many=True))

    @extend_schema(request={"application/json": sources.SourceInput},
                   responses={201: SourceOutput, **error_responses(400, 403)},
                   description="Register a source (platform): a database {connection} or a share folder {path}.")
    def post(self, request):
        source = sources.source_create(user=request.user, data=request.data)
        return Response(_shown(request.user, sources.source_get(source.name)), status=status.HTTP_201_CREATED,
                        headers={"Location": f"/api/v1/sources/{source.name}/"})


class SourceDetailApi(APIView):
    @extend_schema(responses={200: SourceOutput, **error_responses(400, 403, 404)})
    def get(self, request, name):
        return Response(_shown(request.user, sources.source_get(name)))

    @extend_schema(request={"application/json": sources.SourceChangeInput},
                   responses={200: SourceOutput, **error_responses(400, 403, 404)},
                   description="Change a source's description, connection or path (platform); not its name or kind.")
    def patch(self, request, name):
        return Response(_shown(request.user, sources.source_update(user=request.user, name=name, data=request.data)))

    @extend_schema(responses={204: None, **error_responses(403, 404, 409)},
                   description="Remove a source (platform); 409 while a product's WID names it.")
    def delete(self, request, name):
        sources.source_delete(user=request.user, name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)
