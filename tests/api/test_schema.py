"""The API against its own OpenAPI schema (schemathesis, in-process over WSGI): generated requests, valid
(positive) and invalid (negative), for every operation as an admin. No response is a 5xx, every response
matches the schema (status code declared, body valid, content type), valid requests are not refused
with a 400 and invalid ones are not accepted."""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.conftest import make_user

EXAMPLES = 15  # generated requests per operation and mode
# Not checked, and why. Every operation: "API accepts invalid authentication" (the token sent is valid: ours).
UNCHECKED = {
    # The schema says "a file"; only a CSV is one the import can read, so a generated PNG is rightly a 400.
    "POST /api/imports/": [positive_data_acceptance],
    # A reassignment to a category id that does not exist is a field error (400), as any other bad field.
    "POST /api/flags/{id}/decide/": [positive_data_acceptance],
}


@pytest.fixture
def api_schema(catalog, admin_token):
    """The schema, served by the real WSGI application. As Django's test client does, requests do not
    close the connection that holds the test's transaction."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.wsgi import application

    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application,
                                            headers={"Authorization": f"Token {admin_token}"})
    schema.config.generation.update(allow_x00=False)  # PostgreSQL text cannot hold NUL: refused by design
    yield schema
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)



@pytest.fixture
def admin_token(db):
    from rest_framework.authtoken.models import Token

    return Token.objects.create(user=make_user("ada", "admin", "admin-pass-123")).key


def test_every_operation_answers_as_its_schema_says(api_schema, admin_token):
    headers = {"Authorization": f"Token {admin_token}"}
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation, mode in itertools.product(operations, [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            case.headers = {**(case.headers or {}), **headers}  # the admin's token, not a generated one
            case.call_and_validate(excluded_checks=[ignored_auth, *UNCHECKED.get(operation.label, [])])

        try:
            check()
        except (Exception, BaseExceptionGroup) as error:  # every operation's failure listed, not the first alone
            failures.append(f"{operation.label} ({mode.value}): {str(error)[:1500]}")
    assert len(operations) > 20
    assert not failures, "\n\n".join(failures)


def test_the_values_the_fuzzer_found_are_refused_and_the_schema_says_so(catalog, admin_user):
    """The cases of issue 17 (defect 11), each by name."""
    from drf_spectacular.generators import SchemaGenerator

    from tests.api.conftest import client_for

    client = client_for(admin_user)
    assert client.get("/api/categories/?depth=-1.17e-38").status_code == 400
    assert client.get("/api/runs/?is_active=-9999999999999").status_code == 400
    assert client.get("/api/flags/?flavor=").status_code == 400
    assert client.get("/api/categories/?page=0").status_code == 404  # no page 0: minimum 1 in the schema
    assert client.post("/api/semantic-ids/assign/", {"name": ""}).status_code == 400
    assert client.get("/api/flags/1.5/").status_code == 404 and client.get("/api/flags/1.5/").json()

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    assert components["Flag"]["properties"]["claimed_by"]["nullable"] is True
    assert components["Run"]["properties"]["created_by"]["nullable"] is True
    assert components["AssignRequest"]["properties"]["name"]["minLength"] == 1
    page = next(p for p in schema["paths"]["/api/categories/"]["get"]["parameters"] if p["name"] == "page")
    assert page["schema"]["minimum"] == 1
    for operation in (schema["paths"]["/api/flags/{id}/decide/"]["post"], schema["paths"]["/api/flags/"]["get"]):
        assert {"400", "401", "403", "404", "503"} <= set(operation["responses"])
