"""Classification metrics for probability scores: ROC AUC and hit rate.

Rank-based AUC (the Mann-Whitney statistic, ties averaged) so no extra
dependency is needed; NaN when only one class is present. Not a backtest
metric: trading metrics live in :mod:`research.backtest.metrics`.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_auc(label: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative."""
    label = np.asarray(label, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(label.sum())
    n_neg = len(label) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def hit_rate(label: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> float:
    """Share of rows whose side (score > threshold -> up) matches the label; NaN if none."""
    label = np.asarray(label, dtype=bool)
    if len(label) == 0:
        return float("nan")
    return float(np.mean((np.asarray(score) > threshold) == label))


def classification_summary(label: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """``{"auc", "hit_rate", "n", "up_share"}`` for a set of evaluable rows."""
    label = np.asarray(label, dtype=bool)
    return {"auc": roc_auc(label, score), "hit_rate": hit_rate(label, score),
            "n": int(len(label)), "up_share": float(label.mean()) if len(label) else float("nan")}
