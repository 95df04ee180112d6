"""LSTM signals: seed 001's decision rule, the probe/full/trail ladder, the 'lstm' generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lstm_data import planted_ohlcv

from research.models import build_feature_frame, save_artifact
from research.models.signals import (
    FLAT,
    FULL,
    PROBE,
    TRAIL,
    LadderParams,
    candidates,
    ladder_states,
    ladder_weights,
)
from research.signals import SIGNAL_COLUMNS, build_generator
from research.signals.base import GeneratorError
from signal_export.validate import validate_batch


def test_rsi_filter_blocks_entries_when_overbought_and_exits_when_oversold():
    prob = np.array([0.7, 0.7, 0.3, 0.3, 0.5])
    rsi = np.array([50.0, 65.0, 50.0, 35.0, 50.0])
    enter, exit_ = candidates(prob, rsi, 0.5, 60.0, 40.0)
    assert enter.tolist() == [True, False, False, False, False]
    assert exit_.tolist() == [False, False, True, False, False]


def test_ladder_walks_probe_full_trail_and_exits_on_trailing_drawdown():
    p = LadderParams()
    close = np.array([100.0, 100.1, 100.35, 100.6, 101.0, 100.6, 100.0, 100.0])
    enter = np.array([True, False, False, False, False, False, True, False])
    states = ladder_states(close, enter, np.zeros(8, bool), np.zeros(8, int), p)
    # +0.35% -> full; +0.6% -> trail; peak +1.0%, at +0.6% the drawdown is 40% -> flat;
    # a new entry candidate opens a fresh probe
    assert states.tolist() == [PROBE, PROBE, FULL, TRAIL, TRAIL, FLAT, PROBE, PROBE]
    assert ladder_weights(states, p).tolist() == [0.3, 0.3, 1.0, 1.0, 1.0, 0.0, 0.3, 0.3]


def test_ladder_stops_out_and_each_symbol_starts_flat():
    p = LadderParams()
    close = np.array([100.0, 99.6, 50.0, 50.0])
    enter = np.array([True, False, False, False])
    groups = np.array([0, 0, 1, 1])
    states = ladder_states(close, enter, np.zeros(4, bool), groups, p)
    assert states.tolist() == [PROBE, FLAT, FLAT, FLAT]  # -0.4% <= -probe_sl; new symbol flat


@pytest.fixture
def model_path(artifact, tmp_path):
    return str(save_artifact(artifact, tmp_path / "lstm.pt"))


def test_generator_builds_from_config_and_emits_contract_frame(model_path, artifact, config):
    gen = build_generator({"type": "lstm", "params": {
        "model_path": model_path, "strategy_id": "lstm_demo", "timeframe": "1m"}})
    frame = build_feature_frame(planted_ohlcv(n_bars=300, seed=5), config)
    signals = gen.generate(frame)
    assert tuple(signals.columns) == SIGNAL_COLUMNS
    assert len(signals) == 2 * (300 - 14 - 4)  # rsi_14 warm-up, then seq_len - 1 = 4
    assert (signals["version"] == artifact.version).all()
    assert signals["score"].between(0, 1).all()
    assert set(signals["weight"].unique()) <= {0.0, 0.3, 1.0}
    assert set(signals["pair"]) == {"BTC/USDT", "ETH/USDT"}
    batch = validate_batch(signals)  # the exporter's own validation accepts every row
    assert not batch.errors and len(batch.records) == len(signals)
    acts = signals.dropna(subset=["action"])
    assert len(acts) > 0 and set(acts["action"]) <= {"enter_long", "exit_long"}
    for _, per in signals.groupby("symbol"):  # an enter always opens a probe, an exit goes flat
        entered = per["action"] == "enter_long"
        assert (per.loc[entered, "weight"] == 0.3).all()
        assert (per.loc[per["action"] == "exit_long", "weight"] == 0.0).all()


def test_latest_mode_emits_one_row_per_pair_matching_history(model_path, config):
    base = {"model_path": model_path, "strategy_id": "lstm_demo", "timeframe": "1m"}
    frame = build_feature_frame(planted_ohlcv(n_bars=300, seed=5), config)
    history = build_generator({"type": "lstm", "params": base}).generate(frame)
    latest = build_generator({"type": "lstm", "params": {**base, "mode": "latest"}}
                             ).generate(frame)
    newest = history[history["ts"] == history["ts"].max()].reset_index(drop=True)
    assert len(latest) == 2
    pd.testing.assert_frame_equal(latest, newest)
    no_ladder = build_generator({"type": "lstm", "params": {
        **base, "mode": "latest", "ladder": False, "version": 7}}).generate(frame)
    np.testing.assert_allclose(no_ladder["score"], newest["score"], atol=1e-6)
    assert (no_ladder["version"] == 7).all()


def test_generator_config_errors_name_the_problem(model_path, tmp_path, config):
    from research.signals.registry import GeneratorConfigError
    with pytest.raises(GeneratorConfigError, match="threshold"):
        build_generator({"type": "lstm", "params": {"model_path": model_path, "strategy_id": "x",
                                                    "timeframe": "1m", "threshold": 2}})
    gen = build_generator({"type": "lstm", "params": {
        "model_path": str(tmp_path / "missing.pt"), "strategy_id": "x", "timeframe": "1m"}})
    with pytest.raises(GeneratorError, match="missing.pt"):
        gen.generate(build_feature_frame(planted_ohlcv(n_bars=50), config))


def test_latest_mode_with_too_little_context_is_an_error_not_an_empty_frame(model_path, config):
    frame = build_feature_frame(planted_ohlcv(n_bars=100, seed=5), config)
    newest_bars = frame.groupby("symbol").tail(3)  # seq_len is 5
    gen = build_generator({"type": "lstm", "params": {
        "model_path": model_path, "strategy_id": "x", "timeframe": "1m", "mode": "latest",
        "ladder": False}})
    with pytest.raises(GeneratorError, match="complete 5-bar sequence"):
        gen.generate(newest_bars)
