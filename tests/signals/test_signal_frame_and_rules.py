"""Contract-shaped signal frames and the safe rule language."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from signal_data import BTC, ETH, at, frame

from research.signals.expression import RuleError, evaluate_rule, rule_columns
from research.signals.frame import SIGNAL_COLUMNS, signal_frame
from signal_export.contract import ContractError


def test_signal_frame_has_the_contract_columns_and_mapped_pairs():
    out = signal_frame(pd.Series([at(0), at(1)]), [BTC, ETH], timeframe="1h", strategy_id="s1",
                       action=["enter_long", None], score=[None, 0.7], version=3)
    assert tuple(out.columns) == SIGNAL_COLUMNS
    assert out["pair"].tolist() == ["BTC/USDT", "ETH/USDT"]
    assert out["action"].tolist() == ["enter_long", None]
    assert out["score"].isna().tolist() == [True, False]
    assert out["version"].tolist() == [3, 3] and out["source"].eq("research").all()
    assert str(out["ts"].dt.tz) == "UTC"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ts": pd.Series([at(0) + pd.Timedelta("1min")])}, "not on the 1h bar grid"),
    ({"action": ["buy"]}, "'buy' is not one of"),
    ({"action": None, "score": None}, "has no action, score or weight"),
    ({"symbol": ["BTCUSDT"]}, "EXCHANGE:BASEQUOTE"),
    ({"ts": pd.Series([at(0).tz_localize(None)])}, "tz-aware"),
])
def test_bad_signals_are_rejected_naming_the_field(kwargs, message):
    args = {"ts": pd.Series([at(0)]), "symbol": [BTC], "action": ["enter_long"]}
    args.update(kwargs)
    with pytest.raises(ContractError, match=message):
        signal_frame(args.pop("ts"), args.pop("symbol"), timeframe="1h", strategy_id="s", **args)


def test_rule_evaluates_comparisons_and_boolean_logic():
    f = frame({BTC: {"rsi_14": [25.0, 35.0, 20.0, np.nan], "close": [10.0, 10.0, 8.0, 10.0],
                     "sma_200": [9.0, 9.0, 9.0, 9.0]}})
    got = evaluate_rule("rsi_14 < 30 and close > sma_200", f)
    assert got.tolist() == [True, False, False, False]  # NaN never fires
    # Python precedence: `not` binds looser than `|`, so this is not ((a) | (b))
    assert evaluate_rule("not (rsi_14 < 30) | (close / sma_200 - 1 < -0.1)", f).tolist() == [
        False, True, False, True]
    assert evaluate_rule("20 <= rsi_14 <= 25", f).tolist() == [True, False, True, False]
    assert evaluate_rule("abs(close - sma_200) > 0.5", f).tolist() == [True, True, True, True]
    assert rule_columns("rsi_14 < 30 and close > prev(close, 2)") == {"rsi_14", "close"}


def test_prev_looks_back_within_the_same_symbol_only():
    f = frame({BTC: {"x": [1.0, 2.0, 3.0]}, ETH: {"x": [10.0, 5.0, 6.0]}})
    # crossing up: x > prev(x)
    assert evaluate_rule("x > prev(x)", f).tolist() == [False, True, True, False, False, True]


@pytest.mark.parametrize("rule", [
    "__import__('os').system('true')", "close.__class__", "close[0] > 1", "(lambda: 1)() > 0",
    "open('x') > 1", "close if close else 1", "'a' < 'b'", "prev(close, n=2) > 1",
])
def test_unsafe_or_unsupported_rules_are_rejected(rule):
    f = frame({BTC: {"close": [1.0]}})
    with pytest.raises(RuleError):
        evaluate_rule(rule, f)


def test_unknown_column_and_non_boolean_rule_are_clear_errors():
    f = frame({BTC: {"close": [1.0]}})
    with pytest.raises(RuleError, match=r"unknown column\(s\) \['rsi_99'\]"):
        evaluate_rule("rsi_99 < 30", f)
    with pytest.raises(RuleError, match="true/false"):
        evaluate_rule("close + 1", f)
