"""Shared by the benchmarks that need a MongoDB: run the workload on a given URI or on a
fresh local dev server in its own process."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
LOCAL_SERVER = "local dev server (devservers.mongo) in a separate process"


def on_server(uri: str | None, measure: Callable[[str], T]) -> tuple[T, str]:
    """``measure(uri)`` on ``uri`` or on a throw-away local server; also says which it was."""
    return on_server_process(uri, lambda uri, _pid: measure(uri))


def on_server_process(uri: str | None, measure: Callable[[str, int | None], T]
                      ) -> tuple[T, str]:
    """:func:`on_server` for a ``measure(uri, pid)`` that also reads the server's CPU time:
    ``pid`` is the local server's process id, None for a server given by ``--uri``."""
    if uri:
        return measure(uri, None), "given by --uri"
    from devservers.mongo.process import LocalMongoProcess

    with tempfile.TemporaryDirectory() as tmp, LocalMongoProcess(data_dir=tmp) as server:
        return measure(server.uri, server.proc.pid), LOCAL_SERVER


def process_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds of process ``pid``'s live threads so far (Linux ``schedstat``, ns
    resolution; ``/proc/<pid>/stat`` counts in 10 ms ticks), else None."""
    if pid is None:
        return None
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9
