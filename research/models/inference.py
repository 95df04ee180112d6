"""LSTM probabilities from a trained artefact: over history, or the newest bar of every pair.

:func:`predict_history` scores every valid sequence of a factor frame (for
backtests); :func:`predict_latest` scores only each symbol's newest bar, all
symbols in one batch (for the scheduled 1m job: pass the last ``seq_len`` +
factor warm-up bars). Both check the frame's feature columns against the
artefact first and use the artefact's own scaler. A symbol whose newest
window is incomplete (missing bar, NaN feature) gets no row and is listed in
``result.attrs["skipped"]``. Not signal logic (see :mod:`research.models.signals`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from research.models.artifact import LSTMArtifact
from research.models.dataset import ordered, sequence_windows, window_tensor
from research.models.network import LSTMClassifier, select_device

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("datetime", "symbol", "probability")


@torch.no_grad()
def predict_windows(model: LSTMClassifier, x: np.ndarray, device: torch.device | None = None,
                    amp: bool = False, batch_size: int = 8192) -> np.ndarray:
    """Probabilities for (n, seq_len, features) float32 windows, in batches."""
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    out = np.empty(len(x), dtype=np.float64)
    use_amp = amp and device.type == "cuda"
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i:i + batch_size]).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            out[i:i + batch_size] = model.predict_proba(xb).cpu().numpy()
    return out


def _predict(artifact: LSTMArtifact, frame: pd.DataFrame, ends: np.ndarray,
             window_rows: np.ndarray, device: str) -> pd.DataFrame:
    values = frame[artifact.feature_columns].to_numpy(dtype=np.float64)
    x = window_tensor(artifact.scaler.transform(values), window_rows)
    prob = predict_windows(artifact.model, x, select_device(device),
                           amp=artifact.config.train.amp)
    return pd.DataFrame({"datetime": frame["datetime"].to_numpy()[ends],
                         "symbol": frame["symbol"].to_numpy()[ends], "probability": prob})


def predict_history(artifact: LSTMArtifact, feature_frame: pd.DataFrame,
                    device: str = "auto") -> pd.DataFrame:
    """(datetime, symbol, probability) for every valid sequence, ordered by symbol, time."""
    artifact.check_features(feature_frame.columns)
    frame = ordered(feature_frame, artifact.feature_columns)
    ends, rows = sequence_windows(frame, artifact.feature_columns,
                                  artifact.config.network.seq_len, artifact.config.timeframe)
    return _predict(artifact, frame, ends, rows, device)


def predict_latest(artifact: LSTMArtifact, feature_frame: pd.DataFrame,
                   device: str = "auto") -> pd.DataFrame:
    """One row per symbol for its newest bar, all symbols in one batch."""
    artifact.check_features(feature_frame.columns)
    seq_len = artifact.config.network.seq_len
    frame = ordered(feature_frame, artifact.feature_columns)
    tail = frame.groupby("symbol", sort=False).tail(seq_len).reset_index(drop=True)
    ends, rows = sequence_windows(tail, artifact.feature_columns, seq_len,
                                  artifact.config.timeframe)
    is_last = np.r_[tail["symbol"].to_numpy()[1:] != tail["symbol"].to_numpy()[:-1], True]
    keep = is_last[ends]
    ends, rows = ends[keep], rows[keep]
    result = _predict(artifact, tail, ends, rows, device)
    skipped = sorted(set(tail["symbol"]) - set(result["symbol"]))
    if skipped:
        log.warning("no complete newest sequence", extra={"symbols": skipped})
    result.attrs["skipped"] = skipped
    return result
