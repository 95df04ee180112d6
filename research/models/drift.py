"""Drift checks for a deployed LSTM model (seed 003's online-learning drift detection).

Two questions a monitor asks on a schedule: has the input distribution moved
away from the training window (per feature: Population Stability Index over
the reference's decile bins, and the two-sample Kolmogorov-Smirnov statistic),
and has the live hit rate decayed versus the walk-forward baseline (relative
drop above ``hit_rate_decay`` - seed 003 retrains at 15%)? Both return plain
data: a :class:`DriftReport` whose ``alerts`` (kind, feature, value,
threshold, message) a monitor turns into notifications. Pure functions over
arrays and frames; not an alert sender and not a retraining scheduler.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from research.models.artifact import LSTMArtifact
from research.models.metrics import hit_rate

PSI_EPS = 1e-4


def psi(reference: np.ndarray, live: np.ndarray, bins: int = 10) -> float:
    """Population Stability Index of ``live`` vs ``reference`` over reference-quantile bins.

    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
    """
    ref = np.asarray(reference, float)
    cur = np.asarray(live, float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    p = np.maximum(p / p.sum(), PSI_EPS)
    q = np.maximum(q / q.sum(), PSI_EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """(KS statistic, p-value) of the two samples; NaNs when either is empty."""
    ref = np.asarray(reference, float)
    cur = np.asarray(live, float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    res = ks_2samp(ref, cur)
    return float(res.statistic), float(res.pvalue)


@dataclass(frozen=True)
class DriftThresholds:
    """Alert limits; defaults: PSI 0.25 (significant shift), KS 0.2, hit-rate decay 15%."""

    psi: float = 0.25
    ks: float = 0.2
    hit_rate_decay: float = 0.15
    min_live_rows: int = 100


@dataclass
class DriftReport:
    """Per-feature drift, hit-rate decay and the alerts they raise."""

    features: list[dict[str, Any]] = field(default_factory=list)
    hit_rate: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)  # e.g. strategy_id, model version

    @property
    def drifted(self) -> bool:
        return bool(self.alerts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def feature_drift(reference: pd.DataFrame | dict[str, Any], live: pd.DataFrame,
                  features: list[str], thresholds: DriftThresholds = DriftThresholds()
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, alerts): PSI and KS per feature of ``live`` vs ``reference``.

    A feature missing from ``live`` is reported as an alert, never skipped silently.
    """
    rows, alerts = [], []
    for col in features:
        if col not in live.columns:
            alerts.append({"kind": "feature_missing", "feature": col, "value": None,
                           "threshold": None, "message": f"feature {col!r} absent from live data"})
            continue
        ref = np.asarray(reference[col], float)
        cur = live[col].to_numpy(dtype=float)
        value_psi = psi(ref, cur)
        stat, pvalue = ks(ref, cur)
        rows.append({"feature": col, "psi": value_psi, "ks": stat, "ks_pvalue": pvalue,
                     "n_live": int(np.isfinite(cur).sum())})
        if value_psi > thresholds.psi:
            alerts.append({"kind": "feature_psi", "feature": col, "value": value_psi,
                           "threshold": thresholds.psi,
                           "message": f"feature {col!r} PSI {value_psi:.3f} > {thresholds.psi}"})
        if stat > thresholds.ks:
            alerts.append({"kind": "feature_ks", "feature": col, "value": stat,
                           "threshold": thresholds.ks,
                           "message": f"feature {col!r} KS {stat:.3f} > {thresholds.ks}"})
    return rows, alerts


def hit_rate_decay(label: np.ndarray, probability: np.ndarray, baseline: float,
                   thresholds: DriftThresholds = DriftThresholds()
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, alerts): live hit rate vs the walk-forward ``baseline``.

    Decay = (baseline - live) / baseline; an alert above ``hit_rate_decay`` once at
    least ``min_live_rows`` realised labels exist (fewer: reported, no alert).
    """
    label = np.asarray(label)
    live = hit_rate(label, probability)
    decay = (baseline - live) / baseline if baseline and np.isfinite(live) else float("nan")
    summary = {"baseline": baseline, "live": live, "decay": decay, "n_live": int(len(label)),
               "enough_data": len(label) >= thresholds.min_live_rows}
    alerts = []
    if summary["enough_data"] and decay > thresholds.hit_rate_decay:
        alerts.append({"kind": "hit_rate_decay", "feature": None, "value": decay,
                       "threshold": thresholds.hit_rate_decay,
                       "message": f"live hit rate {live:.3f} is {decay:.1%} below the "
                                  f"walk-forward baseline {baseline:.3f}"})
    return summary, alerts


def drift_report(artifact: LSTMArtifact, live_features: pd.DataFrame,
                 outcomes: pd.DataFrame | None = None,
                 thresholds: DriftThresholds = DriftThresholds(),
                 context: dict[str, Any] | None = None) -> DriftReport:
    """Drift of ``live_features`` vs the artefact's training reference, and, given
    ``outcomes`` (columns ``label`` 0/1 and ``probability``), hit-rate decay vs the
    artefact's ``metrics["oos_hit_rate"]``."""
    rows, alerts = feature_drift(artifact.reference, live_features, artifact.feature_columns,
                                 thresholds)
    report = DriftReport(features=rows, alerts=alerts,
                         context={"model_version": artifact.version, **(context or {})})
    if outcomes is not None:
        baseline = artifact.metrics.get("oos_hit_rate")
        if baseline is None:
            raise ValueError("drift_report: the artefact has no metrics['oos_hit_rate'] baseline "
                             "(train it with walk-forward metrics attached)")
        summary, hr_alerts = hit_rate_decay(outcomes["label"].to_numpy(),
                                            outcomes["probability"].to_numpy(), float(baseline),
                                            thresholds)
        report.hit_rate, report.alerts = summary, report.alerts + hr_alerts
    for alert in report.alerts:
        alert.update({k: v for k, v in report.context.items() if k not in alert})
    return report
