"""Auth-enabled MongoDB fixtures shared by tests/security and tests/deploy.

By default a local dev server (``devservers.mongo``) started with ``--auth``
in its own process; set ``MONGO_TEST_ADMIN_URI`` (a root user's URI) to run
the same tests against a real MongoDB with authorization enabled.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote_plus, urlsplit

import pymongo
import pytest

ADMIN_USER = "root-admin"
ADMIN_PASSWORD = "Adm1n-pw-for-tests-only-9f2c"  # pragma: allowlist secret


@dataclass(frozen=True)
class AuthServer:
    """Where the auth-enabled server listens and how to log in to it."""

    hosts: str  # host:port[,host:port]
    admin_uri: str

    @property
    def bare_uri(self) -> str:
        return f"mongodb://{self.hosts}/"

    def uri(self, user: str, password: str, auth_db: str = "admin") -> str:
        return (f"mongodb://{quote_plus(user)}:{quote_plus(password)}@{self.hosts}/"
                f"?authSource={auth_db}")

    def client(self, uri: str) -> pymongo.MongoClient:
        return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    real = os.environ.get("MONGO_TEST_ADMIN_URI")
    if real:
        yield AuthServer(urlsplit(real).netloc.rsplit("@", 1)[-1], real)
        return
    from devservers.mongo.process import LocalMongoProcess

    data = tmp_path_factory.mktemp("mongo-auth-security")
    with LocalMongoProcess(data, auth=True, admin_user=ADMIN_USER,
                           admin_password=ADMIN_PASSWORD) as server:
        hosts = f"{server.host}:{server.port}"
        yield AuthServer(hosts, server.client_uri(ADMIN_USER, ADMIN_PASSWORD))


@pytest.fixture
def db_names() -> tuple[str, str]:
    """Fresh signals/market database names per test."""
    tag = uuid.uuid4().hex[:8]
    return f"sig_{tag}", f"mkt_{tag}"


@pytest.fixture
def admin_client(auth_server: AuthServer) -> Iterator[pymongo.MongoClient]:
    client = auth_server.client(auth_server.admin_uri)
    yield client
    client.close()
