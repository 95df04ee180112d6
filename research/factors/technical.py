"""TA-Lib technical factor templates: RSI, MACD, ATR, Bollinger %b/width, ADX, OBV, MFI, SMA/EMA.

Each factor is registered in :mod:`research.factors.registry` with its lookback
(bars to the first value) and its warm-up (bars of history the incremental
path keeps so the newest value matches a full recomputation to 1e-9). For
TA-Lib's recursive smoothers (Wilder's RSI/ATR/ADX, EMA in MACD) the warm-up is
the number of bars after which the influence of the seed value has decayed
below 1e-15 relative, ``ceil(ln(1e-15) / ln(1 - alpha))`` per smoothing stage;
``tests/factors/test_incremental.py`` proves it on every factor. Windowed
factors (Bollinger, OBV change) are computed from their window alone (see
:mod:`research.factors.windows`) and are equal to the direct TA-Lib call.
Not for signal rules: those are in :mod:`research.signals`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import talib

from research.factors.registry import Bars, register_factor
from research.factors.windows import window_stat

#: Residual influence of a recursive smoother's seed we accept in incremental mode.
SEED_DECAY = 1e-15
#: TA-Lib's own range of ``timeperiod`` (outside it TA-Lib fails with TA_BAD_PARAM);
#: a recursive smoother also needs a period of 2 or more (alpha < 1).
TALIB_PERIOD = (2, 100_000)


def decay_bars(alpha: float) -> int:
    """Bars after which a recursive smoother with factor ``alpha`` forgets its seed (SEED_DECAY)."""
    return math.ceil(math.log(SEED_DECAY) / math.log(1.0 - alpha))


def wilder_bars(period: int) -> int:
    return decay_bars(1.0 / period)


def ema_bars(period: int) -> int:
    return decay_bars(2.0 / (period + 1))


# --- RSI / ATR / ADX (Wilder smoothing) -----------------------------------

@register_factor(
    "rsi", outputs=("rsi_{period}",), requires=("close",),
    lookback=lambda p: p["period"] + 1,
    warmup=lambda p: p["period"] + 1 + wilder_bars(p["period"]),
    limits={"period": TALIB_PERIOD}, period=14,
)
def rsi(bars: Bars, period: int) -> dict[str, np.ndarray]:
    """Relative Strength Index (TA-Lib RSI, Wilder smoothing), 0..100."""
    return {f"rsi_{period}": talib.RSI(bars["close"], timeperiod=period)}


@register_factor(
    "atr", outputs=("atr_{period}",),
    lookback=lambda p: p["period"] + 1,
    warmup=lambda p: p["period"] + 1 + wilder_bars(p["period"]),
    limits={"period": TALIB_PERIOD}, period=14,
)
def atr(bars: Bars, period: int) -> dict[str, np.ndarray]:
    """Average True Range (TA-Lib ATR), in price units."""
    return {f"atr_{period}": talib.ATR(bars["high"], bars["low"], bars["close"], timeperiod=period)}


@register_factor(
    "adx", outputs=("adx_{period}",),
    lookback=lambda p: 2 * p["period"],
    # Two chained Wilder stages (DM/TR smoothing, then ADX) plus slack for the chain.
    warmup=lambda p: 2 * p["period"] + 2 * wilder_bars(p["period"]) + 4 * p["period"],
    limits={"period": TALIB_PERIOD}, period=14,
)
def adx(bars: Bars, period: int) -> dict[str, np.ndarray]:
    """Average Directional Index (TA-Lib ADX): trend strength 0..100, direction-free."""
    return {f"adx_{period}": talib.ADX(bars["high"], bars["low"], bars["close"], timeperiod=period)}


# --- EMA family -----------------------------------------------------------

@register_factor(
    "macd", outputs=("macd_{fast}_{slow}_{signal}", "macd_signal_{fast}_{slow}_{signal}",
                     "macd_hist_{fast}_{slow}_{signal}"),
    requires=("close",),
    lookback=lambda p: p["slow"] + p["signal"] - 1,
    warmup=lambda p: p["slow"] + p["signal"] + ema_bars(p["slow"]) + ema_bars(p["signal"]),
    limits={"fast": TALIB_PERIOD, "slow": TALIB_PERIOD, "signal": TALIB_PERIOD},
    check=lambda p: (f"parameter 'fast' ({p['fast']}) must be smaller than 'slow' "
                     f"({p['slow']})") if p["fast"] >= p["slow"] else None,
    fast=12, slow=26, signal=9,
)
def macd(bars: Bars, fast: int, slow: int, signal: int) -> dict[str, np.ndarray]:
    """MACD line, signal line and histogram (TA-Lib MACD), in price units."""
    line, sig, hist = talib.MACD(bars["close"], fastperiod=fast, slowperiod=slow,
                                 signalperiod=signal)
    key = f"{fast}_{slow}_{signal}"
    return {f"macd_{key}": line, f"macd_signal_{key}": sig, f"macd_hist_{key}": hist}


@register_factor(
    "ema", outputs=("ema_{period}", "ema_dist_{period}"), requires=("close",),
    lookback=lambda p: p["period"],
    warmup=lambda p: p["period"] + ema_bars(p["period"]),
    limits={"period": TALIB_PERIOD}, period=50,
)
def ema(bars: Bars, period: int) -> dict[str, np.ndarray]:
    """Exponential moving average (TA-Lib EMA) and the close's distance to it (close/ema - 1)."""
    line = talib.EMA(bars["close"], timeperiod=period)
    return {f"ema_{period}": line, f"ema_dist_{period}": bars["close"] / line - 1.0}


