"""What the stand-in exchange "sees" at a moment: candles, last price, book.

Wraps a :class:`research.data.synthetic.SyntheticMarket` and a clock (real or
frozen) and answers the questions the Binance endpoints ask, with Binance's
semantics: klines only up to the bar in progress (which is partial), prices
held constant within a minute. Pure data logic; no HTTP here (see ``app``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from research.data.synthetic import (
    ORIGIN,
    SyntheticMarket,
    empty_ohlcv_frame,
    generate_symbol_ohlcv,
    symbol_spec,
)
from signal_export.contract import ensure_utc, timeframe_seconds

MINUTE_MS = 60_000
MAX_KLINES = 1000

#: Binance interval names the stand-in serves (weekly/monthly bars are not served).
INTERVALS: tuple[str, ...] = (
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d",
)

Clock = Callable[[], datetime]


def _ms(ts: pd.Timestamp) -> int:
    return ts.value // 1_000_000


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz=UTC)


class MarketView:
    """Candles and quotes of a synthetic market as of ``clock()``."""

    def __init__(self, market: SyntheticMarket, clock: Clock) -> None:
        self.market = market
        self.clock = clock
        self._recent = lru_cache(maxsize=512)(self._recent_minutes)

    def now_ms(self) -> int:
        return _ms(ensure_utc(self.clock(), "now"))

    # --- candles ---------------------------------------------------------

    def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> pd.DataFrame:
        """Bars by open time in [start, end] (inclusive, as Binance), at most ``limit``.

        Without ``start_ms`` the newest ``limit`` bars up to ``end_ms`` are
        returned. The bar in progress is included and aggregates only the
        minutes that have begun.
        """
        tf_ms = timeframe_seconds(interval) * 1000
        now = self.now_ms()
        current_open = now - now % tf_ms
        last_open = current_open if end_ms is None else min(end_ms - end_ms % tf_ms, current_open)
        origin = _ms(ORIGIN)
        if start_ms is not None:
            first_open = max(-(-start_ms // tf_ms) * tf_ms, -(-origin // tf_ms) * tf_ms)
            frame = self._forward(symbol, interval, tf_ms, first_open, last_open, limit)
        else:
            frame = self._backward(symbol, interval, tf_ms, last_open, limit, origin)
        if len(frame) and _ms(frame["datetime"].iloc[-1]) == current_open and tf_ms > MINUTE_MS:
            frame = pd.concat([frame.iloc[:-1], self._partial_bar(symbol, current_open, now)])
        return frame.reset_index(drop=True)

    def _forward(self, symbol, interval, tf_ms, first_open, last_open, limit) -> pd.DataFrame:
        parts, count, cursor = [], 0, first_open
        while count < limit and cursor <= last_open:
            stop = min(cursor + (limit - count + 16) * tf_ms, last_open + tf_ms)
            part = generate_symbol_ohlcv(self.market, symbol, _ts(cursor), _ts(stop), interval)
            parts.append(part.iloc[: limit - count])
            count += len(parts[-1])
            cursor = stop
        return pd.concat(parts) if parts else empty_ohlcv_frame()

    def _backward(self, symbol, interval, tf_ms, last_open, limit, origin) -> pd.DataFrame:
        parts, count, stop = [], 0, last_open + tf_ms
        while count < limit and stop > origin:
            start = max(stop - (limit - count + 16) * tf_ms, origin)
            part = generate_symbol_ohlcv(self.market, symbol, _ts(start), _ts(stop), interval)
            parts.insert(0, part.iloc[max(len(part) - (limit - count), 0):])
            count += len(parts[0])
            stop = start
        return pd.concat(parts) if parts else empty_ohlcv_frame()

    def _partial_bar(self, symbol: str, open_ms: int, now_ms: int) -> pd.DataFrame:
        minutes = generate_symbol_ohlcv(
            self.market, symbol, _ts(open_ms), _ts(now_ms - now_ms % MINUTE_MS + MINUTE_MS), "1m"
        )
        if minutes.empty:
            return minutes
        return pd.DataFrame(
            {
                "datetime": pd.Series([_ts(open_ms)], dtype="datetime64[ms, UTC]"),
                "symbol": [symbol],
                "open": [minutes["open"].iloc[0]],
                "high": [minutes["high"].max()],
                "low": [minutes["low"].min()],
                "close": [minutes["close"].iloc[-1]],
                "volume": [round(minutes["volume"].sum(), 8)],
            }
        )

    # --- quotes (constant within a minute) --------------------------------

    def _recent_minutes(self, symbol: str, minute_ms: int) -> pd.DataFrame:
        return generate_symbol_ohlcv(
            self.market, symbol, _ts(minute_ms - 1440 * MINUTE_MS), _ts(minute_ms + MINUTE_MS), "1m"
        )

    def last_day(self, symbol: str) -> pd.DataFrame:
        """The 1m bars of the rolling 24 hours ending with the minute in progress."""
        now = self.now_ms()
        return self._recent(symbol, now - now % MINUTE_MS)

    def last_price(self, symbol: str) -> float:
        day = self.last_day(symbol)
        if len(day):
            return float(day["close"].iloc[-1])
        return symbol_spec(self.market, symbol).start_price

    def book(self, symbol: str, depth: int) -> tuple[np.ndarray, ...]:
        """Bid/ask prices and quantities; best bid = last price, spread = one tick."""
        spec = symbol_spec(self.market, symbol)
        tick, price = spec.tick_size, self.last_price(symbol)
        levels = np.arange(depth)
        bids = np.round(price - levels * tick, spec.price_decimals)
        asks = np.round(price + (levels + 1) * tick, spec.price_decimals)
        qty = np.round(spec.minute_volume * (1.0 + 0.5 * levels), spec.quantity_decimals)
        keep = bids > 0
        return bids[keep], qty[keep], asks, qty
