"""The portal's domain errors and the one place that maps them to HTTP.

Services raise these; the API answers `{"detail": ..., "errors": {field: [...]}}` and the
pages show the same messages next to the fields.
"""
import functools

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler


class PortalError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The request could not be completed."

    def __init__(self, detail: str | None = None, *, errors: dict[str, list[str]] | None = None,
                 extra: dict | None = None):
        self.detail = detail or self.default_detail
        self.errors = errors or {}
        self.extra = extra or {}  # more keys of the answer, beside detail and errors (a 409's dependants)
        super().__init__(self.detail)


class InvalidInput(PortalError):
    default_detail = "Invalid input."

    @classmethod
    def on(cls, field: str, message: str) -> "InvalidInput":
        return cls(errors={field: [message]})


class NotAllowed(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "You do not have permission to do this."


class NotFound(PortalError):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "Not found."


class Conflict(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."


class Unavailable(PortalError):
    """A transient failure of a backing service (the WID repository, say): try again later."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Temporarily unavailable; try again."


def or_404(read, *args, **kwargs):
    """For pages: a selector's NotFound becomes Django's 404 page."""
    try:
        return read(*args, **kwargs)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def flatten_errors(errors) -> dict[str, list[str]]:
    """DRF nests errors of nested serializers; the contract wants `{"a.b": [...]}`."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if prefix and key == api_settings.NON_FIELD_ERRORS_KEY:
                    walk(prefix, inner)  # a nested object's own errors belong to the object's path
                else:
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, inner in enumerate(value):
                if inner:
                    walk(f"{prefix}.{index}" if prefix else str(index), inner)
        else:
            messages = value if isinstance(value, list) else [value]
            flat.setdefault(prefix or "non_field_errors", []).extend(str(m) for m in messages)

    walk("", errors)
    return flat


@functools.cache
def _error_shape():
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer("Error", {
        "detail": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    })


def error_responses(*codes: int) -> dict:
    """For `extend_schema(responses=...)`: the error answers an operation gives, all in the one
    shape `api_exception_handler` gives them."""
    from drf_spectacular.utils import OpenApiResponse

    return {code: OpenApiResponse(_error_shape()) for code in codes}


def api_exception_handler(exc, context):
    if isinstance(exc, PortalError):
        headers = {"Retry-After": "5"} if isinstance(exc, Unavailable) else None
        return Response({**exc.extra, "detail": exc.detail, "errors": exc.errors}, status=exc.status_code,
                        headers=headers)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large.", "errors": {"body": ["The request body is too large."]}},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "errors": flatten_errors(exc.detail)}
    else:
        response.data = {"detail": str(exc.detail) if hasattr(exc, "detail") else str(exc), "errors": {}}
    return response
