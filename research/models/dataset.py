"""Model inputs from a tidy factor frame: labels, per-symbol sequence windows, the scaler.

All arrays are aligned to the frame ordered by (symbol, datetime). A sequence
window ending at row ``i`` holds the ``seq_len`` rows of the SAME symbol that
end at ``i``, consecutive on the bar grid (a missing bar or a NaN feature
inside the window makes it invalid), so no window ever spans two symbols or a
gap. Windows are built for all symbols at once with vectorised index
arithmetic (no loop over bars or symbols). Labels look forward by bar time, not
by row, so missing bars never shift a label onto the wrong bar. The scaler is a
plain mean/std standardiser fitted by the caller on a training window only.
Not a trainer and not I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.factors.registry import compute_factors
from research.models.config import LabelConfig, LSTMConfig
from signal_export.contract import timeframe_seconds
from signal_export.errors import BridgeError


class DatasetError(BridgeError, ValueError):
    """Input that cannot be turned into model data; the message names the column or row."""


def build_feature_frame(ohlcv: pd.DataFrame, config: LSTMConfig,
                        keep: tuple[str, ...] = ("close",)) -> pd.DataFrame:
    """Factor frame for ``config.features`` (plus ``keep`` columns) from tidy OHLCV."""
    return compute_factors(ohlcv, config.features, on_missing="raise", keep=keep)


def ordered(frame: pd.DataFrame, columns: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """``frame`` checked for the key/needed columns and sorted by (symbol, datetime)."""
    for col in ("datetime", "symbol", *columns):
        if col not in frame.columns:
            raise DatasetError(f"input frame has no {col!r} column")
    if not isinstance(frame["datetime"].dtype, pd.DatetimeTZDtype):
        raise DatasetError("input frame 'datetime' must be tz-aware UTC")
    out = frame.sort_values(["symbol", "datetime"], kind="stable", ignore_index=True)
    dup = out.duplicated(["symbol", "datetime"]).to_numpy()
    if dup.any():
        row = out.iloc[int(np.flatnonzero(dup)[0])]
        raise DatasetError(f"duplicate bar symbol={row['symbol']!r} datetime={row['datetime']}")
    return out


def bar_times(frame: pd.DataFrame) -> np.ndarray:
    """Bar open times as int64 seconds since the epoch."""
    return frame["datetime"].to_numpy(dtype="datetime64[s]").astype(np.int64)


def forward_returns(frame: pd.DataFrame, timeframe: str, horizon: int) -> np.ndarray:
    """close[t + horizon bars] / close[t] - 1 of the same symbol; NaN where that bar is absent.

    ``frame`` must be ordered (see :func:`ordered`) and carry ``close``.
    """
    if "close" not in frame.columns:
        raise DatasetError("labels need a 'close' column in the input frame")
    step = timeframe_seconds(timeframe) * horizon
    codes = pd.factorize(frame["symbol"])[0].astype(np.int64)
    t = bar_times(frame)
    key = codes * (1 << 40) + t  # (symbol, time) packed; times are < 2**40 s
    target = key + step
    pos = np.searchsorted(key, target)
    pos_c = np.minimum(pos, len(key) - 1)
    found = (pos < len(key)) & (key[pos_c] == target) if len(key) else np.zeros(0, bool)
    close = frame["close"].to_numpy(dtype=np.float64)
    fwd = np.full(len(frame), np.nan)
    fwd[found] = close[pos_c[found]] / close[found] - 1.0
    return fwd


def make_targets(fwd: np.ndarray, labels: LabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """(target, evaluable): target 1/0 by sign, 0.5 for kept dead-zone rows, NaN if unusable.

    ``evaluable`` marks rows with a definite up/down label (used for AUC and hit rate).
    """
    with np.errstate(invalid="ignore"):
        dead = np.abs(fwd) <= labels.dead_zone
    target = np.where(fwd > 0, 1.0, 0.0)
    target[np.isnan(fwd)] = np.nan
    evaluable = ~np.isnan(fwd) & ~dead
    if labels.dead_zone_mode == "drop":
        target[dead] = np.nan
    else:
        target[dead & ~np.isnan(fwd)] = 0.5
    return target, evaluable


def sequence_windows(frame: pd.DataFrame, features: list[str], seq_len: int,
                     timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """(end_rows, window_rows): every valid window, ``window_rows[k]`` = its row indices.

    Valid: the ``seq_len`` rows are one symbol's consecutive bars (time span exactly
    ``seq_len - 1`` bars) and every feature in them is finite.
    """
    n = len(frame)
    if n < seq_len:
        return np.empty(0, np.int64), np.empty((0, seq_len), np.int64)
    values = frame[features].to_numpy(dtype=np.float64)
    finite = np.isfinite(values).all(axis=1)
    bad_before = np.r_[0, np.cumsum(~finite)]  # bad rows among the first k rows
    ends = np.arange(seq_len - 1, n)
    starts = ends - (seq_len - 1)
    codes = pd.factorize(frame["symbol"])[0]
    t = bar_times(frame)
    span = timeframe_seconds(timeframe) * (seq_len - 1)
    ok = ((codes[starts] == codes[ends]) & (t[ends] - t[starts] == span)
          & (bad_before[ends + 1] - bad_before[starts] == 0))
    ends = ends[ok]
    window_rows = ends[:, None] - np.arange(seq_len - 1, -1, -1)[None, :]
    return ends.astype(np.int64), window_rows.astype(np.int64)


@dataclass(frozen=True)
class Scaler:
    """Standardiser ``(x - mean) / scale``; fitted on a training window only."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        if len(values) == 0:
            raise DatasetError("cannot fit the scaler on an empty training window")
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        return cls(mean=mean, scale=np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Scaler:
        return cls(mean=np.asarray(data["mean"], float), scale=np.asarray(data["scale"], float))


def window_tensor(scaled: np.ndarray, window_rows: np.ndarray) -> np.ndarray:
    """(windows, seq_len, features) float32 array gathered from per-row scaled features."""
    return np.ascontiguousarray(scaled[window_rows], dtype=np.float32)
