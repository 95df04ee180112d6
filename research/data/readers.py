"""Reading stored candles back as tidy DataFrames (the seed-004 reader names).

``get_crypto_market_data`` reads 1d bars from ``crypto_market`` and
``get_crypto_min_data`` 1m bars from ``crypto_market_1m``. Both return one row
per (symbol, bar) with a UTC ``date``/``datetime`` column (bar open time,
``datetime64[ms, UTC]`` like Freqtrade's ``date``), ``symbol`` in
``BINANCE:BTCUSDT`` form and the requested OHLCV fields as float64, sorted by
symbol then time. Boundaries are inclusive; the projection is pushed to
MongoDB and the cursor is consumed in batches, each turned into columns, so a
million-row request never holds a million dicts at once: minute requests are
split per symbol into time windows of at most ``batch_size`` bars, each an
index range scan on ``{symbol, datetime}``, which keeps every server reply
small. Writing is
:mod:`research.data.market_store`'s job.

``get_crypto_bars`` reads any timeframe the store accepts: 1m and 1d as stored,
and 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h (any whole number of minutes dividing
a day) resampled from the stored 1m bars with the standard OHLCV aggregation
(first open, max high, min low, last close, summed volume), each bar labelled by
its open time on the signal contract's grid (epoch-anchored: 4h bars open at
00:00, 04:00 ... UTC, like Binance and Freqtrade). A derived bar is built from
the 1m bars that exist (a hole in the minutes is not filled); ``complete=True``
keeps only bars with all their minutes.

Boundaries: a ``datetime``/``Timestamp`` must be tz-aware; a ``date``, a
``'YYYYMMDD'`` or ``'YYYY-MM-DD'`` string means that UTC calendar day, and as
the end of a minute request it includes the whole day.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from pymongo import ASCENDING
from pymongo.database import Database

from signal_export.contract import (
    OHLCV_FIELDS,
    ContractError,
    ensure_utc,
    floor_to_bar,
    timeframe_delta,
    to_symbol,
)

from .market_store import MarketStore, as_store, check_readable_timeframe

DEFAULT_READ_BATCH = 50_000
Bound = datetime | date | pd.Timestamp | str


def _parse_bound(value: Bound, name: str) -> tuple[pd.Timestamp, bool]:
    """(UTC timestamp, whether it names a whole day)."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) in (8, 10) and text.replace("-", "").isdigit():
            return pd.Timestamp(text.replace("-", ""), tz="UTC"), True
        try:
            parsed = pd.Timestamp(text)
        except ValueError as exc:
            raise ContractError(f"{name}: cannot parse {value!r} as a date or time") from exc
        if parsed.tzinfo is None:
            raise ContractError(f"{name}: {value!r} has a time but no timezone; "
                                "append 'Z' or '+00:00' for UTC")
        return parsed.tz_convert("UTC"), False
    if isinstance(value, datetime):  # datetime and Timestamp
        return ensure_utc(value, name), False
    if isinstance(value, date):
        return pd.Timestamp(value.isoformat(), tz="UTC"), True
    raise ContractError(f"{name}: expected a date, tz-aware datetime or date string, "
                        f"got {type(value).__name__}")


def _symbols(symbols: str | Iterable[str]) -> list[str]:
    items = [symbols] if isinstance(symbols, str) else list(symbols)
    return list(dict.fromkeys(to_symbol(s) for s in items))


def _fields(fields: Sequence[str] | None) -> list[str]:
    if fields is None:
        return list(OHLCV_FIELDS)
    chosen = [fields] if isinstance(fields, str) else list(fields)
    unknown = [f for f in chosen if f not in OHLCV_FIELDS]
    if unknown:
        raise ContractError(f"fields: unknown field(s) {unknown}; known: {list(OHLCV_FIELDS)}")
    return chosen


