"""Shared by the benchmarks that need a MongoDB: run the workload on a given URI or on a
fresh local dev server in its own process, and write the result section."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
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


def write_section(path: Path, text: str, quick: bool = False) -> None:
    """Print the section; store it for BENCHMARKS.md unless it is a ``--quick`` try-out."""
    print(text)
    if quick:
        print(f"(--quick: {path.name} left as it was)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
