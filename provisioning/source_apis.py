"""REST API of the ingestion sources' register: the platform registers, changes and removes them;
anyone signed in lists their names, kinds and descriptions (to name one in a WID), nothing more."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from onboarding import selectors as onboarding
from portal.errors import error_responses
from provisioning import sources


class SourceOutput(serializers.Serializer):
    """A source as its reader may see it: the platform also sees where it is (a connection only masked)
    and which products read it; everyone else only what names it."""

    name = serializers.CharField()
    kind = serializers.CharField()
    description = serializers.CharField()
    connection = serializers.CharField(required=False, help_text="platform only. database: the URL with its "
                                                                 "password masked, or the reference; share: empty")
    path = serializers.CharField(required=False, help_text="platform only. share: its folder on the workers")
    used_by = serializers.ListField(child=serializers.CharField(), required=False,
                                    help_text="platform only: slugs of the products whose WID names it")
    created_by = serializers.CharField(required=False, allow_null=True, help_text="platform only")
    created_at = serializers.DateTimeField(required=False, help_text="platform only")


def _shown(user, source) -> dict:
    shown = {"name": source.name, "kind": source.kind, "description": source.description}
    if onboarding.user_is_platform(user):
        shown.update(connection=sources.masked(source), path=source.path, used_by=sources.source_users(source.name),
                     created_by=source.created_by.username if source.created_by else None,
                     created_at=source.created_at)
    return {key: value for key, value in SourceOutput(shown).data.items() if key in shown}


class SourceListApi(APIView):
    @extend_schema(responses={200: SourceOutput(many=True), **error_responses(400, 403)},
                   description="Registered sources: name, kind and description for everyone signed in; "
                               "where each is and which products read it for the platform only.")
    def get(self, request):
        return Response([_shown(request.user, source) for source in sources.source_list()])

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
