"""A tiny local stand-in of Freqtrade's REST API (``/api/v1/...``) for the monitor's unit tests.

Serves whatever the test puts into ``state`` (trades, balance, logs, bot state)
with HTTP basic auth, shaped like Freqtrade 2026.9's replies. The one test
against a real ``freqtrade trade --dry-run`` is reported separately.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

USER, PASSWORD = "ops", "ft-pass-123456"


def new_state() -> dict[str, Any]:
    return {"state": "running", "trades": [], "balance": {"currencies": [
        {"currency": "USDT", "free": 1000.0, "balance": 1000.0, "used": 0.0}], "stake": "USDT"},
        "logs": [], "locks": [], "max_open_trades": 3}


@contextmanager
def fake_freqtrade(state: dict[str, Any]) -> Iterator[str]:
    """``url`` of a server answering from ``state`` (mutable while it runs)."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            endpoint = url.path.removeprefix("/api/v1/")
            if endpoint == "ping":
                return self._reply(200, {"status": "pong"})
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self._reply(401, {"detail": "Unauthorized"})
            trades = state["trades"]
            if endpoint == "show_config":
                return self._reply(200, {"state": state["state"], "strategy":
                                         "ExternalSignalStrategy", "timeframe": "1m",
                                         "max_open_trades": state.get("max_open_trades", 3)})
            if endpoint == "status":
                return self._reply(200, [t for t in trades if t["is_open"]])
            if endpoint == "trades":  # as Freqtrade: closed trades only (open ones: /status)
                closed = [t for t in trades if not t["is_open"]]
                limit, offset = int(query.get("limit", 500)), int(query.get("offset", 0))
                page = closed[offset:offset + limit]
                return self._reply(200, {"trades": page, "trades_count": len(page),
                                         "offset": offset, "total_trades": len(closed)})
            if endpoint == "locks":
                locks = state.get("locks", [])
                return self._reply(200, {"lock_count": len(locks), "locks": locks})
            if endpoint == "balance":
                return self._reply(200, state["balance"])
            if endpoint == "logs":
                return self._reply(200, {"log_count": len(state["logs"]), "logs": state["logs"]})
            return self._reply(404, {"detail": "Not Found"})

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
