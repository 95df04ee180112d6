"""Drift checks: PSI/KS per feature and hit-rate decay, reported as alerts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from lstm_data import planted_ohlcv

from research.models import DriftThresholds, build_feature_frame, drift_report, ks, psi
from research.models.drift import hit_rate_decay


def test_psi_and_ks_are_small_for_same_distribution_and_large_for_shifted():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 5000)
    same = rng.normal(0, 1, 2000)
    shifted = rng.normal(0.8, 1, 2000)
    assert psi(ref, same) < 0.05
    assert psi(ref, shifted) > 0.25
    assert ks(ref, same)[0] < 0.06
    assert ks(ref, shifted)[0] > 0.25
    assert np.isnan(psi(ref, np.array([np.nan])))


def test_drift_report_alerts_on_shifted_features_only(artifact, config):
    live = build_feature_frame(planted_ohlcv(n_bars=800, seed=21), config)
    calm = drift_report(artifact, live, context={"strategy_id": "lstm_demo"})
    assert not calm.drifted, calm.alerts
    assert {r["feature"] for r in calm.features} == set(artifact.feature_columns)
    hot = live.copy()
    hot["zscore_10"] = hot["zscore_10"] + 1.5
    report = drift_report(artifact, hot, context={"strategy_id": "lstm_demo"})
    flagged = {(a["kind"], a["feature"]) for a in report.alerts}
    assert flagged == {("feature_psi", "zscore_10"), ("feature_ks", "zscore_10")}
    assert all(a["strategy_id"] == "lstm_demo" and a["model_version"] == artifact.version
               for a in report.alerts)
    assert report.to_dict()["alerts"][0]["message"].startswith("feature 'zscore_10'")


def test_missing_live_feature_is_an_alert_not_a_skip(artifact, config):
    live = build_feature_frame(planted_ohlcv(n_bars=200, seed=21), config)
    report = drift_report(artifact, live.drop(columns=["rsi_14"]))
    assert [a["kind"] for a in report.alerts] == ["feature_missing"]


def test_hit_rate_decay_alerts_against_walk_forward_baseline(artifact):
    baseline = artifact.metrics["oos_hit_rate"]
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 400)
    good = np.where(rng.random(400) < baseline, label, 1 - label) * 0.8 + 0.1
    coin = rng.random(400)
    ok, ok_alerts = hit_rate_decay(label, good, baseline)
    bad, bad_alerts = hit_rate_decay(label, coin, baseline)
    assert not ok_alerts and abs(ok["live"] - baseline) < 0.08
    assert bad["decay"] > 0.15 and [a["kind"] for a in bad_alerts] == ["hit_rate_decay"]
    few, few_alerts = hit_rate_decay(label[:50], coin[:50], baseline, DriftThresholds())
    assert not few["enough_data"] and not few_alerts
    report = drift_report(artifact, pd.DataFrame({c: [0.0] for c in artifact.feature_columns}),
                          outcomes=pd.DataFrame({"label": label, "probability": coin}))
    assert "hit_rate_decay" in [a["kind"] for a in report.alerts]
