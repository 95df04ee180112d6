"""Writing OHLCV candles into the market collections of SPEC §2.

``crypto_market`` holds 1d bars keyed by ``(symbol, date 'YYYYMMDD')`` and
``crypto_market_1m`` 1m bars keyed by ``(symbol, datetime UTC)``. Writes are
idempotent bulk upserts (unordered ``UpdateOne`` batches): storing the same
candles twice changes nothing, a corrected candle overwrites the stored one.
The unique indexes come from :func:`signal_export.store.ensure_market_indexes`.
Readers live in :mod:`research.data.readers`; fetching from exchanges or
files in ``ccxt_import`` / ``file_import``.

The DB handle: every function takes a :class:`MarketStore` (a pymongo
``Database`` plus the two collection names) or a plain ``Database`` (the
contract's default names). Build one from settings with
:meth:`MarketStore.from_settings`.

Timeframes: only 1m and 1d are *stored*. The other common timeframes (5m, 15m,
30m, 1h, 2h, 4h, 6h, 8h, 12h: any whole number of minutes that divides a day)
are *derived* when read, by resampling the stored 1m bars
(:func:`research.data.readers.get_crypto_bars`), so there is one copy of the
data and a 1h bar can never disagree with its minutes. Writing a derived
timeframe is an error that says so (import 1m instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pymongo import ASCENDING, DESCENDING, MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from signal_export.contract import (
    MARKET_1D_COLLECTION,
    MARKET_1M_COLLECTION,
    OHLCV_FIELDS,
    ContractError,
    timeframe_seconds,
    to_symbol,
)
from signal_export.settings import Settings
from signal_export.store import connect, ensure_market_indexes

#: Timeframes the store holds, and the time field each collection is keyed on.
STORED_TIMEFRAMES = ("1m", "1d")
TIME_FIELD = {"1m": "datetime", "1d": "date"}
#: The common timeframes readers derive from stored 1m bars (any other whole number
#: of minutes dividing a day works too, see :func:`is_derived_timeframe`).
COMMON_DERIVED_TIMEFRAMES = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h")
DEFAULT_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class MarketStore:
    """Where market candles live: a database and the 1d / 1m collection names."""

    db: Database
    daily_collection: str = MARKET_1D_COLLECTION
    minute_collection: str = MARKET_1M_COLLECTION

    @classmethod
    def from_settings(cls, settings: Settings, client: MongoClient | None = None) -> MarketStore:
        """The store named by ``MARKET_*`` settings (connecting if no client is given)."""
        client = client or connect(settings.market_uri, app_name="research-market")
        return cls(client[settings.market_db], settings.market_1d_collection,
                   settings.market_1m_collection)

    def collection(self, timeframe: str) -> Collection:
        check_stored_timeframe(timeframe)
        name = self.minute_collection if timeframe == "1m" else self.daily_collection
        return self.db[name]

    def ensure_indexes(self) -> list[str]:
        """The unique ``{symbol, date}`` / ``{symbol, datetime}`` indexes (idempotent)."""
        settings = Settings(market_1d_collection=self.daily_collection,
                            market_1m_collection=self.minute_collection)
        return ensure_market_indexes(self.db, settings)


def as_store(db: MarketStore | Database) -> MarketStore:
    return db if isinstance(db, MarketStore) else MarketStore(db)


def is_derived_timeframe(timeframe: str) -> bool:
    """True for a timeframe read by resampling stored 1m bars (5m, 15m, 1h, 4h, ...).

    That is a whole number of minutes, more than one, dividing a day, other than 1d.
    Raises :class:`ContractError` for a string that is not a timeframe at all.
    """
    seconds = timeframe_seconds(timeframe)
    return timeframe not in STORED_TIMEFRAMES and seconds % 60 == 0 and seconds < 86400 \
        and 86400 % seconds == 0


def check_stored_timeframe(timeframe: str) -> None:
    if timeframe not in STORED_TIMEFRAMES:
        hint = ""
        try:
            if is_derived_timeframe(timeframe):
                hint = (f"; {timeframe} bars are derived from the stored 1m bars when read "
                        "(get_crypto_bars, or a pipeline timeframe) - store 1m")
        except ContractError:
            hint = " (and it is not a timeframe: use e.g. 1m, 5m, 1h, 4h, 1d)"
        raise ContractError(
            f"timeframe {timeframe!r}: the market store holds only "
            f"{', '.join(STORED_TIMEFRAMES)}{hint}")


def check_readable_timeframe(timeframe: str) -> None:
    """Accept a stored (1m, 1d) or derived (5m .. 12h) timeframe; else a clear error."""
    if timeframe in STORED_TIMEFRAMES:
        return
    if not is_derived_timeframe(timeframe):
        raise ContractError(
            f"timeframe {timeframe!r}: the market store reads 1m and 1d as stored and whole "
            f"minutes dividing a day ({', '.join(COMMON_DERIVED_TIMEFRAMES)}) from 1m")


@dataclass(frozen=True)
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(self.inserted + other.inserted, self.updated + other.updated,
                            self.unchanged + other.unchanged)

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


def validate_candles(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Checked copy: canonical symbols, UTC on-grid open times, finite sane OHLCV.

    Raises :class:`ContractError` naming the column and the first bad row.
    """
    check_stored_timeframe(timeframe)
    missing = [c for c in ("datetime", "symbol", *OHLCV_FIELDS) if c not in frame.columns]
    if missing:
        raise ContractError(f"candles: missing column(s) {missing}")
    out = frame.loc[:, ["datetime", "symbol", *OHLCV_FIELDS]].copy()
    times = out["datetime"]
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        raise ContractError("candles: column 'datetime' must be tz-aware (UTC); got "
                            f"{times.dtype}")
    out["datetime"] = times.dt.tz_convert("UTC").astype("datetime64[ms, UTC]")
    step = pd.Timedelta(minutes=1) if timeframe == "1m" else pd.Timedelta(days=1)
    off_grid = out["datetime"] != out["datetime"].dt.floor(step)
    _fail_first(out, off_grid, "datetime", f"not on the {timeframe} grid (bar open time)")
    mapping = {s: to_symbol(s) for s in pd.unique(out["symbol"])}
    out["symbol"] = out["symbol"].map(mapping)
    for name in OHLCV_FIELDS:
        try:
            out[name] = out[name].astype("float64")
        except (TypeError, ValueError) as exc:
            raise ContractError(f"candles: column {name!r} is not numeric: {exc}") from exc
        _fail_first(out, ~np.isfinite(out[name].to_numpy()), name, "is NaN or infinite")
    for name in ("open", "high", "low", "close"):
        _fail_first(out, out[name] <= 0, name, "is not a positive price")
    _fail_first(out, out["volume"] < 0, "volume", "is negative")
    bad = (out["high"] < out[["open", "close", "low"]].max(axis=1)) | (
        out["low"] > out[["open", "close"]].min(axis=1))
    _fail_first(out, bad, "high/low", "do not bound open and close")
    dupes = out.duplicated(["symbol", "datetime"])
    _fail_first(out, dupes, "datetime", "is duplicated for the symbol")
    return out