def empty_frame(time_column: str, fields: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({
        time_column: pd.Series([], dtype="datetime64[ms, UTC]"),
        "symbol": pd.Series([], dtype="str"),
        **{f: pd.Series([], dtype="float64") for f in fields},
    })


def _find(coll, query: dict, time_field: str, fields: list[str], batch_size: int):
    projection = {"_id": 0, "symbol": 1, time_field: 1, **{f: 1 for f in fields}}
    return coll.find(query, projection=projection, batch_size=batch_size,
                     sort=[("symbol", ASCENDING), (time_field, ASCENDING)])


def _batch_frame(batch: list[dict], time_field: str, fields: list[str]) -> pd.DataFrame:
    """One batch of documents -> columns (the only per-document Python work)."""
    n = len(batch)
    if time_field == "date":
        times = pd.to_datetime(pd.Series([d["date"] for d in batch], dtype="str"),
                               format="%Y%m%d", utc=True)
    else:  # BSON datetimes are UTC; naive ones (tz_aware=False clients) too
        times = pd.to_datetime(pd.Series([d["datetime"] for d in batch], dtype="object"),
                               utc=True)
    columns = {
        time_field: times.astype("datetime64[ms, UTC]").to_numpy(),
        "symbol": [d["symbol"] for d in batch],
    }
    for f in fields:
        columns[f] = np.fromiter((d.get(f, np.nan) for d in batch), dtype="float64", count=n)
    return pd.DataFrame(columns)


def _stream(cursors: Iterable, time_field: str, fields: list[str],
            batch_size: int) -> pd.DataFrame | None:
    parts: list[pd.DataFrame] = []
    for cursor in cursors:
        while batch := list(itertools.islice(cursor, batch_size)):
            parts.append(_batch_frame(batch, time_field, fields))
    if not parts:
        return None
    frame = pd.concat(parts, ignore_index=True)
    frame[time_field] = frame[time_field].astype("datetime64[ms, UTC]")
    return frame


def _minute_windows(lo: pd.Timestamp, hi: pd.Timestamp,
                    batch_size: int) -> Iterator[tuple[datetime, datetime]]:
    """[lo, hi] cut into inclusive windows of at most ``batch_size`` minutes."""
    step = timedelta(minutes=batch_size)
    start = lo.to_pydatetime()
    stop = hi.to_pydatetime()
    while start <= stop:
        end = min(start + step - timedelta(milliseconds=1), stop)
        yield start, end
        start = end + timedelta(milliseconds=1)


def get_crypto_market_data(
    symbols: str | Iterable[str],
    start: Bound,
    end: Bound,
    fields: Sequence[str] | None = None,
    *,
    db: MarketStore | Database,
    batch_size: int = DEFAULT_READ_BATCH,
) -> pd.DataFrame:
    """Daily bars of ``symbols`` for the UTC days ``start`` .. ``end`` (inclusive).

    Columns: ``date`` (UTC midnight, bar open), ``symbol``, then ``fields``
    (default all OHLCV). Symbols in either form (``BTC/USDT`` or ``BINANCE:BTCUSDT``).
    """
    store, names, chosen = as_store(db), _symbols(symbols), _fields(fields)
    lo = _parse_bound(start, "start")[0].strftime("%Y%m%d")
    hi = _parse_bound(end, "end")[0].strftime("%Y%m%d")
    query = {"symbol": {"$in": names}, "date": {"$gte": lo, "$lte": hi}}
    cursor = _find(store.collection("1d"), query, "date", chosen, batch_size)
    frame = _stream([cursor], "date", chosen, batch_size)
    if frame is None:
        return empty_frame("date", chosen)
    return frame[["date", "symbol", *chosen]]


def get_crypto_min_data(
    symbols: str | Iterable[str],
    start: Bound,
    end: Bound,
    fields: Sequence[str] | None = None,
    *,
    db: MarketStore | Database,
    batch_size: int = DEFAULT_READ_BATCH,
) -> pd.DataFrame:
    """1m bars of ``symbols`` with open time in ``[start, end]`` (inclusive).

    Columns: ``datetime`` (UTC bar open), ``symbol``, then ``fields``. An end
    given as a date includes that whole day.
    """
    store, names, chosen = as_store(db), _symbols(symbols), _fields(fields)
    lo, _ = _parse_bound(start, "start")
    hi, whole_day = _parse_bound(end, "end")
    if whole_day:
        hi = hi + timedelta(days=1) - timedelta(milliseconds=1)
    coll = store.collection("1m")
    cursors = (
        _find(coll, {"symbol": name, "datetime": {"$gte": w0, "$lte": w1}}, "datetime", chosen,
              batch_size)
        for name in sorted(names)
        for w0, w1 in _minute_windows(lo, hi, batch_size)
    )
    frame = _stream(cursors, "datetime", chosen, batch_size)
    if frame is None:
        return empty_frame("datetime", chosen)
    return frame[["datetime", "symbol", *chosen]]


def get_crypto_bars(
    symbols: str | Iterable[str],
    start: Bound,
    end: Bound,
    timeframe: str,
    fields: Sequence[str] | None = None,
    *,
    db: MarketStore | Database,
    batch_size: int = DEFAULT_READ_BATCH,
    complete: bool = False,
) -> pd.DataFrame:
    """``timeframe`` bars of ``symbols`` whose open time lies in ``[start, end]``.

    Columns: ``datetime`` (UTC bar open, ``datetime64[ms, UTC]``), ``symbol``, then
    ``fields``, sorted by symbol then time, for every timeframe (1d included, whose
    stored ``date`` becomes ``datetime``). 1m and 1d come from their collections;
    5m .. 12h are aggregated from 1m (see the module docstring): a bar opening
    before ``start`` is not returned, and the last bar covers its whole period
    even when ``end`` falls inside it (an end given as a date includes the day).
    ``complete=True`` drops derived bars that lack some of their 1m bars
    (a hole in the data, or the bar still in progress when the minutes were stored).
    """
    check_readable_timeframe(timeframe)
    if timeframe == "1d":
        frame = get_crypto_market_data(symbols, start, end, fields, db=db, batch_size=batch_size)
        return frame.rename(columns={"date": "datetime"})
    if timeframe == "1m":
        return get_crypto_min_data(symbols, start, end, fields, db=db, batch_size=batch_size)
    from research.data.bars import expected_bars, time_bars  # pandas-only, imported on use

    chosen = _fields(fields)
    step = timeframe_delta(timeframe)
    lo, _ = _parse_bound(start, "start")
    hi, whole_day = _parse_bound(end, "end")
    if whole_day:
        hi = hi + timedelta(days=1) - timedelta(milliseconds=1)
    first = floor_to_bar(lo, timeframe)
    if first < lo:
        first = first + step  # the bar containing start opened before it
    last = floor_to_bar(hi, timeframe)
    if last < first:
        return empty_frame("datetime", chosen)
    minutes = get_crypto_min_data(symbols, first, last + step - timedelta(milliseconds=1),
                                  db=db, batch_size=batch_size)
    if minutes.empty:
        return empty_frame("datetime", chosen)
    bars = time_bars(minutes, timeframe)
    if complete:
        bars = bars[bars["n_bars"] == expected_bars(timeframe)]
    bars = bars.astype({"datetime": "datetime64[ms, UTC]"})
    return bars.loc[:, ["datetime", "symbol", *chosen]].reset_index(drop=True)
