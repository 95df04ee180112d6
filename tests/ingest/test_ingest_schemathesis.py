"""Schema-driven property test: schemathesis generates requests from the API's own OpenAPI
schema and sends them to the live server; no answer may be a 5xx.

Needs ``schemathesis`` (pin: schemathesis==4.32.5), which is not in requirements.lock yet: until
it is installed this module is skipped with that reason, and test_ingest_fuzz.py (hypothesis,
random and mutated bodies against the same live server) carries the "never a 5xx" property.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis  # pinned in requirements.lock: a missing install must fail, not skip
from hypothesis import HealthCheck, settings
from ingest_helpers import Ingest, auth, start_ingest

from signal_export.ingest.app import openapi_document  # noqa: E402

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def live(mongo_client) -> Iterator[Ingest]:
    name = f"st_{uuid.uuid4().hex[:10]}"
    server, ingest = start_ingest(mongo_client[name], max_body_bytes=256 * 1024)
    yield ingest
    ingest.client.close()
    server.stop()
    mongo_client.drop_database(name)


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_5xx(case, live) -> None:
    response = case.call(base_url=live.url, headers=auth())
    assert response.status_code < 500, (case.method, case.path, response.text)
