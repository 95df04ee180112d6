"""Shared fixtures.

Integration tests talk to a real server over the MongoDB wire protocol with
real pymongo. By default that is the project's local development server
(``devservers.mongo``) started once per test session in a separate process on
a free port. Set ``MONGO_TEST_URI`` to run the same tests against a real
MongoDB instead (e.g. ``MONGO_TEST_URI=mongodb://localhost:27017``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from collections.abc import Iterator

import pymongo
import pytest


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = os.environ.get("MONGO_TEST_URI")
    if uri:
        yield uri
        return
    from devservers.mongo.process import LocalMongoProcess

    with LocalMongoProcess(data_dir=tmp_path_factory.mktemp("mongo-data")) as server:
        yield server.uri


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[pymongo.MongoClient]:
    client: pymongo.MongoClient = pymongo.MongoClient(
        mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture
def mongo_db(mongo_client: pymongo.MongoClient) -> Iterator[pymongo.database.Database]:
    """A fresh database per test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    mongo_client.drop_database(name)


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """Entry points called in-process (``main(argv)``) configure the root logger; undo it
    so no test leaves a handler on a stream pytest has closed, or a level others depend on."""
    root = logging.getLogger()
    handlers, filters, level = list(root.handlers), list(root.filters), root.level
    yield
    root.handlers[:] = handlers
    root.filters[:] = filters
    root.setLevel(level)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse two tests with one node id: pytest-xdist (``make test``) keeps one test per node
    id, so the others would silently never run (schemathesis' ``schema.parametrize`` did that)."""
    counts = Counter(item.nodeid for item in items)
    repeated = sorted(nodeid for nodeid, n in counts.items() if n > 1)
    if repeated:
        raise pytest.UsageError(f"tests sharing a node id (give them distinct ids): {repeated}")
