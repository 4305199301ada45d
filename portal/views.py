import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse


def healthz(request):
    """Each part the portal needs, `ok` or `down`. 503 only when the database is down: without
    Redis pages and the API still answer (queued work waits in PostgreSQL), so a load balancer
    must keep sending requests; monitoring reads `redis` to raise the alarm."""
    parts = {"database": _database(), "redis": _redis()}
    healthy = parts["database"] == "ok"
    status = "ok" if all(state == "ok" for state in parts.values()) else "degraded" if healthy else "down"
    return JsonResponse({"status": status, **parts}, status=200 if healthy else 503)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return "down"
    return "ok"


def _redis() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return "down"
    finally:
        client.close()
    return "ok"


def server_error(request):
    """handler500: a backing service that went away (PostgreSQL restarting, Redis down under a
    write that needed it) is a 503 the client may retry, not a 500; anything else stays a 500."""
    import sys

    from django.views.defaults import server_error as django_server_error

    exc = sys.exc_info()[1]
    if not is_unavailable(exc):
        return django_server_error(request)
    return unavailable(request)


def unavailable(request):
    """The 503 a client may retry in a moment, as JSON under /api/ and as a page elsewhere."""
    detail = "A service the portal needs is unavailable for a moment; nothing was half-saved. Try again."
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": detail, "errors": {}}, status=503)
    else:
        from django.http import HttpResponse
        from django.utils.html import escape

        response = HttpResponse(f"<!doctype html><title>Try again in a moment</title><h1>Try again in a moment"
                                f"</h1><p>{escape(detail)}</p>", status=503)
    response["Retry-After"] = "5"
    return response


def is_unavailable(exc) -> bool:
    from django.db import InterfaceError, OperationalError
    from kombu.exceptions import OperationalError as BrokerError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (OperationalError, InterfaceError, BrokerError, redis.ConnectionError,
                            redis.TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def not_found(request, exception=None):
    """handler404: under /api/ the answer is the API's JSON error, as for every other API error."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "errors": {}}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
