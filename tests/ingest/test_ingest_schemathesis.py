"""Schema-driven property test: schemathesis generates requests from the API's own OpenAPI
schema and sends them to the live server; no answer may be a 5xx.

One pytest test per API operation, each with its own id (``POST /v1/signals``, ...), rather
than schemathesis' ``schema.parametrize()``: that gives every operation the same node id, and
pytest-xdist (``make test``) keeps only one test per node id, so two of the three operations
were never sent. schemathesis is pinned in requirements.lock: a missing install fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from ingest_helpers import Ingest, auth, start_ingest

from signal_export.ingest.app import openapi_document

schema = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = {op.label: op for op in (result.ok() for result in schema.get_all_operations())}


@pytest.fixture(scope="module")
def live(mongo_client) -> Iterator[Ingest]:
    name = f"st_{uuid.uuid4().hex[:10]}"
    server, ingest = start_ingest(mongo_client[name], max_body_bytes=256 * 1024)
    yield ingest
    ingest.client.close()
    server.stop()
    mongo_client.drop_database(name)


def test_every_documented_operation_is_generated() -> None:
    documented = {f"{method.upper()} {path}" for path, methods in
                  openapi_document()["paths"].items() for method in methods}
    assert set(OPERATIONS) == documented and len(documented) >= 3


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_generated_request_gets_a_5xx(label: str, live: Ingest) -> None:
    @given(case=OPERATIONS[label].as_strategy())
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        response = case.call(base_url=live.url, headers=auth())
        assert response.status_code < 500, (case.method, case.path, response.text)

    check()
