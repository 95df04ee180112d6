"""No look-ahead: predictions never depend on data after their bar; runs are deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lstm_data import planted_ohlcv, tiny_config

from research.models import (
    WalkForwardConfig,
    build_feature_frame,
    predict_history,
    run_walk_forward,
    walk_forward_folds,
)
from research.models.dataset import forward_returns, make_targets, ordered, sequence_windows


def perturbed_after(ohlcv: pd.DataFrame, cutoff: pd.Timestamp, seed: int = 1) -> pd.DataFrame:
    """Same bars, with every price after ``cutoff`` scrambled (still valid OHLC)."""
    out = ohlcv.copy()
    later = out["datetime"] > cutoff
    factor = np.random.default_rng(seed).uniform(0.9, 1.1, int(later.sum()))
    for col in ("open", "high", "low", "close"):
        out.loc[later, col] = out.loc[later, col].to_numpy() * factor
    out.loc[later, "volume"] = out.loc[later, "volume"].to_numpy()[::-1]
    return out


def test_changing_data_after_a_prediction_never_changes_it_in_walk_forward(config):
    ohlcv = planted_ohlcv(n_bars=1300, seed=3)
    cutoff = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=1050)  # fold 1 test
    base = run_walk_forward(build_feature_frame(ohlcv, config), config).predictions
    moved = run_walk_forward(build_feature_frame(perturbed_after(ohlcv, cutoff), config),
                             config).predictions
    keys = ["datetime", "symbol"]
    before = base[base["datetime"] <= cutoff].merge(
        moved[moved["datetime"] <= cutoff], on=keys, suffixes=("", "_moved"))
    assert len(before) == (base["datetime"] <= cutoff).sum() > 300
    assert before["fold"].nunique() == 2  # the cut falls inside the second fold's test window
    np.testing.assert_array_equal(before["probability"], before["probability_moved"])
    after = base[base["datetime"] > cutoff].merge(moved, on=keys, suffixes=("", "_moved"))
    assert not np.array_equal(after["probability"], after["probability_moved"])  # test has teeth


def test_changing_data_after_a_bar_never_changes_its_history_prediction(artifact, config):
    ohlcv = planted_ohlcv(n_bars=400, seed=11)
    cutoff = ohlcv["datetime"].iloc[250]
    base = predict_history(artifact, build_feature_frame(ohlcv, config))
    moved = predict_history(artifact, build_feature_frame(perturbed_after(ohlcv, cutoff), config))
    b, m = base[base["datetime"] <= cutoff], moved[moved["datetime"] <= cutoff]
    np.testing.assert_array_equal(b["probability"].to_numpy(), m["probability"].to_numpy())
    assert not np.array_equal(base["probability"], moved["probability"])


def test_same_seed_gives_identical_predictions_and_other_seed_differs(planted_features):
    small = planted_features[planted_features["datetime"]
                             < pd.Timestamp("2026-01-01 15:00", tz="UTC")]
    cfg = tiny_config(walk_forward={"train_bars": 500, "test_bars": 200})
    first = run_walk_forward(small, cfg).predictions["probability"].to_numpy()
    again = run_walk_forward(small, cfg).predictions["probability"].to_numpy()
    np.testing.assert_array_equal(first, again)
    other = tiny_config(walk_forward={"train_bars": 500, "test_bars": 200},
                        train={**cfg.train.model_dump(), "seed": 1})
    assert not np.array_equal(first, run_walk_forward(small, other).predictions["probability"])


@pytest.mark.parametrize("mode", ["rolling", "expanding"])
def test_folds_keep_a_gap_of_at_least_the_horizon(mode):
    wf = WalkForwardConfig(mode=mode, train_bars=100, test_bars=30, step_bars=30)
    folds = walk_forward_folds(400, wf, gap=5)
    assert len(folds) == 10
    for f in folds:
        assert f.test_first - f.train_last - 1 == 5
        assert f.train_first == (0 if mode == "expanding" else f.train_last - 99)
    assert folds[-1].test_last == 399


def test_gap_shorter_than_horizon_is_rejected():
    with pytest.raises(ValueError, match="gap_bars=1 is shorter than the label horizon 3"):
        tiny_config(labels={"horizon": 3}, walk_forward={"train_bars": 50, "gap_bars": 1})


def test_sequences_never_span_two_symbols_or_a_missing_bar():
    t = pd.date_range("2026-01-01", periods=6, freq="1min", tz="UTC")
    frame = pd.DataFrame({
        "datetime": list(t) + list(t.delete(3)),  # ETH lacks its 4th bar
        "symbol": ["BINANCE:BTCUSDT"] * 6 + ["BINANCE:ETHUSDT"] * 5,
        "f": np.arange(11.0), "close": np.arange(1.0, 12.0)})
    frame.loc[1, "f"] = np.nan  # BTC bar 2 has no feature value
    ends, rows = sequence_windows(ordered(frame), ["f"], 3, "1m")
    # BTC: windows holding the NaN row 1 are dropped; rows 6-7 (ETH) never join BTC rows;
    # ETH: only its first three bars are consecutive (minute 3 is missing)
    assert ends.tolist() == [4, 5, 8]
    assert rows.tolist() == [[2, 3, 4], [3, 4, 5], [6, 7, 8]]


def test_labels_look_forward_by_bar_time_with_dead_zone():
    t = pd.date_range("2026-01-01", periods=4, freq="1min", tz="UTC")
    frame = ordered(pd.DataFrame({"datetime": t.delete(2), "symbol": "BINANCE:BTCUSDT",
                                  "close": [100.0, 100.05, 99.0]}))
    fwd = forward_returns(frame, "1m", 1)
    assert np.isclose(fwd[0], 0.0005) and np.isnan(fwd[1]) and np.isnan(fwd[2])  # gap, end
    cfg = tiny_config(labels={"horizon": 1, "dead_zone": 0.001, "dead_zone_mode": "drop"})
    target, evaluable = make_targets(np.array([0.0005, -0.01, 0.02, np.nan]), cfg.labels)
    assert np.isnan(target[0]) and target[1] == 0 and target[2] == 1 and np.isnan(target[3])
    assert evaluable.tolist() == [False, True, True, False]
    neutral = tiny_config(labels={"dead_zone": 0.001, "dead_zone_mode": "neutral"})
    assert make_targets(np.array([0.0005]), neutral.labels)[0].tolist() == [0.5]
