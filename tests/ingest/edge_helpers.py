"""Raw-socket helpers for the ingest edge tests: a real uvicorn server (in a thread) serving the
app without MongoDB (for answers that never reach the store), counting the body bytes the app
read, and HTTP/1.1 spoken by hand so that timing, half-sent bodies and headers are exact."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ingest_helpers import registry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signal_export.ingest.app import create_app
from signal_export.ingest.server import BackgroundServer, ServerLimits
from signal_export.ingest.service import SignalSink
from signal_export.ingest.tokens import RateLimit


@dataclass
class CountingApp:
    """Wraps an ASGI app and counts the request-body bytes it received through ``receive``."""

    app: ASGIApp
    body_bytes: int = 0
    requests: int = 0
    largest: int = 0
    _per_request: dict[int, int] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.requests += 1
        seen = [0]

        async def counted() -> Message:
            message = await receive()
            n = len(message.get("body", b""))
            self.body_bytes += n
            seen[0] += n
            self.largest = max(self.largest, seen[0])
            return message

        await self.app(scope, counted, send)


@contextmanager
def served(limits: ServerLimits | None = None,
           **app_kwargs: Any) -> Iterator[tuple[BackgroundServer, CountingApp]]:
    """A server whose app has no MongoDB: only answers that refuse before storing work."""
    sink = SignalSink(collection=None, runs_collection=None)  # type: ignore[arg-type]
    app_kwargs.setdefault("rate_limit", RateLimit(per_second=10_000.0, burst=10_000))
    counting = CountingApp(create_app(sink, registry(), **app_kwargs))
    with BackgroundServer(counting, limits=limits) as server:  # type: ignore[arg-type]
        yield server, counting


def connect(server_or_url: Any, timeout: float = 10.0) -> socket.socket:
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.url
    host, port = url.split("//")[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def read_answer(sock: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a complete answer: {data[:300]!r}")
        data += chunk
    raw_head, _, rest = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    size = int(headers.get("content-length", "0"))
    while len(rest) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(int(lines[0].split()[1]), headers, rest[:size])


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (reading and discarding), ``inf`` if it
    stays open for ``limit`` seconds."""
    t0 = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - t0 < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
    return math.inf
