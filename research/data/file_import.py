"""Importing OHLCV candles from CSV or Parquet files into the market store.

Reads a file, renames columns through an optional mapping to the canonical
``datetime, symbol, open, high, low, close, volume``, converts timestamps to
UTC and upserts through :mod:`research.data.market_store`. Timestamps: epoch
numbers are UTC (``time_unit``, default ms), 8-digit numbers are ``YYYYMMDD``
dates; tz-aware values are converted;
naive values are an error unless ``tz`` says where they were recorded (naive
``YYYYMMDD`` dates of a ``1d`` file are UTC days). Not a general ETL tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from pymongo.database import Database

from signal_export.contract import OHLCV_FIELDS, ContractError

from .market_store import (
    DEFAULT_BATCH_SIZE,
    MarketStore,
    UpsertResult,
    check_stored_timeframe,
    upsert_candles,
)

TIME_ALIASES = ("datetime", "date", "timestamp", "time", "open_time")


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt") or path.name.lower().endswith(".csv.gz"):
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise ContractError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def _utc_times(values: pd.Series, *, tz: str | None, time_unit: str, daily: bool,
               source: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values.dtype):
        if values.between(19000101, 29991231).all():  # YYYYMMDD read as numbers
            values = values.astype("int64").astype("str")
        else:
            return pd.to_datetime(values.astype("int64"), unit=time_unit, utc=True)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values
    else:
        text = values.astype("str")
        try:
            parsed = pd.to_datetime(text, format="%Y%m%d" if text.str.fullmatch(r"\d{8}").all()
                                    else "ISO8601")
        except (ValueError, TypeError) as exc:
            raise ContractError(f"{source}: cannot parse the time column: {exc}") from exc
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            return parsed.dt.tz_convert("UTC")
    if tz is not None:
        return parsed.dt.tz_localize(tz).dt.tz_convert("UTC")
    if daily and (parsed == parsed.dt.normalize()).all():
        return parsed.dt.tz_localize("UTC")
    raise ContractError(f"{source}: naive timestamps (no timezone) in the time column; "
                        "pass tz='UTC' or the zone they were recorded in")


def read_ohlcv_file(
    path: str | Path,
    *,
    timeframe: str,
    columns: Mapping[str, str] | None = None,
    symbol: str | None = None,
    tz: str | None = None,
    time_unit: str = "ms",
) -> pd.DataFrame:
    """A canonical candle frame from a CSV/Parquet file (not yet validated or stored).

    ``columns`` maps file column names to canonical ones (e.g. ``{"Open time":
    "datetime", "Vol": "volume"}``). ``symbol`` fills the symbol when the file
    has no symbol column.
    """
    check_stored_timeframe(timeframe)
    path = Path(path)
    raw = _read_table(path).rename(columns=dict(columns or {}))
    time_col = next((c for c in TIME_ALIASES if c in raw.columns), None)
    if time_col is None:
        raise ContractError(f"{path}: no time column (one of {TIME_ALIASES}; map yours "
                            "with columns={...: 'datetime'})")
    missing = [c for c in OHLCV_FIELDS if c not in raw.columns]
    if missing:
        raise ContractError(f"{path}: missing column(s) {missing}; found {list(raw.columns)}")
    if "symbol" in raw.columns and symbol is not None:
        raise ContractError(f"{path}: has a symbol column and symbol={symbol!r} was also given")
    if "symbol" not in raw.columns and symbol is None:
        raise ContractError(f"{path}: no symbol column; pass symbol='BTC/USDT' (either form)")
    frame = pd.DataFrame({
        "datetime": _utc_times(raw[time_col], tz=tz, time_unit=time_unit,
                               daily=timeframe == "1d", source=str(path)),
        "symbol": raw["symbol"] if symbol is None else symbol,
        **{c: raw[c] for c in OHLCV_FIELDS},
    })
    return frame


def import_ohlcv_file(
    path: str | Path,
    *,
    db: MarketStore | Database,
    timeframe: str,
    columns: Mapping[str, str] | None = None,
    symbol: str | None = None,
    tz: str | None = None,
    time_unit: str = "ms",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> UpsertResult:
    """Read a CSV/Parquet file of ``1m`` or ``1d`` candles and upsert it (idempotent)."""
    frame = read_ohlcv_file(path, timeframe=timeframe, columns=columns, symbol=symbol, tz=tz,
                            time_unit=time_unit)
    return upsert_candles(frame, db, timeframe, batch_size=batch_size)