# --- windowed (non-recursive) ---------------------------------------------

def _sma_latest(bars: Bars, period: int) -> dict[str, np.ndarray]:
    close = bars["close"]
    line = window_stat(close[:, -period:], "mean")
    return {f"sma_{period}": line, f"sma_dist_{period}": close[:, -1] / line - 1.0}


@register_factor(
    "sma", outputs=("sma_{period}", "sma_dist_{period}"), requires=("close",),
    lookback=lambda p: p["period"], latest=_sma_latest, limits={"period": (1, 100_000)},
    period=200,
)
def sma(bars: Bars, period: int) -> dict[str, np.ndarray]:
    """Simple moving average (TA-Lib SMA) and the close's distance to it (close/sma - 1)."""
    line = talib.SMA(bars["close"], timeperiod=period)
    return {f"sma_{period}": line, f"sma_dist_{period}": bars["close"] / line - 1.0}


def _bbands_from(close: np.ndarray, mean: np.ndarray, std: np.ndarray, period: int,
                 nbdev: float) -> dict[str, np.ndarray]:
    upper, lower = mean + nbdev * std, mean - nbdev * std
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        pctb = np.where(width > 0, (close - lower) / width, np.nan)
        rel_width = width / mean
    return {f"bb_pctb_{period}": pctb, f"bb_width_{period}": rel_width}


def _bbands_latest(bars: Bars, period: int, nbdev: float) -> dict[str, np.ndarray]:
    win = bars["close"][:, -period:]
    return _bbands_from(bars["close"][:, -1], window_stat(win, "mean"), window_stat(win, "std"),
                        period, nbdev)


@register_factor(
    "bbands", outputs=("bb_pctb_{period}", "bb_width_{period}"), requires=("close",),
    lookback=lambda p: p["period"], latest=_bbands_latest, limits={"period": (2, None)},
    period=20, nbdev=2.0,
)
def bbands(bars: Bars, period: int, nbdev: float) -> dict[str, np.ndarray]:
    """Bollinger %b (0 at the lower band, 1 at the upper) and band width relative to the middle.

    Same bands as TA-Lib BBANDS (SMA middle, population std), computed per window
    so the value does not depend on the history before the window.
    """
    from research.factors.windows import rolling

    close = bars["close"]
    return _bbands_from(close, rolling(close, period, "mean"), rolling(close, period, "std"),
                        period, nbdev)


def _signed_volume(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    step = np.sign(np.diff(close, axis=-1))
    return step * volume[..., 1:]


def _obv_latest(bars: Bars, period: int) -> dict[str, np.ndarray]:
    sv = _signed_volume(bars["close"][:, -period - 1:], bars["volume"][:, -period - 1:])
    return {f"obv_delta_{period}": window_stat(sv, "sum")}


@register_factor(
    "obv_delta", outputs=("obv_delta_{period}",),
    lookback=lambda p: p["period"] + 1, latest=_obv_latest, period=20,
)
def obv_delta(bars: Bars, period: int) -> dict[str, np.ndarray]:
    """Change of On-Balance Volume over ``period`` bars (TA-Lib OBV[t] - OBV[t-period]).

    The OBV level depends on where the series starts; its change over a window
    does not, so this is the form that is comparable across symbols and exact
    in incremental mode.
    """
    from research.factors.windows import rolling

    close, volume = bars["close"], bars["volume"]
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] > period:
        out[1:] = rolling(_signed_volume(close, volume), period, "sum")
    return {f"obv_delta_{period}": out}


@register_factor(
    "mfi", outputs=("mfi_{period}",),
    lookback=lambda p: p["period"] + 1, warmup=lambda p: p["period"] + 1,
    limits={"period": TALIB_PERIOD}, period=14,
)
def mfi(bars: Bars, period: int) -> dict[str, np.ndarray]:
    """Money Flow Index (TA-Lib MFI), a volume-weighted RSI, 0..100."""
    return {f"mfi_{period}": talib.MFI(bars["high"], bars["low"], bars["close"], bars["volume"],
                                       timeperiod=period)}


def talib_reference(name: str, bars: Bars, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The direct TA-Lib computation of a template's outputs (used by tests and docs)."""
    c, v = bars["close"], bars.get("volume")
    if name == "bbands":
        up, mid, low = talib.BBANDS(c, timeperiod=params["period"], nbdevup=params["nbdev"],
                                    nbdevdn=params["nbdev"], matype=0)
        p = params["period"]
        return {f"bb_pctb_{p}": (c - low) / (up - low), f"bb_width_{p}": (up - low) / mid}
    if name == "obv_delta":
        obv = talib.OBV(c, v)
        p = params["period"]
        out = np.full(c.shape[0], np.nan)
        out[p:] = obv[p:] - obv[:-p]
        return {f"obv_delta_{p}": out}
    raise KeyError(name)


__all__ = [
    "adx", "atr", "bbands", "ema", "macd", "mfi", "obv_delta", "rsi", "sma", "talib_reference",
]
