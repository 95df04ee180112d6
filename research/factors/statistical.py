"""Price/volume statistics factors: returns, volatility, z-score, range position, volume spikes.

All are windowed (no recursion), computed from each window alone, and each
has a vectorised ``latest`` path that evaluates the newest bar for many
symbols at once from a (symbols x bars) array, for the incremental 1m job.
Not for TA-Lib indicators (see :mod:`research.factors.technical`).
"""

from __future__ import annotations

import numpy as np

from research.factors.registry import Bars, register_factor
from research.factors.windows import rolling, shift, window_stat


def _ret_latest(bars: Bars, horizon: int) -> dict[str, np.ndarray]:
    c = bars["close"]
    return {f"ret_{horizon}": c[:, -1] / c[:, -1 - horizon] - 1.0}


@register_factor(
    "ret", outputs=("ret_{horizon}",), requires=("close",),
    lookback=lambda p: p["horizon"] + 1, latest=_ret_latest, horizon=1,
)
def ret(bars: Bars, horizon: int) -> dict[str, np.ndarray]:
    """Simple return over ``horizon`` bars: close[t] / close[t - horizon] - 1."""
    c = bars["close"]
    return {f"ret_{horizon}": c / shift(c, horizon) - 1.0}


def _log_returns(close: np.ndarray) -> np.ndarray:
    return np.log(close[..., 1:] / close[..., :-1])


def _vol_latest(bars: Bars, window: int) -> dict[str, np.ndarray]:
    lr = _log_returns(bars["close"][:, -window - 1:])
    return {f"volatility_{window}": window_stat(lr, "std")}


@register_factor(
    "volatility", outputs=("volatility_{window}",), requires=("close",),
    lookback=lambda p: p["window"] + 1, latest=_vol_latest, limits={"window": (2, None)},
    window=20,
)
def volatility(bars: Bars, window: int) -> dict[str, np.ndarray]:
    """Rolling std (ddof=0) of 1-bar log returns over ``window`` bars; not annualised."""
    c = bars["close"]
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] > 1:
        out[1:] = rolling(_log_returns(c), window, "std")
    return {f"volatility_{window}": out}


def _zscore_from(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, (x - mean) / std, np.nan)


def _zscore_latest(bars: Bars, window: int) -> dict[str, np.ndarray]:
    win = bars["close"][:, -window:]
    return {f"zscore_{window}": _zscore_from(win[:, -1], window_stat(win, "mean"),
                                             window_stat(win, "std"))}


@register_factor(
    "zscore", outputs=("zscore_{window}",), requires=("close",),
    lookback=lambda p: p["window"], latest=_zscore_latest, limits={"window": (2, None)},
    window=20,
)
def zscore(bars: Bars, window: int) -> dict[str, np.ndarray]:
    """(close - rolling mean) / rolling std over ``window`` bars including the current one."""
    c = bars["close"]
    mean, std = rolling(c, window, "mean"), rolling(c, window, "std")
    return {f"zscore_{window}": _zscore_from(c, mean, std)}


def _range_from(close: np.ndarray, hi: np.ndarray, lo: np.ndarray,
                window: int) -> dict[str, np.ndarray]:
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(span > 0, (close - lo) / span, np.nan)
    return {f"range_high_{window}": hi, f"range_low_{window}": lo, f"range_pos_{window}": pos}


def _range_latest(bars: Bars, window: int) -> dict[str, np.ndarray]:
    return _range_from(bars["close"][:, -1], bars["high"][:, -window:].max(axis=1),
                       bars["low"][:, -window:].min(axis=1), window)


@register_factor(
    "range", outputs=("range_high_{window}", "range_low_{window}", "range_pos_{window}"),
    lookback=lambda p: p["window"], latest=_range_latest, window=20,
)
def price_range(bars: Bars, window: int) -> dict[str, np.ndarray]:
    """Highest high / lowest low of the last ``window`` bars (current included) and the close's
    position in that range (0 = at the low, 1 = at the high)."""
    return _range_from(bars["close"], rolling(bars["high"], window, "max"),
                       rolling(bars["low"], window, "min"), window)


def _spike_latest(bars: Bars, window: int) -> dict[str, np.ndarray]:
    v = bars["volume"]
    base = window_stat(v[:, -window - 1:-1], "mean")
    with np.errstate(divide="ignore", invalid="ignore"):
        return {f"volume_spike_{window}": np.where(base > 0, v[:, -1] / base, np.nan)}


@register_factor(
    "volume_spike", outputs=("volume_spike_{window}",),
    lookback=lambda p: p["window"] + 1, latest=_spike_latest, window=20,
)
def volume_spike(bars: Bars, window: int) -> dict[str, np.ndarray]:
    """Volume relative to the mean volume of the PREVIOUS ``window`` bars (2.0 = twice usual)."""
    v = bars["volume"]
    base = shift(rolling(v, window, "mean"), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {f"volume_spike_{window}": np.where(base > 0, v / base, np.nan)}
