"""/healthz/ names each part the portal needs; 503 only when the database is down."""
import socket

import pytest
from django.db import connection


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def client_of_production(client, settings):
    settings.REDIS_URL = settings.CELERY_BROKER_URL  # the real Redis (tests cache in memory)
    return client


def test_it_says_ok_when_the_database_and_redis_answer(client_of_production, db):
    response = client_of_production.get("/healthz/")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok", "redis": "ok"})


def test_it_stays_200_but_says_redis_is_down(client_of_production, settings, db):
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = client_of_production.get("/healthz/")
    assert (response.status_code, response.json()) == (200, {"status": "degraded", "database": "ok", "redis": "down"})


def test_it_answers_503_when_the_database_is_down(client_of_production, transactional_db):
    connection.close()
    port = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = _closed_port()
    try:
        response = client_of_production.get("/healthz/")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert (response.status_code, response.json()) == (503, {"status": "down", "database": "down", "redis": "ok"})
