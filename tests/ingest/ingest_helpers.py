"""Helpers for the ingest API tests: producers and their tokens, and a real uvicorn server on
127.0.0.1 (free port) serving the app against a MongoDB database, with an httpx client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pymongo.database import Database

from signal_export.contract import EXPORT_RUNS_COLLECTION, SIGNALS_COLLECTION
from signal_export.ingest.app import create_app
from signal_export.ingest.server import BackgroundServer
from signal_export.ingest.service import SignalSink
from signal_export.ingest.tokens import Producer, RateLimit, TokenRegistry, hash_token
from signal_export.store import ensure_runs_indexes, ensure_signal_indexes

#: name -> (token, strategy_ids, own rate limit)
PRODUCERS: dict[str, tuple[str, tuple[str, ...], RateLimit | None]] = {
    "desk": ("tok-desk-0123456789abcdef", ("tv_trend", "alpha"), None),
    "other": ("tok-other-0123456789abcdef", ("beta",), None),
    "slow": ("tok-slow-0123456789abcdef", ("gamma",), RateLimit(per_second=0.001, burst=2)),
}
TOKENS = {name: token for name, (token, _, _) in PRODUCERS.items()}
MAX_BODY_BYTES = 64 * 1024


def registry() -> TokenRegistry:
    return TokenRegistry(Producer(name, hash_token(token), frozenset(ids), limit)
                         for name, (token, ids, limit) in PRODUCERS.items())


def auth(name: str = "desk") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@dataclass
class WallClock:
    """A settable receive time for the app (``make_ingest(wall_clock=WallClock(t))``): alert
    times are judged against it, so a test can post an alert "as received" at ``now``."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Ingest:
    url: str
    db: Database
    client: httpx.Client

    @property
    def signals(self):  # noqa: ANN201
        return self.db[SIGNALS_COLLECTION]

    @property
    def runs(self):  # noqa: ANN201
        return self.db[EXPORT_RUNS_COLLECTION]

    def post(self, body: Any, producer: str | None = "desk", **kwargs: Any) -> httpx.Response:
        headers = {**(auth(producer) if producer else {}), **kwargs.pop("headers", {})}
        return self.client.post("/v1/signals", json=body, headers=headers, **kwargs)


def start_ingest(db: Database, **app_kwargs: Any) -> tuple[BackgroundServer, Ingest]:
    """``app_kwargs``: :func:`create_app`'s, plus ``server_limits`` (a ``ServerLimits``),
    ``grace_seconds``, ``max_items`` and ``quotes`` (the sink's)."""
    coll, runs = db[SIGNALS_COLLECTION], db[EXPORT_RUNS_COLLECTION]
    ensure_signal_indexes(coll)
    ensure_runs_indexes(runs)
    sink = SignalSink(coll, runs, grace_seconds=app_kwargs.pop("grace_seconds", 5.0),
                      max_items=app_kwargs.pop("max_items", 600))
    if "quotes" in app_kwargs:
        sink.quotes = app_kwargs.pop("quotes")
    app_kwargs.setdefault("max_body_bytes", MAX_BODY_BYTES)
    app_kwargs.setdefault("rate_limit", RateLimit(per_second=10_000.0, burst=10_000))
    app_kwargs.setdefault("auth_failure_limit", RateLimit(per_second=10_000.0, burst=10_000))
    limits = app_kwargs.pop("server_limits", None)
    server = BackgroundServer(create_app(sink, registry(), **app_kwargs), limits=limits).start()
    return server, Ingest(server.url, db, httpx.Client(base_url=server.url, timeout=30))
