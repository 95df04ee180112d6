"""An auth-enabled local dev server per test module, and clients that log in to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymongo

from devservers.mongo.process import LocalMongoProcess


@contextmanager
def auth_server_at(data: Path, admin: str, password: str) -> Iterator[LocalMongoProcess]:
    with LocalMongoProcess(data, auth=True, admin_user=admin, admin_password=password) as srv:
        yield srv


def client_for(server: LocalMongoProcess, user: str | None = None, pwd: str | None = None,
               source: str = "admin") -> pymongo.MongoClient:
    """A client logged in as ``user`` (unauthenticated without one)."""
    uri = server.client_uri(user, pwd, source) if user else server.uri
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)
