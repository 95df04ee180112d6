"""A small TCP proxy on 127.0.0.1 that makes a healthy server look slow, flaky or hung.

Reliability tests put :class:`FaultProxy` between a client (pymongo, Freqtrade)
and a local server and then, while traffic flows, add latency to every chunk
forwarded in either direction (``set_latency``), cut every open connection
(``drop_connections``: the client sees a reset mid-request, like a crashed
router), refuse new connections (``refuse``), or stop forwarding while keeping
sockets open (``pause``/``resume``: the client sees timeouts, like a hung
server). One thread per direction per connection; byte streams are passed on
unchanged. It is a DEV TOOL for tests, not a production load balancer, and it
knows nothing about the protocol it carries.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

_CHUNK = 65536


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``target`` with injectable faults; a context manager."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.1)  # the accept loop notices close() promptly
        self.port = self._listener.getsockname()[1]
        self._latency_s = 0.0
        self._refuse = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._closed = threading.Event()
        self.accepted = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy",
                                        daemon=True)

    @classmethod
    def for_uri(cls, uri: str) -> FaultProxy:
        """A proxy for a ``mongodb://host:port/`` URI (single host, no credentials)."""
        hostport = uri.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        host, port = hostport.rsplit(":", 1)
        return cls(host, int(port))

    @property
    def uri(self) -> str:
        """``mongodb://`` URI of the proxy (direct connection: no topology discovery)."""
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    # --- faults -------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every forwarded chunk (both directions) by ``seconds``."""
        self._latency_s = max(0.0, float(seconds))

    def pause(self) -> None:
        """Stop forwarding (sockets stay open): clients wait until their timeouts fire."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def refuse(self, on: bool = True) -> None:
        """Close new connections right after accepting them (while ``on``)."""
        self._refuse = on

    def drop_connections(self) -> int:
        """Reset every open connection now; returns how many were cut."""
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST, not FIN
            with contextlib.suppress(OSError):
                sock.close()
        self.dropped += len(conns) // 2
        return len(conns) // 2

    def heal(self) -> None:
        """Back to a transparent proxy: no latency, forwarding, accepting."""
        self.set_latency(0.0)
        self.refuse(False)
        self.resume()

    # --- plumbing -------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_connections()
        self._thread.join(timeout=2)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self._refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.update((client, upstream))
            self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                data = src.recv(_CHUNK)
                if not data:
                    break
                if self._latency_s:
                    time.sleep(self._latency_s)
                while not self._flowing.wait(0.05):
                    if self._closed.is_set():
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with self._lock:
                    self._conns.discard(sock)
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
