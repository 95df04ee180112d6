"""Bars built from 1m bars: time bars (5m, 15m, 1h, 4h, 1d...), volume bars and dollar bars.

Input is the tidy OHLCV convention (datetime = UTC bar open time, symbol,
open/high/low/close/volume), possibly several symbols; each symbol is
aggregated on its own. Time bars are labelled by their open time on the UTC
grid of the contract's timeframe (1d bars open at 00:00 UTC) and carry
``n_bars`` (how many 1m bars went in) so incomplete bars are visible, never
padded. Volume and dollar bars (seed 002) are cut on a fixed grid of the
running total: bar k closes on the 1m bar whose running total reaches
(k+1) x threshold, so bars average the threshold and an overshoot is not
carried into the next bar's quota (which keeps the cut vectorised). Every 1m
bar belongs to exactly one output bar, so total volume is conserved; the last,
still-open bar is kept and flagged ``complete=False``. Not for reading or storing market data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signal_export.contract import ContractError, floor_series_to_bar, timeframe_delta
from signal_export.errors import BridgeError

OHLCV_AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


class BarsError(BridgeError, ValueError):
    """Input that cannot be aggregated into bars; the message names the problem."""


def _check_input(frame: pd.DataFrame) -> None:
    missing = [c for c in ("datetime", "symbol", *OHLCV_AGG) if c not in frame.columns]
    if missing:
        raise BarsError(f"bars input lacks column(s) {missing}")
    if not isinstance(frame["datetime"].dtype, pd.DatetimeTZDtype):
        raise BarsError("bars input 'datetime' must be tz-aware UTC")
    if frame.duplicated(["symbol", "datetime"]).any():
        row = frame.loc[frame.duplicated(["symbol", "datetime"])].iloc[0]
        raise BarsError(f"duplicate 1m bar: symbol={row['symbol']!r} datetime={row['datetime']}")


def time_bars(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Resample 1m bars to ``timeframe`` -> datetime (open time), symbol, OHLCV, n_bars."""
    _check_input(frame)
    try:
        label = floor_series_to_bar(frame["datetime"], timeframe)
    except ContractError as exc:
        raise BarsError(f"timeframe {timeframe!r}: {exc}") from exc
    ordered = frame.assign(_bar=label).sort_values(["symbol", "datetime"], kind="stable")
    grouped = ordered.groupby(["symbol", "_bar"], sort=True)
    out = grouped.agg(**{c: (c, how) for c, how in OHLCV_AGG.items()}, n_bars=("close", "size"))
    out = out.reset_index().rename(columns={"_bar": "datetime"})
    return out[["datetime", "symbol", *OHLCV_AGG, "n_bars"]]


def expected_bars(timeframe: str, base: str = "1m") -> int:
    """How many ``base`` bars make one complete ``timeframe`` bar (e.g. 60 for 1h from 1m)."""
    return int(timeframe_delta(timeframe) / timeframe_delta(base))


def volume_bars(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Bars that each hold ``threshold`` of traded volume (base units)."""
    return _threshold_bars(frame, threshold, frame["volume"].to_numpy(dtype=np.float64), "volume")


def dollar_bars(frame: pd.DataFrame, threshold: float, price: str = "close") -> pd.DataFrame:
    """Bars that each hold ``threshold`` of traded value (``price`` x volume, quote units)."""
    if price not in frame.columns:
        raise BarsError(f"dollar bars: price column {price!r} not in input")
    value = frame[price].to_numpy(dtype=np.float64) * frame["volume"].to_numpy(dtype=np.float64)
    return _threshold_bars(frame.assign(dollar_volume=value), threshold, value, "dollar")


def _threshold_bars(frame: pd.DataFrame, threshold: float, measure: np.ndarray, kind: str
                    ) -> pd.DataFrame:
    _check_input(frame)
    if not np.isfinite(threshold) or threshold <= 0:
        raise BarsError(f"{kind} bars: threshold must be a positive number, got {threshold!r}")
    if np.isnan(measure).any() or (measure < 0).any():
        raise BarsError(f"{kind} bars: volume must be finite and >= 0")
    frame = frame.assign(_measure=measure).sort_values(["symbol", "datetime"], kind="stable")
    m = frame["_measure"].to_numpy()
    # Running total before each 1m bar, restarted per symbol: a 1m bar belongs to bar
    # k = floor(total_before / threshold), so bar k closes on the 1m bar that crosses (k+1)*T.
    total = frame.groupby("symbol", sort=False)["_measure"].cumsum().to_numpy()
    bar_id = np.floor((total - m) / threshold).astype(np.int64)
    frame = frame.assign(_bar=bar_id, _total=total)
    agg = {**{c: (c, how) for c, how in OHLCV_AGG.items()},
           "datetime": ("datetime", "first"), "end_datetime": ("datetime", "last"),
           "n_bars": ("close", "size"), "_total": ("_total", "last")}
    if "dollar_volume" in frame.columns:
        agg["dollar_volume"] = ("dollar_volume", "sum")
    out = frame.groupby(["symbol", "_bar"], sort=True).agg(**agg).reset_index()
    out["complete"] = out["_total"] >= (out["_bar"] + 1) * threshold
    cols = ["datetime", "end_datetime", "symbol", *OHLCV_AGG]
    if "dollar_volume" in out.columns:
        cols.append("dollar_volume")
    return out[[*cols, "n_bars", "complete"]]
