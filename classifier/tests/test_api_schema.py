"""Fuzz the API against its own OpenAPI schema: no server errors, no answer the
schema does not describe. Schemathesis calls the Django WSGI application
in-process, with a real key, the real services and the tiny model."""

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in requirements-dev.txt")

from django.core import signals  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from classifier import services  # noqa: E402
from classifier.api.schema import schema as api_schema  # noqa: E402

pytestmark = pytest.mark.django_db


def application(environ, start_response):
    # Made per request, not at import: the middleware reads the test settings
    # (no HTTPS redirect) when the handler is made.
    return get_wsgi_application()(environ, start_response)


schema = schemathesis.openapi.from_dict(api_schema("/api/v1/"))
schema.app = application

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def _keep_test_connection():
    # Django's test client does the same: the WSGI handler would otherwise
    # close the test's database connection (and its transaction) at the end
    # of each request, which Postgres then refuses to reuse.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def auth_header(_keep_test_connection, user, make_prediction, settings):
    settings.CLASSIFIER_UPLOAD_RATE = "off"  # the fuzzer uploads faster than any person
    # Something to list, read and give feedback on (ids 1.. are what it tries).
    for _ in range(3):
        make_prediction(user)
    _token, key = services.api_token_create(user=user, name="fuzzer")
    return {"Authorization": f"Bearer {key}"}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_conforms_to_its_schema(case, auth_header):
    case.call_and_validate(headers=auth_header, checks=CHECKS)
