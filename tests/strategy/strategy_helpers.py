"""Helpers for the strategy tests: constructed candles, config merging, subprocess env."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
FREQTRADE = str(Path(sys.executable).with_name("freqtrade"))
PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
BASE_PRICE = {"BTC/USDT": 1000.0, "ETH/USDT": 500.0, "SOL/USDT": 50.0}


def freqtrade_env(**extra: str) -> dict[str, str]:
    """Subprocess env: the repo importable, no EXT_SIG_* leaking in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXT_SIG_", "FREQTRADE__"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


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


def deep_merge(base: dict, extra: Mapping) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, Mapping) and isinstance(
            out.get(key), dict) else value
    return out
