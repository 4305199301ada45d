"""A request that meets PostgreSQL or Redis going away answers 503 with Retry-After (JSON under
/api/, a page elsewhere) and logs one warning: never a 500 and a traceback per request."""
import logging

import pytest
from django.db import OperationalError
from kombu.exceptions import OperationalError as BrokerError

pytestmark = pytest.mark.django_db


@pytest.fixture
def outage(monkeypatch):
    def fail(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("onboarding.selectors.product_get", fail)


def test_the_api_answers_503_with_retry_after_and_no_error_is_logged(api, member, outage, caplog):
    with caplog.at_level(logging.WARNING):
        response = api(member).get("/api/v1/products/customer-churn/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "unavailable" in response.json()["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("answered 503" in r.getMessage() for r in caplog.records)


def test_a_page_answers_503_with_retry_after(client, member, outage):
    client.force_login(member)
    response = client.get("/products/customer-churn/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"Try again in a moment" in response.content


def test_the_broker_going_away_under_a_write_is_a_503_too(api, member, monkeypatch):
    def fail(*args, **kwargs):
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("onboarding.selectors.product_get", fail)
    assert api(member).get("/api/v1/products/customer-churn/").status_code == 503


def test_any_other_error_is_still_a_500(api, member, monkeypatch):
    def fail(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("onboarding.selectors.product_get", fail)
    client = api(member)
    client.raise_request_exception = False
    assert client.get("/api/v1/products/customer-churn/").status_code == 500

