"""Exact rolling-window statistics for factor templates.

Every value is computed from its own window only (two-pass mean/std, one
vectorised pass per offset inside the window), never from running sums
carried along the series. That makes a factor value independent of how
much history precedes its window, so the incremental path (a truncated
history) reproduces the full recomputation bit for bit.
Not for recursive smoothers (EMA, Wilder): those live in TA-Lib.
"""

from __future__ import annotations

import numpy as np


def _padded(values: np.ndarray, n: int, window: int) -> np.ndarray:
    out = np.full(n, np.nan)
    out[window - 1:] = values
    return out


def rolling(x: np.ndarray, window: int, stat: str) -> np.ndarray:
    """Rolling ``stat`` (mean, std, sum, max, min) over the last ``window`` values, NaN before.

    ``std`` is the population standard deviation (ddof=0), like TA-Lib's STDDEV.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if n < window:
        return np.full(n, np.nan)
    m = n - window + 1
    return _padded(_stat(lambda k: x[k:k + m], window, stat), n, window)


def window_stat(windows: np.ndarray, stat: str) -> np.ndarray:
    """``stat`` over the last axis of ``windows`` (e.g. symbols x last bars).

    Same arithmetic, in the same order, as :func:`rolling`, so the newest value
    of a rolling factor and its incremental counterpart are bit-identical.
    """
    windows = np.asarray(windows, dtype=np.float64)
    return _stat(lambda k: windows[..., k], windows.shape[-1], stat)


def _stat(column, width: int, stat: str) -> np.ndarray:
    """Reduce ``column(0) .. column(width-1)`` elementwise, one vectorised pass per offset."""
    if stat in ("sum", "mean", "std"):
        total = column(0).copy()
        for k in range(1, width):
            total += column(k)
        if stat == "sum":
            return total
        mean = total / width
        if stat == "mean":
            return mean
        dev = column(0) - mean
        squares = dev * dev
        for k in range(1, width):
            dev = column(k) - mean
            squares += dev * dev
        return np.sqrt(squares / width)
    if stat in ("max", "min"):
        pick = np.maximum if stat == "max" else np.minimum
        out = column(0).copy()
        for k in range(1, width):
            pick(out, column(k), out=out)
        return out
    raise ValueError(f"unknown rolling stat {stat!r}")


def shift(x: np.ndarray, periods: int) -> np.ndarray:
    """``x`` shifted forward by ``periods`` along the last axis, NaN-filled (like pandas shift)."""
    out = np.full(x.shape, np.nan)
    if periods < x.shape[-1]:
        out[..., periods:] = x[..., : x.shape[-1] - periods]
    return out
