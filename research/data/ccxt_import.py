"""Importing exchange OHLCV through ccxt into the market store.

``import_ohlcv`` pages ``fetch_ohlcv`` with ``since``/``limit``, lets ccxt
throttle to the exchange's ``rateLimit`` (``enableRateLimit``), retries rate
limit and network errors with exponential backoff, resumes each symbol after
its last stored bar, stops at the last *closed* bar (by the exchange's clock)
and upserts idempotently, so a re-run adds nothing. Holes in what the exchange
returns are reported as :class:`Gap` rows and never filled. Not for live
streaming or order placement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ccxt
import numpy as np
import pandas as pd
from pymongo.database import Database
from tqdm import tqdm

from signal_export.contract import ContractError, timeframe_seconds, to_pair, to_symbol
from signal_export.retry import RetryPolicy, call_with_retries

from .market_store import (
    DEFAULT_BATCH_SIZE,
    MarketStore,
    UpsertResult,
    as_store,
    check_stored_timeframe,
    last_stored_bar,
    upsert_candles,
)

log = logging.getLogger(__name__)

RETRYABLE = (ccxt.RateLimitExceeded, ccxt.NetworkError)


@dataclass(frozen=True)
class Gap:
    """A run of bars missing in the data received: first and last missing open time."""

    symbol: str
    start: pd.Timestamp
    end: pd.Timestamp
    missing_bars: int


@dataclass
class SymbolImport:
    symbol: str
    fetched: int = 0
    result: UpsertResult = field(default_factory=UpsertResult)
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    gaps: list[Gap] = field(default_factory=list)


@dataclass
class ImportReport:
    """What one import run did, per symbol, plus request statistics."""

    timeframe: str
    symbols: dict[str, SymbolImport] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0

    @property
    def result(self) -> UpsertResult:
        total = UpsertResult()
        for item in self.symbols.values():
            total = total + item.result
        return total

    @property
    def gaps(self) -> list[Gap]:
        return [g for item in self.symbols.values() for g in item.gaps]

    def gap_frame(self) -> pd.DataFrame:
        """The gap report as a table: symbol, from, to, missing_bars."""
        rows = [(g.symbol, g.start, g.end, g.missing_bars) for g in self.gaps]
        return pd.DataFrame(rows, columns=["symbol", "from", "to", "missing_bars"])


def find_gaps(symbol: str, opens_ms: np.ndarray, tf_ms: int,
              previous_ms: int | None = None) -> list[Gap]:
    """Gaps between consecutive bar open times (and after ``previous_ms``, if given)."""
    opens = np.asarray(opens_ms, dtype=np.int64)
    if previous_ms is not None:
        opens = np.concatenate([[previous_ms], opens])
    steps = np.diff(opens)
    where = np.flatnonzero(steps > tf_ms)
    return [
        Gap(symbol, pd.Timestamp(int(opens[i]) + tf_ms, unit="ms", tz="UTC"),
            pd.Timestamp(int(opens[i + 1]) - tf_ms, unit="ms", tz="UTC"),
            int(steps[i] // tf_ms) - 1)
        for i in where
    ]


class _Caller:
    """Calls ccxt through the project's retry helper: backoff on rate-limit/network errors."""

    def __init__(self, max_retries: int, backoff_s: float, sleep: Callable[[float], None],
                 report: ImportReport) -> None:
        self.policy = RetryPolicy(max_retries=max_retries, base_s=backoff_s, max_s=60.0)
        self.sleep, self.report = sleep, report

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def attempt() -> Any:
            self.report.requests += 1
            return fn(*args, **kwargs)

        def count(_attempt: int, _delay: float) -> None:
            self.report.retries += 1

        return call_with_retries(attempt, self.policy, transient=is_transient_ccxt,
                                 what=f"ccxt {getattr(fn, '__name__', fn)}", on_retry=count,
                                 sleep=self.sleep)


def is_transient_ccxt(exc: BaseException) -> bool:
    """Rate limits and network errors are worth another try; anything else is not."""
    return isinstance(exc, RETRYABLE)


def _check_inputs(exchange: ccxt.Exchange, pairs: list[str], timeframe: str) -> None:
    check_stored_timeframe(timeframe)
    if exchange.timeframes and timeframe not in exchange.timeframes:
        raise ContractError(f"timeframe {timeframe!r} is not offered by {exchange.id} "
                            f"(offered: {', '.join(exchange.timeframes)})")
    unknown = [p for p in pairs if p not in exchange.markets]
    if unknown:
        raise ContractError(f"unknown symbol(s) on {exchange.id}: {', '.join(unknown)}")


