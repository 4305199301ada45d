"""The API fuzzed from its own OpenAPI schema (schemathesis, in-process over WSGI), signed in as a
team member with a token: no answer is a 5xx, and every answer (status, content type, body) is one the schema
declares; operation by operation, then statefully, along the links schemathesis infers from the
schema (a created product's slug into its detail, edit, jobs and runs; a job's id into its page,
cancel, confirm and retry). A fixed seed and a stated number of examples keep it repeatable
and under a minute."""
import json

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from rest_framework.authtoken.models import Token
from schemathesis import checks

from tests.factories import wid_payload

EXAMPLES_PER_OPERATION = 5
SEED = 20261130
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


def _schema():
    """The schema /api/schema/ serves, generated in-process (before any database exists)."""
    document = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(document).include(path_regex=r"^/api/v1/")
    loaded.app = get_wsgi_application()
    return loaded


schema = _schema()


@pytest.fixture
def token(db, api, member, owner):
    assert api(member).post("/api/v1/products/", wid_payload(slug="orders-core"), format="json").status_code == 201
    # As Django's test client does: the WSGI handler would close the test's database connection
    # after each request, and with it the transaction the test runs in.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield Token.objects.create(user=member).key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@hypothesis.seed(SEED)
@hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_schema_says_and_never_5xx(case, token):
    # Aim half the requests at things that exist, so that they get past the 404 to the real checks.
    parameters = case.path_parameters or {}
    if "slug" in parameters and len(str(parameters["slug"])) % 2 == 0:
        parameters["slug"] = "growth-analytics" if case.path.startswith("/api/v1/teams/") else "orders-core"
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)


STATEFUL_EXAMPLES = 20  # sequences
STATEFUL_STEPS = 6  # calls in each


def test_sequences_that_follow_the_schema_from_one_answer_to_the_next_never_5xx(token):
    """Stateful: schemathesis links the operations (a created product's slug into its detail, edit,
    history, submit, jobs...; a created team into its members) and runs chains of real calls."""
    workflow = schema.as_state_machine()
    assert workflow.bundles, "schemathesis found no links between the operations: nothing stateful ran"

    class AsATeamMember(workflow):
        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Token {token}"}}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))

    AsATeamMember.run(settings=hypothesis.settings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, deadline=None, derandomize=True,
        database=None, suppress_health_check=list(HealthCheck)))
