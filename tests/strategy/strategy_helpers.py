"""Helpers for the strategy tests: constructed candles, config merging, subprocess env."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pymongo import monitoring

from devservers.freqtrade_harness import FREQTRADE, REPO, deep_merge, freqtrade_env

__all__ = ["FREQTRADE", "REPO", "deep_merge", "freqtrade_env", "PAIRS", "BASE_PRICE",
           "constructed_candles", "write_candles", "unwrap"]

PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
BASE_PRICE = {"BTC/USDT": 1000.0, "ETH/USDT": 500.0, "SOL/USDT": 50.0}


def constructed_candles(pair: str, start: str, periods: int, timeframe: str = "1h") -> pd.DataFrame:
    """Candles whose open is base + i: every expected fill price is known by hand."""
    dates = pd.date_range(start, periods=periods, freq=timeframe.replace("m", "min"), tz="UTC")
    opens = BASE_PRICE[pair] + np.arange(periods, dtype=float)
    return pd.DataFrame({
        "date": dates.astype("datetime64[ms, UTC]"), "open": opens, "high": opens + 0.8,
        "low": opens - 0.8, "close": opens + 0.5, "volume": np.full(periods, 1000.0),
    })


def write_candles(datadir: Path, frames: Mapping[str, pd.DataFrame], timeframe: str) -> None:
    from freqtrade.data.history import get_datahandler

    handler = get_datahandler(datadir, "feather")
    for pair, frame in frames.items():
        handler.ohlcv_store(pair, timeframe, frame, candle_type="spot")



def unwrap(log: str) -> str:
    """Freqtrade's console log handler wraps long lines: join the continuations back."""
    return re.sub(r" *\n(?!\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - ) *", " ", log)


class FindCounter(monitoring.CommandListener):
    """Counts the find (and every read) command a client sends."""

    def __init__(self) -> None:
        self.finds: list[dict] = []
        self.reads: list[str] = []  # every read command: find, aggregate, count, ...

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds.append(event.command)
        if event.command_name in ("find", "aggregate", "count", "distinct", "getMore"):
            self.reads.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