def _to_frame(rows: list[list[float]], symbol: str) -> pd.DataFrame:
    data = np.asarray(rows, dtype="float64").reshape(-1, 6)
    return pd.DataFrame({
        "datetime": pd.to_datetime(data[:, 0].astype(np.int64), unit="ms", utc=True)
        .astype("datetime64[ms, UTC]"),
        "symbol": symbol,
        "open": data[:, 1], "high": data[:, 2], "low": data[:, 3], "close": data[:, 4],
        "volume": data[:, 5],
    })


def _ms(value: pd.Timestamp | str) -> int:
    return int(pd.Timestamp(value).value // 1_000_000)


def _resume_point(store: MarketStore, symbol: str, timeframe: str,
                  since: pd.Timestamp | None, tf_ms: int) -> tuple[int, int | None]:
    """(first bar open to fetch, newest stored bar open or None), in ms."""
    first = 0 if since is None else -(-_ms(since) // tf_ms) * tf_ms
    last = last_stored_bar(store, symbol, timeframe)
    if last is None:
        return first, None
    return max(first, _ms(last) + tf_ms), _ms(last)


def import_ohlcv(
    exchange: ccxt.Exchange,
    symbols: Iterable[str],
    timeframe: str,
    *,
    db: MarketStore | Database,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    limit: int = 1000,
    max_retries: int = 6,
    backoff_s: float = 1.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> ImportReport:
    """Download ``timeframe`` bars (``1m`` or ``1d``) of ``symbols`` into the store.

    Starts after the newest stored bar of each symbol (or at ``since``, or at
    the exchange's first bar), ends at ``until`` or the last closed bar.
    Turns on ``exchange.enableRateLimit``; ``sleep`` is the backoff's sleeper.
    """
    store = as_store(db)
    exchange.enableRateLimit = True  # ccxt then spaces requests by exchange.rateLimit ms
    report = ImportReport(timeframe)
    call = _Caller(max_retries, backoff_s, sleep, report)
    names = list(dict.fromkeys(to_symbol(s) for s in symbols))
    pairs = {s: to_pair(s) for s in names}
    call(exchange.load_markets)
    _check_inputs(exchange, list(pairs.values()), timeframe)
    tf_ms = timeframe_seconds(timeframe) * 1000
    now_ms = call(exchange.fetch_time) if exchange.has.get("fetchTime") else exchange.milliseconds()
    end_open = now_ms - now_ms % tf_ms - tf_ms  # last closed bar
    if until is not None:
        end_open = min(end_open, _ms(until) // tf_ms * tf_ms)
    store.ensure_indexes()
    starts = {s: _resume_point(store, s, timeframe, since, tf_ms) for s in names}
    total = sum(max(0, (end_open - s) // tf_ms + 1) for s, _ in starts.values() if s > 0)
    with tqdm(total=total or None, unit="bar", desc=f"ohlcv {timeframe}",
              disable=not progress) as bar:
        for symbol in names:
            cursor, previous = starts[symbol]
            item = report.symbols.setdefault(symbol, SymbolImport(symbol))
            while cursor <= end_open:
                rows = call(exchange.fetch_ohlcv, pairs[symbol], timeframe, since=cursor,
                            limit=limit)
                rows = [r for r in rows if cursor <= r[0] <= end_open]
                if not rows:
                    if previous is None:
                        break  # nothing at or after the cursor
                    cursor += limit * tf_ms  # maybe a hole longer than a page: look further
                    continue
                frame = _to_frame(rows, symbol)
                opens = np.asarray([r[0] for r in rows], dtype=np.int64)
                item.gaps += find_gaps(symbol, opens, tf_ms, previous)
                item.result = item.result + upsert_candles(frame, store, timeframe,
                                                           batch_size=batch_size,
                                                           ensure_indexes=False)
                item.fetched += len(rows)
                if item.first is None:
                    item.first = frame["datetime"].iloc[0]
                item.last = frame["datetime"].iloc[-1]
                previous, cursor = int(opens[-1]), int(opens[-1]) + tf_ms
                bar.update(len(rows))
            for gap in item.gaps:
                log.warning("gap in %s %s: %s .. %s (%d bars missing)", symbol, timeframe,
                            gap.start, gap.end, gap.missing_bars,
                            extra={"symbol": symbol, "missing_bars": gap.missing_bars})
    return report
