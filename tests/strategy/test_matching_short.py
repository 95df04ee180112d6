"""The decision rule with shorts (docs/DECISION_RULE.md, docs/LONG_SHORT.md), in-process.

Fast unit tests of :func:`match_signals` on long/short/flat signals, a property test that
the sided event loop is the long-only rule on long-only input, and the futures helpers the
strategy hooks call (leverage cap, the stop's stoploss value, the target price, the entry
signal's risk values). Freqtrade itself runs them in test_decision_parity_futures.py and
test_dry_run_futures.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signal_export.consumer.logic import ExternalSignalLogic, apply_entry, apply_exit
from signal_export.consumer.matching import (
    EXIT_LONG,
    MatchRules,
    _dedupe_debounce,
    _sided_events,
    match_signals,
)
from signal_export.consumer.normalise import normalise_signals

H = timedelta(hours=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PAIR = "BTC/USDT:USDT"


def candles(n: int = 12) -> pd.DataFrame:
    dates = pd.date_range(T0, periods=n, freq="1h", tz="UTC").astype("datetime64[ms, UTC]")
    return pd.DataFrame({"date": dates, "open": np.arange(n, dtype=float) + 100.0})


def sig(i: int, action: str | None = None, **fields) -> dict:
    return {"pair": PAIR, "strategy_id": "s1", "ts": T0 + i * H, "timeframe": "1h",
            **({"action": action} if action else {}), **fields}


def run(docs: list[dict], rules: MatchRules | None = None, **extra: list[float]):
    """Match ``docs``; ``extra``: columns the normalised frame gets (weights < 0, risk)."""
    signals = normalise_signals(docs, pairs={PAIR})
    assert len(signals) == len(docs)
    for name, values in extra.items():
        signals[name] = np.asarray(values, dtype=float)
    return match_signals(candles(), signals, rules or MatchRules(timeframe="1h"))


def rows(result, col: str) -> list[int]:
    return np.flatnonzero(result.frame[col].to_numpy()).tolist()


def test_long_only_input_keeps_exactly_the_long_only_columns():
    res = run([sig(1, "enter_long"), sig(4, "exit_long")])
    assert list(res.frame.columns) == ["enter_long", "exit_long", "enter_tag", "exit_tag",
                                       "ext_weight"]


def test_short_enters_and_exits_by_the_same_rule():
    res = run([sig(1, "enter_short"), sig(2, "enter_short"), sig(4, "exit_short"),
               sig(5, "exit_short")])
    assert rows(res, "enter_short") == [1] and rows(res, "exit_short") == [4]
    assert rows(res, "enter_long") == [] and rows(res, "exit_long") == []
    assert res.counts["deduped"] == 2
    assert res.frame["enter_tag"].iloc[1] == "ext:s1:v0"


def test_flip_exits_and_enters_on_one_row():
    res = run([sig(1, "enter_long"), sig(3, "enter_short"), sig(6, "enter_long")])
    assert rows(res, "enter_long") == [1, 6] and rows(res, "exit_long") == [3]
    assert rows(res, "enter_short") == [3] and rows(res, "exit_short") == [6]
    assert res.frame["exit_tag"].iloc[3] == res.frame["enter_tag"].iloc[3]


def test_exit_of_the_side_not_held_is_deduped_and_weight_zero_exits_either_side():
    res = run([sig(1, "enter_short"), sig(2, "exit_long"), sig(3, weight=0.0),
               sig(5, "enter_long"), sig(7, weight=0.0)])
    assert rows(res, "exit_long") == [7] and rows(res, "exit_short") == [3]
    assert res.counts["deduped"] == 1


def test_negative_weight_enters_short_with_its_weight():
    res = run([sig(2, weight=0.5), sig(4, weight=0.25)], weight=[-0.5, 0.25])  # < 0: futures
    assert rows(res, "enter_short") == [2] and rows(res, "enter_long") == [4]
    assert res.frame["ext_weight"].iloc[2] == -0.5
    assert res.frame["enter_tag"].iloc[2].endswith(":w-0.5")


def test_min_hold_debounces_a_whole_flip_and_cooldown_an_entry():
    rules = MatchRules(timeframe="1h", min_hold_bars=3)
    res = run([sig(1, "enter_long"), sig(2, "enter_short"), sig(5, "enter_short")], rules)
    assert rows(res, "exit_long") == [5] and rows(res, "enter_short") == [5]
    assert res.counts["debounced"] == 1
    rules = MatchRules(timeframe="1h", cooldown_bars=3)
    res = run([sig(1, "enter_short"), sig(2, "exit_short"), sig(3, "enter_short"),
               sig(6, "enter_short")], rules)
    assert rows(res, "enter_short") == [1, 6]


def test_confirmation_counts_rows_entering_the_same_side():
    rules = MatchRules(timeframe="1h", confirm_n=2)
    res = run([sig(1, "enter_long"), sig(2, "enter_short"), sig(3, "enter_short")], rules)
    assert rows(res, "enter_short") == [3] and rows(res, "enter_long") == []


def test_risk_values_land_on_the_entry_row_only():
    res = run([sig(1, "enter_short"), sig(2, "enter_short"), sig(5, "exit_short")],
              leverage=[3, 2, np.nan], stop_loss=[0.02, 0.03, np.nan],
              take_profit=[0.05, 0.06, np.nan])
    assert res.frame["ext_leverage"].iloc[1] == 3 and res.frame["ext_stop_loss"].iloc[1] == 0.02
    assert res.frame["ext_leverage"].drop(index=1).isna().all()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 1, -1, -3]), min_size=1, max_size=40),
       st.integers(0, 4), st.integers(0, 4))
def test_the_sided_rule_is_the_long_only_rule_on_long_only_input(codes, min_hold, cooldown):
    act = np.array(codes, dtype=np.int8)
    row_ms = np.arange(act.size, dtype=np.int64) * 3_600_000
    rules = MatchRules(timeframe="1h", min_hold_bars=min_hold, cooldown_bars=cooldown)
    c_long, c_sided = Counter(), Counter()
    long_only = _dedupe_debounce(np.where(act == -3, EXIT_LONG, act).astype(np.int8), row_ms,
                                 rules, c_long)
    el, xl, es, xs = _sided_events(act, row_ms, rules, c_sided)
    assert np.array_equal(el, long_only == 1) and np.array_equal(xl, long_only == -1)
    assert not es.any() and not xs.any() and c_long == c_sided


def _logic(tmp_path, **ext) -> ExternalSignalLogic:
    cfg = {"timeframe": "1h", "trading_mode": "futures", "margin_mode": "isolated",
           "ext_signals": {"mongo_uri": "mongodb://127.0.0.1:1", "db": "x",
                           "strategy_ids": ["s1"], **ext}}
    return ExternalSignalLogic(cfg, live=False, env={})


def test_futures_frames_carry_short_and_risk_columns_and_hooks_read_the_entry_signal(tmp_path):
    logic = _logic(tmp_path, max_leverage=2.5)
    res = run([sig(1, "enter_short"), sig(4, "enter_long"), sig(8, "exit_long")],
              leverage=[3, 2, np.nan], stop_loss=[0.02, 0.04, np.nan],
              take_profit=[0.05, 0.1, np.nan])
    frame = candles()
    from signal_export.consumer.logic import _store

    frame = apply_exit(apply_entry(_store(frame, res.frame, futures=True)))
    assert rows_of(frame, "enter_short") == [1] and rows_of(frame, "exit_short") == [4]
    assert frame["exit_tag"].iloc[4] == "ext:s1:v0" and frame["enter_tag"].iloc[4] == "ext:s1:v0"
    # a short opened at the open of row 2 (after row 1 closed) follows row 1's signal
    risk = logic.entry_risk(frame, T0 + 2 * H, is_short=True)
    assert risk == {"leverage": 3.0, "stop_loss": 0.02, "take_profit": 0.05}
    assert logic.entry_risk(frame, T0 + H, is_short=True) == {}  # row 1 not closed yet
    assert logic.leverage(risk, max_leverage=10) == 2.5  # ext_signals.max_leverage caps
    assert logic.leverage(risk, max_leverage=2) == 2
    assert logic.leverage({}, max_leverage=10) == 1
    long_risk = logic.entry_risk(frame, T0 + 5 * H + timedelta(seconds=5), is_short=False)
    assert long_risk["stop_loss"] == 0.04


@pytest.mark.parametrize("is_short", [False, True])
def test_stoploss_value_puts_freqtrades_stop_on_the_signals_stop_price(is_short):
    side = -1 if is_short else 1
    open_rate, current, lev = 100.0, 101.3, 3.0
    v = ExternalSignalLogic.stoploss_value({"stop_loss": 0.02}, open_rate, current, is_short, lev)
    # Freqtrade: stop = rate * (1 - side * |v| / leverage) (the stop is on the losing side)
    assert current * (1 - side * abs(v) / lev) == pytest.approx(open_rate * (1 - side * 0.02))
    assert ExternalSignalLogic.stoploss_value({}, open_rate, current, is_short, lev) is None
    assert ExternalSignalLogic.target_rate({"take_profit": 0.1}, open_rate, is_short) == \
        pytest.approx(open_rate * (1 + side * 0.1))


def rows_of(frame: pd.DataFrame, col: str) -> list[int]:
    return np.flatnonzero(frame[col].to_numpy() == 1).tolist()


def test_stored_short_weights_are_read_and_conflicting_ones_counted_malformed():
    counts: dict = {}
    docs = [sig(1, "enter_short", weight=-0.5), sig(2, "exit_short", weight=0.0),
            sig(3, weight=-0.25),                                   # no action: short by sign
            sig(4, "enter_short", weight=0.5),                      # conflict: malformed
            sig(5, "exit_short", weight=-0.1),                      # conflict: malformed
            sig(6, "enter_long", weight=-0.5),                      # conflict: malformed
            sig(7, weight=-1.5)]                                    # out of [-1, 1]: malformed
    frame = normalise_signals(docs, pairs={PAIR}, counts=counts)
    assert frame["ts"].tolist() == [T0 + i * H for i in (1, 2, 3)]
    assert frame["weight"].tolist() == [-0.5, 0.0, -0.25]
    assert counts[PAIR]["malformed"] == 4
    result = match_signals(candles(), frame, MatchRules(timeframe="1h"))
    assert rows(result, "enter_short") == [1, 3] and rows(result, "exit_short") == [2]
