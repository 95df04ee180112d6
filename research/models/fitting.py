"""Fit the LSTM on one time window of a factor frame; produce a deployable artefact.

:class:`ModelData` holds what every fit and prediction over one frame shares
(ordered frame, feature matrix, valid windows, labels, bar positions) so a
walk-forward run builds it once. :func:`fit_window` trains on the bars of one
train window only: the scaler is fitted on that window's rows, the last
``val_fraction`` of it (after a gap of the label horizon) is the early-stopping
slice, and no label reaching past the window is used. :func:`train_artifact`
fits the newest window for deployment. Not the walk-forward loop
(:mod:`research.models.walkforward`) and not inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.models.artifact import LSTMArtifact, reference_sample
from research.models.config import LSTMConfig
from research.models.dataset import (
    Scaler,
    bar_times,
    forward_returns,
    make_targets,
    ordered,
    sequence_windows,
    window_tensor,
)
from research.models.training import TrainResult, train_classifier
from signal_export.contract import timeframe_seconds
from signal_export.errors import BridgeError


class FitError(BridgeError, ValueError):
    """A window with nothing to train on; the message names the window."""


@dataclass
class ModelData:
    """Per-frame arrays shared by every fold (row order: symbol, datetime)."""

    frame: pd.DataFrame
    values: np.ndarray  # rows x features, raw
    end_rows: np.ndarray  # row index of each valid window's last bar
    window_rows: np.ndarray  # windows x seq_len row indices
    position: np.ndarray  # bar index on the regular time grid, per row
    forward_return: np.ndarray  # per row
    target: np.ndarray  # per row: 1, 0, 0.5 (neutral) or NaN
    evaluable: np.ndarray  # per row: a definite up/down label
    origin: pd.Timestamp  # bar time of grid position 0
    step: int  # bar length in seconds

    @classmethod
    def build(cls, feature_frame: pd.DataFrame, config: LSTMConfig,
              features: list[str] | None = None, labels: bool = True) -> ModelData:
        features = features or config.feature_columns()
        frame = ordered(feature_frame, [*features, *(["close"] if labels else [])])
        values = frame[features].to_numpy(dtype=np.float64)
        end_rows, window_rows = sequence_windows(frame, features, config.network.seq_len,
                                                 config.timeframe)
        t = bar_times(frame)
        t0 = int(t.min()) if len(t) else 0
        position = (t - t0) // timeframe_seconds(config.timeframe)
        if labels:
            fwd = forward_returns(frame, config.timeframe, config.labels.horizon)
            target, evaluable = make_targets(fwd, config.labels)
        else:
            fwd = target = np.full(len(frame), np.nan)
            evaluable = np.zeros(len(frame), bool)
        return cls(frame, values, end_rows, window_rows, position, fwd, target, evaluable,
                   pd.Timestamp(t0, unit="s", tz="UTC"), timeframe_seconds(config.timeframe))

    def windows_in(self, first: int, last: int) -> np.ndarray:
        """Indices into end_rows of windows whose last bar is in grid positions [first, last]."""
        pos = self.position[self.end_rows]
        return np.flatnonzero((pos >= first) & (pos <= last))

    def bar_time(self, position: int) -> pd.Timestamp:
        return self.origin + pd.Timedelta(seconds=int(position) * self.step)


@dataclass
class WindowFit:
    """A model fitted on one train window, with its scaler and training history."""

    result: TrainResult
    scaler: Scaler
    train_first: int
    train_last: int
    n_train: int
    n_val: int
    scaler_rows: np.ndarray


def fit_window(data: ModelData, config: LSTMConfig, first: int, last: int,
               description: str = "train") -> WindowFit:
    """Train on windows ending in grid positions [first, last]; labels must end by ``last``."""
    h, gap = config.labels.horizon, config.gap_bars
    label_last = last - h  # a label at position p uses the close at p + h: keep p + h <= last
    span = label_last - first + 1
    if span <= 0:
        raise FitError(f"{description}: train window [{first}, {last}] is shorter than the "
                       f"label horizon {h}")
    n_val_bars = int(round(span * config.train.val_fraction))
    val_first = label_last - n_val_bars + 1
    fit_last = val_first - 1 - gap  # the fit part's labels end before the validation slice
    if fit_last < first:
        fit_last, val_first = label_last, label_last + 1  # too short for a validation slice
    rows_in_window = (data.position >= first) & (data.position <= last)
    scaler_rows = np.flatnonzero(rows_in_window & np.isfinite(data.values).all(axis=1))
    if len(scaler_rows) == 0:
        raise FitError(f"{description}: no finite feature rows in train window [{first}, {last}]")
    scaler = Scaler.fit(data.values[scaler_rows])
    scaled = scaler.transform(data.values)
    labelled = np.isfinite(data.target[data.end_rows])

    def pick(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        idx = data.windows_in(lo, hi)
        idx = idx[labelled[idx]]
        return (window_tensor(scaled, data.window_rows[idx]),
                data.target[data.end_rows[idx]].astype(np.float32))

    x_fit, y_fit = pick(first, fit_last)
    x_val, y_val = pick(val_first, label_last)
    if len(x_fit) == 0:
        raise FitError(f"{description}: no labelled sequences in train window "
                       f"[{data.bar_time(first)}, {data.bar_time(last)}]")
    result = train_classifier(x_fit, y_fit, x_val, y_val, config.network, config.train,
                              description)
    return WindowFit(result, scaler, first, last, len(x_fit), len(x_val), scaler_rows)


def train_artifact(feature_frame: pd.DataFrame, config: LSTMConfig,
                   metrics: dict | None = None, train_bars: int | None = None) -> LSTMArtifact:
    """Fit the newest train window (``walk_forward.train_bars`` or ``train_bars`` bars,
    ending at the last bar) and package it as an artefact with ``metrics`` attached."""
    data = ModelData.build(feature_frame, config)
    if len(data.position) == 0:
        raise FitError("train_artifact: empty feature frame")
    last = int(data.position.max())
    bars = train_bars or config.walk_forward.train_bars
    first = max(0, last - bars + 1)
    fit = fit_window(data, config, first, last, "final")
    features = config.feature_columns()
    train_values = data.values[fit.scaler_rows]
    return LSTMArtifact(
        state_dict={k: v.clone() for k, v in fit.result.model.state_dict().items()},
        scaler=fit.scaler, feature_columns=features, config=config,
        data_range={"start": data.bar_time(first).isoformat(),
                    "end": data.bar_time(last).isoformat(),
                    "symbols": sorted(data.frame["symbol"].unique().tolist()),
                    "n_train": fit.n_train, "n_val": fit.n_val,
                    "best_epoch": fit.result.best_epoch},
        metrics=dict(metrics or {}),
        reference=reference_sample(train_values, features))
