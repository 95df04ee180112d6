"""Running the ingest app under uvicorn: in the foreground (the CLI) or in a background thread.

:class:`BackgroundServer` serves an app on a socket it binds itself (port 0 ->
a free port, no race between picking and binding), for embedding, tests and
benchmarks: a real uvicorn server over real TCP, stopped cleanly on exit.

Not for: building the app (:mod:`signal_export.ingest.app`).
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

LOG_LEVEL = "warning"


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket (``port=0``: the OS picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = LOG_LEVEL,
                   access_log: bool = False) -> uvicorn.Config:
    """uvicorn settings shared by both ways of running (h11, no proxy headers trusted)."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                          http="h11", lifespan="off", server_header=False,
                          timeout_graceful_shutdown=5)


def serve(app: FastAPI, host: str, port: int, log_level: str = "info",
          access_log: bool = True) -> None:
    """Serve in the foreground until SIGINT/SIGTERM."""
    uvicorn.Server(uvicorn_config(app, host, port, log_level, access_log)).run()


class BackgroundServer:
    """``with BackgroundServer(app) as srv: httpx.get(srv.url + "/v1/health")``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                 start_timeout_s: float = 20.0) -> None:
        self._sock = bind_socket(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn_config(app, self.host, self.port))
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
