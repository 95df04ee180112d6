"""Long/short contract (issue 23): short actions, signed weights, leverage, stops and targets.

Every rule is checked on the model and, for frames, on the column-wise fast path
(both must give the same records and errors), and long-only documents stay valid.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from signal_export.contract import (
    SIGNAL_FIELDS,
    Action,
    ContractError,
    SignalDocument,
    check_risk_fields,
    entry_side,
    pair_to_symbol,
    perpetual_symbol,
    resolve_symbol_pair,
    symbol_to_pair,
)
from signal_export.validate import FAST_PATH_MIN_ROWS, validate_frame, validate_records

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
CTX = {"now": NOW}
FUT = "BTC/USDT:USDT"


def doc(**overrides):
    base = {"ts": T0, "timeframe": "1h", "pair": FUT, "strategy_id": "ls_v1",
            "action": "enter_short"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def validate(data):
    return SignalDocument.model_validate(data, context=CTX)


def rejected(data) -> tuple[str, str]:
    batch = validate_records([data], now=NOW)
    assert not batch.records, f"accepted: {batch.records}"
    return batch.errors[0].field, batch.errors[0].message


# --- symbol mapping --------------------------------------------------------

def test_futures_pair_maps_to_and_from_the_exchange_symbol():
    assert pair_to_symbol(FUT) == "BINANCE:BTCUSDT.USDT"
    assert symbol_to_pair("BINANCE:BTCUSDT.USDT") == FUT
    assert resolve_symbol_pair("BINANCE:ETHUSDT.USDT", None) == ("BINANCE:ETHUSDT.USDT",
                                                                  "ETH/USDT:USDT")
    # inverse (coin-margined) contracts settle in the base
    assert symbol_to_pair(pair_to_symbol("BTC/USD:BTC")) == "BTC/USD:BTC"


def test_tradingview_perpetual_suffix_is_the_linear_contract():
    assert perpetual_symbol("BINANCE:BTCUSDT.P") == "BINANCE:BTCUSDT.USDT"
    assert symbol_to_pair(perpetual_symbol("BINANCE:ETHUSDC.P")) == "ETH/USDC:USDC"
    assert perpetual_symbol("BINANCE:BTCUSDT") == "BINANCE:BTCUSDT"
    with pytest.raises(ContractError, match="quote"):
        perpetual_symbol("BINANCE:BTCXYZ.P")


# --- accepted documents ------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"action": "enter_short"},
    {"action": "exit_short"},
    {"action": "exit_short", "weight": 0.0},
    {"action": "enter_short", "weight": -0.5, "leverage": 3, "stop_loss": 0.05,
     "take_profit": 0.1},
    {"action": "enter_long", "weight": 1.0, "leverage": 125, "stop_loss": 0.0079},
    {"action": ..., "weight": -1.0, "leverage": 2.0},
    {"action": ..., "weight": 0.25, "take_profit": 3.0},
    {"action": ..., "weight": 0.0},
])
def test_futures_documents_are_accepted(fields):
    d = validate(doc(**fields))
    rec = d.to_record()
    assert set(rec) == set(SIGNAL_FIELDS)
    for name in ("leverage", "stop_loss", "take_profit", "weight"):
        want = fields.get(name)
        assert rec[name] == (None if want is None else float(want))
    stored = d.to_mongo()
    assert all(v is not None for v in stored.values())
    assert ("leverage" in stored) == ("leverage" in fields)


def test_long_only_spot_documents_are_unchanged():
    old = {"ts": T0, "timeframe": "1h", "pair": "BTC/USDT", "strategy_id": "rsi_v1",
           "action": "enter_long", "weight": 0.5}
    d = validate(old)
    assert d.to_mongo() == {**old, "symbol": "BINANCE:BTCUSDT", "version": 1}
    assert d.leverage is d.stop_loss is d.take_profit is None
    # stops and targets are not futures-only
    assert validate({**old, "stop_loss": 0.02, "take_profit": 0.04}).stop_loss == 0.02


def test_entry_side_reads_the_action_first_then_the_weight_sign():
    assert entry_side("enter_long", None) == 1
    assert entry_side("enter_short", None) == -1
    assert entry_side("exit_short", None) == 0
    assert entry_side(None, -0.3) == -1
    assert entry_side(None, 0.0) == 0
    assert entry_side(None, None) == 0


# --- rejected documents: each names its field ---------------------------------

@pytest.mark.parametrize(("overrides", "field", "why"), [
    ({"weight": 0.5}, "weight", "enter_short (needs weight < 0)"),
    ({"action": "enter_long", "weight": -0.5}, "weight", "enter_long (needs weight > 0)"),
    ({"action": "exit_short", "weight": -0.5}, "weight", "an exit wants weight 0"),
    ({"action": "exit_long", "weight": -0.1}, "weight", "an exit wants weight 0"),
    ({"weight": -1.5}, "weight", "outside"),
    ({"action": "sell_short"}, "action", "enter_short"),
    ({"pair": "BTC/USDT"}, "action", "futures pair BTC/USDT:USDT"),
    ({"pair": "BTC/USDT", "action": "exit_short"}, "action", "spot pair"),
    ({"pair": "BTC/USDT", "action": ..., "weight": -0.2}, "weight", "spot pair"),
    ({"pair": "BTC/USDT", "action": "enter_long", "leverage": 2}, "leverage", "spot pair"),
    ({"leverage": 0.5}, "leverage", "outside [1, 125]"),
    ({"leverage": 126}, "leverage", "outside [1, 125]"),
    ({"leverage": float("nan")}, "leverage", "not finite"),
    ({"leverage": True}, "leverage", "bool"),
    ({"leverage": "x"}, "leverage", "not a number"),
    ({"stop_loss": 0.0}, "stop_loss", "must be > 0"),
    ({"stop_loss": -0.05}, "stop_loss", "must be > 0"),
    ({"stop_loss": 1.0}, "stop_loss", ">= 1"),
    ({"stop_loss": 0.2, "leverage": 5}, "stop_loss", "liquidation"),
    ({"take_profit": 0.0}, "take_profit", "must be > 0"),
    ({"take_profit": 1.0}, "take_profit", "on a short"),
    ({"action": "exit_short", "stop_loss": 0.05}, "stop_loss", "only allowed on an entry"),
    ({"action": "exit_long", "leverage": 2}, "leverage", "only allowed on an entry"),
    ({"action": ..., "weight": 0.0, "take_profit": 0.1}, "take_profit", "only allowed on an entry"),
    ({"action": ..., "score": 1.2, "leverage": 2}, "leverage", "only allowed on an entry"),
])
def test_each_broken_rule_names_its_field(overrides, field, why):
    got_field, message = rejected(doc(**overrides))
    assert got_field == field
    assert why in message


def test_take_profit_above_one_is_fine_on_a_long():
    assert validate(doc(action="enter_long", take_profit=2.5)).take_profit == 2.5


def test_check_risk_fields_without_a_model():
    check_risk_fields("enter_long", None, 10.0, 0.09, 0.5)
    with pytest.raises(ContractError, match="stop_loss") as info:
        check_risk_fields("enter_long", None, 10.0, 0.1, None)
    assert info.value.field == "stop_loss"


# --- frames: the fast path agrees with the model --------------------------------

def _random_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    actions = np.array(["enter_long", "exit_long", "enter_short", "exit_short", None, "buy"],
                       dtype=object)
    pairs = np.array([FUT, "ETH/USDT:USDT", "BTC/USDT", "ETH/BTC"], dtype=object)

    def maybe(values: np.ndarray, p_nan: float) -> np.ndarray:
        return np.where(rng.random(n) < p_nan, np.nan, values)

    return pd.DataFrame({
        "ts": pd.date_range("2026-01-01", periods=n, freq="1h", tz="UTC"),
        "timeframe": "1h",
        "pair": pairs[rng.integers(0, len(pairs), n)],
        "strategy_id": "ls_v1",
        "action": actions[rng.integers(0, len(actions), n)],
        "weight": maybe(np.round(rng.uniform(-1.2, 1.2, n), 1), 0.4),
        "score": maybe(rng.normal(size=n), 0.5),
        "leverage": maybe(np.round(rng.uniform(0.5, 8, n), 1), 0.5),
        "stop_loss": maybe(np.round(rng.uniform(-0.05, 0.6, n), 2), 0.5),
        "take_profit": maybe(np.round(rng.uniform(-0.1, 1.5, n), 2), 0.5),
    })


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_matches_the_model_on_random_long_short_frames(seed):
    frame = _random_frame(4 * FAST_PATH_MIN_ROWS + 7, seed)
    fast = validate_frame(frame, now=datetime(2027, 1, 1, tzinfo=UTC))
    model = validate_records(
        [{k: v for k, v in row.items() if not (v is None or (isinstance(v, float) and v != v))}
         for row in frame.to_dict("records")],
        indices=frame.index.tolist(), now=datetime(2027, 1, 1, tzinfo=UTC))
    assert fast.records == model.records
    assert fast.indices == model.indices
    assert [(e.index, e.field, e.message) for e in fast.errors] == \
        [(e.index, e.field, e.message) for e in model.errors]
    assert fast.records and fast.errors  # the corpus exercises both outcomes
    assert any(r["action"] == Action.ENTER_SHORT.value and r["leverage"] for r in fast.records)


def test_model_rejection_is_a_validation_error_naming_the_field():
    with pytest.raises(ValidationError) as info:
        validate(doc(leverage=200))
    assert "leverage: 200.0 is outside [1, 125]" in str(info.value)
