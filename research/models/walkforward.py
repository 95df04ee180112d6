"""Walk-forward training and out-of-sample evaluation of the LSTM classifier.

The bar-time grid (shared by all symbols) is cut into folds: a train window
(``rolling``: the last ``train_bars`` bars; ``expanding``: everything from the
first bar), then ``gap_bars`` (>= the label horizon) left out, then a test
window of ``test_bars``; the next fold starts ``step_bars`` later. Each fold
fits its own scaler and model on its train window only
(:func:`research.models.fitting.fit_window`) and predicts every valid sequence
of its test window, so each out-of-sample prediction depends only on data up
to its own bar. A shuffled-label control (``shuffle_labels=True``) trains on
permuted targets and is scored against the true ones. Not inference for live
use (see :mod:`research.models.inference`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from research.models.config import LSTMConfig, WalkForwardConfig
from research.models.dataset import window_tensor
from research.models.fitting import ModelData, fit_window
from research.models.inference import predict_windows
from research.models.metrics import classification_summary
from research.models.network import select_device
from signal_export.errors import BridgeError


class WalkForwardError(BridgeError, ValueError):
    """A walk-forward set-up that yields no fold; the message says why."""


@dataclass(frozen=True)
class Fold:
    """Grid positions (inclusive) of one fold's train and test windows."""

    index: int
    train_first: int
    train_last: int
    test_first: int
    test_last: int


def walk_forward_folds(n_bars: int, wf: WalkForwardConfig, gap: int) -> list[Fold]:
    """Folds over a grid of ``n_bars`` bars; every test bar is at least ``gap + 1`` bars
    after its fold's last train bar."""
    step = wf.step_bars or wf.test_bars
    folds: list[Fold] = []
    test_first = wf.train_bars + gap
    while test_first < n_bars:
        train_last = test_first - gap - 1
        train_first = 0 if wf.mode == "expanding" else train_last - wf.train_bars + 1
        folds.append(Fold(len(folds), train_first, train_last, test_first,
                          min(test_first + wf.test_bars - 1, n_bars - 1)))
        test_first += step
    return folds


@dataclass
class WalkForwardResult:
    """Out-of-sample predictions (one row per test sequence) and their metrics."""

    predictions: pd.DataFrame  # datetime, symbol, fold, probability, forward_return, label
    folds: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def run_walk_forward(feature_frame: pd.DataFrame, config: LSTMConfig, *,
                     shuffle_labels: bool = False) -> WalkForwardResult:
    """Train and test every fold; ``feature_frame`` needs the feature columns and ``close``."""
    data = ModelData.build(feature_frame, config)
    n_bars = int(data.position.max()) + 1 if len(data.position) else 0
    folds = walk_forward_folds(n_bars, config.walk_forward, config.gap_bars)
    if not folds:
        raise WalkForwardError(
            f"{n_bars} bars are too few for train_bars={config.walk_forward.train_bars} "
            f"+ gap {config.gap_bars} + one test bar")
    true_up = data.forward_return > 0
    if shuffle_labels:
        rng = np.random.default_rng(config.train.seed)
        labelled = np.flatnonzero(np.isfinite(data.target))
        data.target = data.target.copy()
        data.target[labelled] = data.target[rng.permutation(labelled)]
    device = select_device(config.train.device)
    parts, fold_rows = [], []
    for fold in folds:
        fit = fit_window(data, config, fold.train_first, fold.train_last, f"fold {fold.index}")
        idx = data.windows_in(fold.test_first, fold.test_last)
        x = window_tensor(fit.scaler.transform(data.values), data.window_rows[idx])
        prob = predict_windows(fit.result.model, x, device, amp=config.train.amp)
        rows = data.end_rows[idx]
        part = pd.DataFrame({
            "datetime": data.frame["datetime"].to_numpy()[rows],
            "symbol": data.frame["symbol"].to_numpy()[rows], "fold": fold.index,
            "probability": prob, "forward_return": data.forward_return[rows],
            "label": true_up[rows].astype(np.int8), "evaluable": data.evaluable[rows]})
        parts.append(part)
        ev = part[part["evaluable"]]
        fold_rows.append({**asdict(fold), "train_start": str(data.bar_time(fold.train_first)),
                          "test_start": str(data.bar_time(fold.test_first)),
                          "n_train": fit.n_train, "n_val": fit.n_val,
                          "best_epoch": fit.result.best_epoch,
                          **classification_summary(ev["label"].to_numpy(),
                                                   ev["probability"].to_numpy())})
    predictions = pd.concat(parts, ignore_index=True)
    ev = predictions[predictions["evaluable"]]
    overall = classification_summary(ev["label"].to_numpy(), ev["probability"].to_numpy())
    metrics = {"oos_auc": overall["auc"], "oos_hit_rate": overall["hit_rate"],
               "oos_n": overall["n"], "folds": len(folds), "shuffled_labels": shuffle_labels}
    return WalkForwardResult(predictions, fold_rows, metrics)
