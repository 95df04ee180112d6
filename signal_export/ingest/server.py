"""Running the ingest app under uvicorn: in the foreground (the CLI) or in a background thread.

:class:`BackgroundServer` serves an app on a socket it binds itself (port 0 ->
a free port, no race between picking and binding), for embedding, tests and
benchmarks: a real uvicorn server over real TCP, stopped cleanly on exit.

Connection limits (:class:`ServerLimits`), enforced at the HTTP layer:

* **header timeout**: a connection must deliver a complete request head within
  ``header_timeout_s`` of being opened (or of the first byte of its next request);
  otherwise it is closed. uvicorn has no such setting (an idle or slowly-trickling
  connection stays open for ever), so :class:`HeaderDeadlineH11Protocol` adds it to
  uvicorn's h11 protocol;
* **keep-alive**: an idle connection between requests is closed after
  ``keep_alive_s`` (uvicorn's ``timeout_keep_alive``);
* **connection cap**: with ``max_connections`` connections open (or requests in
  progress) a new request is answered 503 (uvicorn's ``limit_concurrency``);
* **request head size**: at most ``max_header_bytes`` (uvicorn's
  ``h11_max_incomplete_event_size``; larger -> 400 and closed);
* **proxy headers**: ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are ignored unless
  ``forwarded_allow_ips`` names the proxies to trust (uvicorn's default trusts them
  from 127.0.0.1, so any local process could choose the audited client address).

The body deadline (a body trickled in slowly) is the app's
(:class:`signal_export.ingest.app.EdgeMiddleware`), as it needs the ASGI ``receive``.

Not for: building the app (:mod:`signal_export.ingest.app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

LOG_LEVEL = "warning"


@dataclass(frozen=True)
class ServerLimits:
    """Connection limits of the HTTP server (see the module docstring)."""

    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 100
    max_header_bytes: int = 16 * 1024
    forwarded_allow_ips: str | None = None  # None / "": proxy headers are not trusted

    @property
    def proxy_headers(self) -> bool:
        return bool(self.forwarded_allow_ips and self.forwarded_allow_ips.strip())


class HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for the request head.

    The timer starts when the connection is made, or when the first byte arrives while no
    request is in progress (the next request on a kept-alive connection, or the rest of a
    body the app refused without reading), and stops once a request head is complete.
    When it fires, the connection is closed. Subclassed per server with the timeout set
    (:func:`header_deadline_protocol`).
    """

    header_timeout_s: float = ServerLimits.header_timeout_s

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _awaiting_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s,
                                                      self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._awaiting_request() and not self.transport.is_closing():
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_request():
            self._arm_header_timer()
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request head was complete: the app has it now
            self._disarm_header_timer()


def header_deadline_protocol(header_timeout_s: float) -> type[HeaderDeadlineH11Protocol]:
    """The h11 protocol class with this request-head deadline (uvicorn takes a class)."""
    return type("IngestH11Protocol", (HeaderDeadlineH11Protocol,),
                {"header_timeout_s": float(header_timeout_s)})


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket (``port=0``: the OS picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = LOG_LEVEL,
                   access_log: bool = False,
                   limits: ServerLimits | None = None) -> uvicorn.Config:
    """uvicorn settings shared by both ways of running: h11 with the request-head deadline,
    the connection limits, proxy headers trusted only from ``limits.forwarded_allow_ips``."""
    limits = limits or ServerLimits()
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log,
        http=header_deadline_protocol(limits.header_timeout_s), lifespan="off",
        server_header=False, timeout_graceful_shutdown=5,
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]  # a float works
        limit_concurrency=limits.max_connections,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        proxy_headers=limits.proxy_headers,
        forwarded_allow_ips=limits.forwarded_allow_ips if limits.proxy_headers else "")


def serve(app: FastAPI, host: str, port: int, log_level: str = "info",
          access_log: bool = True, limits: ServerLimits | None = None) -> None:
    """Serve in the foreground until SIGINT/SIGTERM."""
    uvicorn.Server(uvicorn_config(app, host, port, log_level, access_log, limits)).run()


class BackgroundServer:
    """``with BackgroundServer(app) as srv: httpx.get(srv.url + "/v1/health")``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                 start_timeout_s: float = 20.0, limits: ServerLimits | None = None) -> None:
        self._sock = bind_socket(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self.limits = limits or ServerLimits()
        self._server = uvicorn.Server(uvicorn_config(app, self.host, self.port,
                                                     limits=self.limits))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"ingest-uvicorn-{self.port}", daemon=True)
        self._start_timeout_s = start_timeout_s

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
