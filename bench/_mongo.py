"""Shared by the benchmarks that need a MongoDB: run the workload on a given URI or on a
fresh local dev server in its own process."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
LOCAL_SERVER = "local dev server (devservers.mongo) in a separate process"


def on_server(uri: str | None, measure: Callable[[str], T]) -> tuple[T, str]:
    """``measure(uri)`` on ``uri`` or on a throw-away local server; also says which it was."""
    if uri:
        return measure(uri), "given by --uri"
    from devservers.mongo.process import LocalMongoProcess

    with tempfile.TemporaryDirectory() as tmp, LocalMongoProcess(data_dir=tmp) as server:
        return measure(server.uri), LOCAL_SERVER
