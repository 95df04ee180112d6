"""Each generator on constructed data with a known answer; outputs pass the contract validator."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from signal_data import BTC, ETH, SOL, XRP, assert_contract_valid, at, frame

from research.signals import SIGNAL_COLUMNS, build_generator
from research.signals.registry import GeneratorConfigError

LABEL = {"strategy_id": "test_strategy", "timeframe": "1h"}


def _events(signals: pd.DataFrame) -> list[tuple]:
    rows = signals[signals["action"].notna()]
    return list(zip(rows["symbol"], rows["ts"], rows["action"], strict=True))


# --- threshold --------------------------------------------------------------

RSI = [50.0, 25.0, 20.0, 40.0, 75.0, 80.0, 25.0]


def test_threshold_state_mode_emits_only_changes():
    gen = build_generator({"type": "threshold", "params": {
        **LABEL, "enter": "rsi_14 < 30", "exit": "rsi_14 > 70"}})
    out = gen.generate(frame({BTC: {"rsi_14": RSI}, ETH: {"rsi_14": [80.0] * 7}}))
    assert tuple(out.columns[:len(SIGNAL_COLUMNS)]) == SIGNAL_COLUMNS
    assert _events(out) == [(BTC, at(1), "enter_long"), (BTC, at(4), "exit_long"),
                            (BTC, at(6), "enter_long")]
    assert out["pair"].eq("BTC/USDT").all() and out["strategy_id"].eq("test_strategy").all()
    assert "rsi_14 < 30" in out["note"].iloc[0]
    assert_contract_valid(out)


def test_threshold_events_mode_and_enter_only_rule():
    f = frame({BTC: {"rsi_14": RSI}})
    events = build_generator({"type": "threshold", "params": {
        **LABEL, "enter": "rsi_14 < 30", "exit": "rsi_14 > 70", "mode": "events"}}).generate(f)
    assert [(t, a) for _, t, a in _events(events)] == [
        (at(1), "enter_long"), (at(2), "enter_long"), (at(4), "exit_long"), (at(5), "exit_long"),
        (at(6), "enter_long")]
    hold = build_generator({"type": "threshold", "params": {
        **LABEL, "enter": "rsi_14 < 30"}}).generate(f)
    assert [(t, a) for _, t, a in _events(hold)] == [
        (at(1), "enter_long"), (at(3), "exit_long"), (at(6), "enter_long")]


def test_threshold_exit_wins_when_both_rules_fire():
    f = frame({BTC: {"x": [1.0, 6.0, 1.0]}})
    out = build_generator({"type": "threshold", "params": {
        **LABEL, "enter": "x > 0", "exit": "x > 5"}}).generate(f)
    assert [(t, a) for _, t, a in _events(out)] == [
        (at(0), "enter_long"), (at(1), "exit_long"), (at(2), "enter_long")]


# --- rank ---------------------------------------------------------------------

def _rank_frame() -> pd.DataFrame:
    return frame({BTC: {"mom": [4.0, 1.0]}, ETH: {"mom": [3.0, np.nan]},
                  SOL: {"mom": [2.0, 3.0]}, XRP: {"mom": [1.0, 2.0]}})


def test_rank_top_n_long_rest_flat_with_equal_weights():
    out = build_generator({"type": "rank", "params": {
        **LABEL, "factor": "mom", "top_n": 2, "actions": True}}).generate(_rank_frame())
    got = {(s, t): (w, sc) for s, t, w, sc in zip(out["symbol"], out["ts"], out["weight"],
                                                  out["score"], strict=True)}
    assert got == {
        (BTC, at(0)): (0.5, 1.0), (ETH, at(0)): (0.5, 0.75), (SOL, at(0)): (0.0, 0.5),
        (XRP, at(0)): (0.0, 0.25),
        (SOL, at(1)): (0.5, 1.0), (XRP, at(1)): (0.5, pytest.approx(2 / 3)),
        (BTC, at(1)): (0.0, pytest.approx(1 / 3)),
    }
    assert sorted(_events(out)) == sorted([
        (BTC, at(0), "enter_long"), (ETH, at(0), "enter_long"), (BTC, at(1), "exit_long"),
        (SOL, at(1), "enter_long"), (XRP, at(1), "enter_long")])
    assert_contract_valid(out)


def test_rank_ascending_and_score_weighting():
    out = build_generator({"type": "rank", "params": {
        **LABEL, "factor": "mom", "top_n": 2, "ascending": True, "weighting": "score"}}
    ).generate(_rank_frame())
    first = out[out["ts"] == at(0)].set_index("symbol")
    assert first.loc[XRP, "score"] == 1.0 and first.loc[SOL, "score"] == 0.75
    assert first.loc[XRP, "weight"] == pytest.approx(1.0 / 1.75)
    assert first.loc[SOL, "weight"] == pytest.approx(0.75 / 1.75)
    assert first.loc[[BTC, ETH], "weight"].eq(0.0).all()
    assert out.groupby("ts")["weight"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert out["action"].isna().all()


def _futures(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(symbol=f["symbol"] + ".USDT")  # BINANCE:BTCUSDT.USDT = BTC/USDT:USDT


def test_rank_short_n_shorts_the_worst_with_a_book_of_its_own_and_risk_on_held_rows():
    out = build_generator({"type": "rank", "params": {
        **LABEL, "factor": "mom", "top_n": 1, "short_n": 2, "actions": True, "leverage": 2.0,
        "stop_loss": 0.05}}).generate(_futures(_rank_frame()))
    fut = {s: s + ".USDT" for s in (BTC, ETH, SOL, XRP)}
    got = {(s, t): w for s, t, w in zip(out["symbol"], out["ts"], out["weight"], strict=True)}
    assert got == {(fut[BTC], at(0)): 1.0, (fut[ETH], at(0)): 0.0, (fut[SOL], at(0)): -0.5,
                   (fut[XRP], at(0)): -0.5,
                   (fut[SOL], at(1)): 1.0, (fut[XRP], at(1)): -0.5, (fut[BTC], at(1)): -0.5}
    assert sorted(_events(out)) == sorted([
        (fut[BTC], at(0), "enter_long"), (fut[SOL], at(0), "enter_short"),
        (fut[XRP], at(0), "enter_short"), (fut[BTC], at(1), "enter_short"),
        (fut[SOL], at(1), "enter_long")])  # flips are the new side's entry
    held = out["weight"] != 0
    assert out.loc[held, "leverage"].eq(2.0).all() and out.loc[~held, "leverage"].isna().all()
    assert out.loc[held, "stop_loss"].eq(0.05).all() and "take_profit" not in out
    assert_contract_valid(out)


def test_rank_short_n_needs_futures_symbols():
    gen = build_generator({"type": "rank", "params": {**LABEL, "factor": "mom", "top_n": 1,
                                                      "short_n": 1}})
    with pytest.raises(ValueError, match="futures symbols.*BINANCE:BTCUSDT'"):
        gen.generate(_rank_frame())


def test_rank_long_only_frames_keep_the_contract_columns():
    out = build_generator({"type": "rank", "params": {**LABEL, "factor": "mom", "top_n": 2}}
                          ).generate(_rank_frame())
    assert tuple(out.columns) == SIGNAL_COLUMNS


# --- ensemble -----------------------------------------------------------------

def _members(w1: float, w2: float) -> list[dict]:
    return [{"generator": {"type": "threshold", "params": {"enter": "x > 0"}}, "weight": w1},
            {"generator": {"type": "threshold", "params": {"enter": "y > 0"}}, "weight": w2}]


@pytest.mark.parametrize(("method", "weights", "scores", "events"), [
    ("weighted_average", (1, 1), [0.5, 1.0, 0.5, 0.0], [(1, "enter_long"), (2, "exit_long")]),
    ("weighted_average", (3, 1), [0.75, 1.0, 0.25, 0.0], [(0, "enter_long"), (2, "exit_long")]),
    ("vote", (1, 1), [0.5, 1.0, 0.5, 0.0], [(1, "enter_long"), (2, "exit_long")]),
])
def test_ensemble_combines_members(method, weights, scores, events):
    f = frame({BTC: {"x": [1.0, 1.0, 0.0, 0.0], "y": [0.0, 1.0, 1.0, 0.0]}})
    out = build_generator({"type": "ensemble", "params": {
        **LABEL, "method": method, "members": _members(*weights)}}).generate(f)
    assert out["score"].tolist() == pytest.approx(scores)
    assert [(t, a) for _, t, a in _events(out)] == [(at(i), a) for i, a in events]
    assert_contract_valid(out)


def test_ensemble_uses_member_scores_when_they_emit_no_actions():
    f = frame({BTC: {"m": [2.0, 1.0]}, ETH: {"m": [1.0, 2.0]}})
    out = build_generator({"type": "ensemble", "params": {**LABEL, "members": [
        {"generator": {"type": "rank", "params": {"factor": "m", "top_n": 1}}}]}}).generate(f)
    by = out.set_index(["symbol", "ts"])["score"]
    assert by[(BTC, at(0))] == 1.0 and by[(ETH, at(0))] == 0.5
    assert sorted(_events(out)) == sorted(
        [(BTC, at(0), "enter_long"), (BTC, at(1), "exit_long"), (ETH, at(1), "enter_long")])


# --- trap -----------------------------------------------------------------------

def _bars(closes: list[float], highs: list[float], lows: list[float]) -> dict[str, list[float]]:
    return {"close": closes, "high": highs, "low": lows}


FLAT = ([100.0] * 5, [101.0] * 5, [99.0] * 5)


def _trap_frame() -> pd.DataFrame:
    c, h, lo = FLAT
    return frame({
        # break below 99 by > 1% at bar 5, reclaimed (close > 99) at bar 7, within 3 bars
        BTC: _bars(c + [97.0, 98.0, 99.5, 99.6], h + [99.0, 98.5, 99.8, 99.9],
                   lo + [96.5, 97.0, 99.0, 99.2]),
        # same break, but the reclaim comes 4 bars later: timed out, no signal
        ETH: _bars(c + [97.0, 97.5, 97.5, 97.5, 99.5], h + [99.0, 98.0, 98.0, 98.0, 99.8],
                   lo + [96.5, 97.0, 97.0, 97.0, 99.0]),
        # break above 101 at bar 5, back below 101 at bar 6: a failed up-breakout
        SOL: _bars(c + [103.0, 100.5], h + [103.5, 103.0], lo + [101.0, 100.0]),
    })


def test_trap_detects_reclaims_within_the_timeout_with_stop_and_target():
    gen = build_generator({"type": "trap", "params": {
        **LABEL, "window": 5, "threshold_bps": 100, "timeout_bars": 3, "sl_buffer_bps": 10,
        "rr_ratio": 2.0}})
    out = gen.generate(_trap_frame())
    assert sorted(_events(out)) == sorted([(BTC, at(7), "enter_long"), (SOL, at(6), "exit_long")])
    btc = out[out["symbol"] == BTC].iloc[0]
    stop = 96.5 - 99.5 * 10 / 1e4
    assert btc["extra.entry_price"] == 99.5
    assert btc["extra.stop_loss"] == pytest.approx(stop)
    assert btc["extra.take_profit"] == pytest.approx(99.5 + (99.5 - stop) * 2)
    assert btc["extra.breakout_level"] == 99.0
    note = json.loads(btc["note"])
    assert note["trap"] == "down" and note["breakout_ts"] == at(5).isoformat()
    sol = out[out["symbol"] == SOL].iloc[0]
    sol_stop = 103.5 + 100.5 * 10 / 1e4
    assert sol["extra.stop_loss"] == pytest.approx(sol_stop)
    assert sol["extra.take_profit"] == pytest.approx(100.5 - (sol_stop - 100.5) * 2)
    assert_contract_valid(out)


def test_trap_up_traps_can_be_ignored_and_symbols_are_independent():
    params = {**LABEL, "window": 5, "threshold_bps": 100, "timeout_bars": 3,
              "up_trap_action": "none"}
    full = build_generator({"type": "trap", "params": params}).generate(_trap_frame())
    assert _events(full) == [(BTC, at(7), "enter_long")]
    alone = build_generator({"type": "trap", "params": params}).generate(
        _trap_frame().query("symbol == @BTC"))
    pd.testing.assert_frame_equal(alone, full)


def test_trap_up_trap_as_a_short_carries_its_stop_and_target_as_fractions():
    params = {**LABEL, "window": 5, "threshold_bps": 100, "timeout_bars": 3,
              "sl_buffer_bps": 10, "rr_ratio": 2.0, "up_trap_action": "enter_short",
              "risk_fields": True}
    out = build_generator({"type": "trap", "params": params}).generate(
        _futures(_trap_frame()))
    assert sorted(_events(out)) == sorted([(BTC + ".USDT", at(7), "enter_long"),
                                           (SOL + ".USDT", at(6), "enter_short")])
    sol = out[out["symbol"] == SOL + ".USDT"].iloc[0]
    stop = 103.5 + 100.5 * 10 / 1e4  # above the entry for a short
    assert sol["stop_loss"] == pytest.approx(stop / 100.5 - 1)
    assert sol["take_profit"] == pytest.approx((stop - 100.5) * 2 / 100.5)
    btc = out[out["symbol"] == BTC + ".USDT"].iloc[0]
    long_stop = 96.5 - 99.5 * 10 / 1e4
    assert btc["stop_loss"] == pytest.approx(1 - long_stop / 99.5)
    assert btc["take_profit"] == pytest.approx((99.5 - long_stop) * 2 / 99.5)
    assert_contract_valid(out)
    with pytest.raises(ValueError, match="enter_short needs futures symbols"):
        build_generator({"type": "trap", "params": params}).generate(_trap_frame())


def test_trap_risk_fields_leave_an_exit_without_them():
    params = {**LABEL, "window": 5, "threshold_bps": 100, "timeout_bars": 3,
              "risk_fields": True}
    out = build_generator({"type": "trap", "params": params}).generate(_trap_frame())
    exits = out[out["action"] == "exit_long"]
    assert len(exits) == 1 and exits[["stop_loss", "take_profit"]].isna().all(axis=None)
    assert out.loc[out["action"] == "enter_long", "stop_loss"].notna().all()
    assert_contract_valid(out)


def test_trap_threshold_filters_small_breaks():
    params = {**LABEL, "window": 5, "threshold_bps": 500, "timeout_bars": 3}
    out = build_generator({"type": "trap", "params": params}).generate(_trap_frame())
    assert out.empty and "extra.stop_loss" in out.columns


# --- registry -------------------------------------------------------------------

@pytest.mark.parametrize(("config", "message"), [
    ({"type": "magic", "params": {}}, "'magic' is unknown"),
    ({"type": "trap", "params": {**LABEL, "treshold_bps": 5}}, "treshold_bps"),
    ({"type": "trap", "params": {"timeframe": "1h"}}, "strategy_id"),
    ({"type": "trap", "params": {**LABEL, "timeframe": "7m"}}, "timeframe"),
    ({"type": "threshold", "params": {**LABEL, "enter": "x.y > 1"}}, "Attribute"),
    ({"type": "rank", "params": {**LABEL, "factor": "m", "top_n": 0}}, "top_n"),
    ({"type": "ensemble", "params": {**LABEL, "members": [
        {"generator": {"type": "nope"}}]}}, "member 0"),
    ({"kind": "trap"}, "unknown key"),
])
def test_bad_generator_config_names_the_problem(config, message):
    with pytest.raises((GeneratorConfigError, ValueError), match=message):
        build_generator(config)


def test_generator_config_round_trips_through_json():
    config = {"type": "ensemble", "params": {**LABEL, "method": "vote", "members": _members(1, 1)}}
    gen = build_generator(json.loads(json.dumps(config)))
    f = frame({BTC: {"x": [1.0, 1.0], "y": [1.0, 0.0]}})
    assert _events(gen.generate(f)) == [(BTC, at(0), "enter_long"), (BTC, at(1), "exit_long")]


def test_missing_factor_column_is_a_clear_error():
    gen = build_generator({"type": "rank", "params": {**LABEL, "factor": "mom", "top_n": 1}})
    with pytest.raises(ValueError, match="'mom'"):
        gen.generate(frame({BTC: {"close": [1.0]}}))
