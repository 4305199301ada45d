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
