"""``ExchangeStandIn``: the Binance-compatible HTTP stand-in, run in-process.

Starts the aiohttp app on 127.0.0.1 in a background thread with its own event
loop, so tests and the demo can point ccxt or a Freqtrade subprocess at
``.url``. For a separate process use ``python -m devservers.exchange``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from aiohttp import web

from devservers.exchange.app import RateLimiter, StandInState, build_app
from devservers.exchange.market_view import MarketView
from devservers.exchange.overlay import freqtrade_exchange_overlay
from research.data.synthetic import DEFAULT_SYMBOLS, SyntheticMarket
from signal_export.contract import ensure_utc


class ExchangeStandIn:
    """A local Binance spot REST stand-in serving a synthetic market.

    ``pairs`` (``BTC/USDT`` or ``BINANCE:BTCUSDT``) and ``seed`` define the
    market, or pass ``market`` (a :class:`SyntheticMarket`, the same object the
    research side generates from) to share every knob. ``now``: None follows
    the real clock, a tz-aware datetime freezes it, a callable is asked each
    time. ``rate_limit``: at most that many requests per ``rate_window_s``
    seconds, beyond which it answers HTTP 429 like Binance.
    """

    def __init__(
        self,
        pairs: Iterable[str] = DEFAULT_SYMBOLS,
        seed: int = 7,
        port: int = 0,
        *,
        market: SyntheticMarket | None = None,
        now: datetime | Callable[[], datetime] | None = None,
        rate_limit: int | None = None,
        rate_window_s: float = 60.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.market = market or SyntheticMarket(seed=seed, symbols=tuple(pairs))
        futures = [s for s in self.market.symbols if "." in s]
        if futures:
            raise ValueError(f"the exchange stand-in serves spot pairs only, got {futures}")
        self.host, self.port = host, port
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.set_now(now)
        view = MarketView(self.market, lambda: self._now())
        self.state = StandInState(view, RateLimiter(rate_limit, rate_window_s))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # --- clock -------------------------------------------------------------

    def set_now(self, now: datetime | Callable[[], datetime] | None) -> None:
        """Freeze the clock at ``now``, follow a callable, or (None) the real clock."""
        if now is None:
            self._now = lambda: datetime.now(UTC)
        elif callable(now):
            self._now = now
        else:
            frozen = ensure_utc(pd.Timestamp(now), "now").to_pydatetime()
            self._now = lambda: frozen

    # --- lifecycle ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self):
        """Requests served so far, by path (a Counter)."""
        return self.state.requests

    @property
    def rejected(self):
        """Requests answered 429, by path (a Counter)."""
        return self.state.rejected

    @property
    def request_log(self) -> list[tuple[str, dict[str, str]]]:
        """Every request served so far: (path, query parameters), oldest first."""
        return self.state.request_log

    @property
    def unknown_paths(self) -> list[str]:
        return self.state.unknown_paths

    def overlay(self, futures: bool = False) -> dict[str, Any]:
        """The Freqtrade config overlay pointing ccxt at this stand-in (``futures``: USD-M)."""
        return freqtrade_exchange_overlay(self.url, futures=futures)

    def start(self) -> ExchangeStandIn:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="exchange-standin", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            self._thread = None
            raise RuntimeError(f"exchange stand-in failed to start: {failure[0]}") from failure[0]
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> ExchangeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