def _fail_first(frame: pd.DataFrame, mask: Any, column: str, problem: str) -> None:
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        i = int(np.argmax(mask))
        row = frame.iloc[i]
        raise ContractError(f"candles: {column} {problem} at row {frame.index[i]} "
                            f"(symbol {row['symbol']}, datetime {row['datetime']}); "
                            f"{int(mask.sum())} bad row(s)")


def candle_documents(frame: pd.DataFrame, timeframe: str) -> tuple[list[dict], list[dict]]:
    """(keys, values) documents of validated candles, built column-wise."""
    if timeframe == "1d":
        times = frame["datetime"].dt.strftime("%Y%m%d").tolist()
    else:
        times = list(frame["datetime"].dt.to_pydatetime())
    field = TIME_FIELD[timeframe]
    symbols = frame["symbol"].tolist()
    keys = [{"symbol": s, field: t} for s, t in zip(symbols, times, strict=True)]
    columns = [frame[name].tolist() for name in OHLCV_FIELDS]
    values = [dict(zip(OHLCV_FIELDS, row, strict=True)) for row in zip(*columns, strict=True)]
    return keys, values


def upsert_candles(
    frame: pd.DataFrame,
    db: MarketStore | Database,
    timeframe: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    ensure_indexes: bool = True,
) -> UpsertResult:
    """Idempotently store candles (columns ``datetime`` open time UTC, ``symbol``, OHLCV).

    1d bars go to ``crypto_market`` with ``date`` = ``YYYYMMDD``; 1m bars to
    ``crypto_market_1m``. Returns how many were inserted, changed, unchanged.
    """
    store = as_store(db)
    checked = validate_candles(frame, timeframe)
    if ensure_indexes:
        store.ensure_indexes()
    coll = store.collection(timeframe)
    keys, values = candle_documents(checked, timeframe)
    result = UpsertResult()
    for lo in range(0, len(keys), batch_size):
        ops = [UpdateOne(k, {"$set": v}, upsert=True)
               for k, v in zip(keys[lo:lo + batch_size], values[lo:lo + batch_size], strict=True)]
        res = coll.bulk_write(ops, ordered=False)
        result = result + UpsertResult(res.upserted_count, res.modified_count,
                                       res.matched_count - res.modified_count)
    return result


def last_stored_bar(db: MarketStore | Database, symbol: str, timeframe: str) -> pd.Timestamp | None:
    """Open time of the newest stored bar of ``symbol`` (None if there is none)."""
    store = as_store(db)
    coll = store.collection(timeframe)
    field = TIME_FIELD[timeframe]
    doc = coll.find_one({"symbol": to_symbol(symbol)}, projection={field: 1, "_id": 0},
                        sort=[("symbol", ASCENDING), (field, DESCENDING)])
    if doc is None:
        return None
    if timeframe == "1d":
        return pd.to_datetime(doc["date"], format="%Y%m%d", utc=True)
    return pd.to_datetime(doc["datetime"], utc=True)  # naive BSON datetimes are UTC
