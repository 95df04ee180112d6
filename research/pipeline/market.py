"""Loading the pipeline's candles from its configured source as one tidy frame.

Returns the factor engine's input convention: ``datetime`` (UTC bar open,
``datetime64[ms, UTC]``), ``symbol`` (``BINANCE:BTCUSDT`` form) and OHLCV,
sorted by symbol then time, restricted to the universe and to bars opening in
``[start, end)``. Sources: the synthetic generator (no database), the market
collections through the readers (1m/1d as stored; other intraday timeframes
aggregated from 1m with :func:`research.data.bars.time_bars`), or a CSV/Parquet
file. A symbol of the universe without any bar is an error naming it, never a
silently smaller universe. Not a store: importing candles is
:mod:`research.data`'s job.
"""

from __future__ import annotations

import pandas as pd
from pymongo.database import Database

from research.data.bars import time_bars
from research.data.file_import import read_ohlcv_file
from research.data.market_store import MarketStore, validate_candles
from research.data.readers import get_crypto_market_data, get_crypto_min_data
from research.data.synthetic import SyntheticMarket, generate_ohlcv
from research.pipeline.config import (
    FileSource,
    MongoSource,
    PipelineConfig,
    SyntheticSource,
)
from signal_export.contract import OHLCV_FIELDS, timeframe_delta
from signal_export.errors import BridgeError

COLUMNS = ("datetime", "symbol", *OHLCV_FIELDS)


class MarketDataError(BridgeError, ValueError):
    """The configured market data is missing or unusable; the message names symbol and range."""


def load_market(
    config: PipelineConfig,
    *,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    store: MarketStore | Database | None = None,
) -> pd.DataFrame:
    """Candles of ``config.universe`` at ``config.timeframe`` opening in ``[start, end)``.

    ``start``/``end`` default to the config's range (the newest-bar job passes
    a short window). ``store`` is required for the ``mongo`` source.
    """
    lo = config.start_ts if start is None else start
    hi = config.end_exclusive if end is None else end
    return load_candles(config.data, config.universe, config.timeframe, lo, hi, store=store)


def load_candles(
    source: SyntheticSource | MongoSource | FileSource,
    universe: list[str],
    timeframe: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    store: MarketStore | Database | None = None,
) -> pd.DataFrame:
    """Candles of ``universe`` (canonical symbols) from ``source`` opening in ``[start, end)``."""
    if isinstance(source, SyntheticSource):
        market = SyntheticMarket(seed=source.seed, symbols=tuple(universe),
                                 gap_rate=source.gap_rate)
        frame = generate_ohlcv(market, start, end, timeframe)
    elif isinstance(source, MongoSource):
        if store is None:
            raise MarketDataError("data.kind 'mongo' needs a database (settings or --mongo-uri)")
        frame = _from_mongo(universe, timeframe, start, end, store)
    elif isinstance(source, FileSource):
        frame = _from_file(source, timeframe)
    else:  # pragma: no cover - the config union is closed
        raise MarketDataError(f"unknown data source {source!r}")
    frame = _restrict(frame, universe, start, end)
    present = set(frame["symbol"])
    missing = [s for s in universe if s not in present]
    if missing:
        raise MarketDataError(
            f"no {timeframe} bars for {missing} between {start.isoformat()} and "
            f"{end.isoformat()} (data source {source.kind!r})")
    return frame


def _from_mongo(universe: list[str], timeframe: str, lo: pd.Timestamp, hi: pd.Timestamp,
                store: MarketStore | Database) -> pd.DataFrame:
    last = hi - pd.Timedelta(milliseconds=1)
    if timeframe == "1d":
        frame = get_crypto_market_data(universe, lo, last, db=store)
        return frame.rename(columns={"date": "datetime"})
    minutes = get_crypto_min_data(universe, lo, last, db=store)
    if timeframe == "1m" or minutes.empty:
        return minutes
    bars = time_bars(minutes, timeframe)
    return bars[list(COLUMNS)]


def _from_file(source: FileSource, timeframe: str) -> pd.DataFrame:
    frame = read_ohlcv_file(source.path, timeframe=timeframe, columns=source.columns,
                            symbol=source.symbol, tz=source.tz, time_unit=source.time_unit)
    return validate_candles(frame, timeframe)  # canonical symbols, on-grid, sane OHLCV


def _restrict(frame: pd.DataFrame, universe: list[str], lo: pd.Timestamp,
              hi: pd.Timestamp) -> pd.DataFrame:
    out = frame.loc[:, list(COLUMNS)]
    out = out[out["symbol"].isin(universe) & (out["datetime"] >= lo)
              & (out["datetime"] < hi)]
    out = out.astype({"datetime": "datetime64[ms, UTC]", "symbol": object,
                      **dict.fromkeys(OHLCV_FIELDS, "float64")})
    return out.sort_values(["symbol", "datetime"], kind="stable", ignore_index=True)


def history_start(newest_bar: pd.Timestamp, timeframe: str, bars: int) -> pd.Timestamp:
    """Open time of the bar ``bars - 1`` bars before ``newest_bar`` (so ``bars`` bars in all)."""
    return newest_bar - (bars - 1) * timeframe_delta(timeframe)
