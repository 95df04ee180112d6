"""-1/0/1 research positions -> contract actions on a futures pair, and back to the backtest."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from research.backtest import simulate_long_short
from research.signals.positions import PositionError, positions_to_actions
from signal_export.validate import validate_records

SYMBOL = "BINANCE:BTCUSDT.USDT"


def _frame(positions: list[int]) -> pd.DataFrame:
    times = pd.date_range("2026-01-01", periods=len(positions), freq="1D", tz="UTC")
    return pd.DataFrame({"datetime": times, "symbol": SYMBOL, "position": positions})


def test_signed_positions_become_short_actions_and_flips_enter_the_new_side():
    acts = positions_to_actions(_frame([0, 1, 1, -1, -1, 0, -1, 1, 0]), sides=True)
    assert acts["action"].tolist() == ["enter_long", "enter_short", "exit_short",
                                       "enter_short", "enter_long", "exit_long"]
    docs = [{"ts": t.to_pydatetime(), "timeframe": "1d", "symbol": s, "strategy_id": "ls",
             "action": a} for t, s, a in acts.itertuples(index=False)]
    batch = validate_records(docs, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert not batch.errors and {r["pair"] for r in batch.records} == {"BTC/USDT:USDT"}


def test_long_only_positions_are_unchanged_and_shorts_need_sides():
    assert positions_to_actions(_frame([0, 1, 0]))["action"].tolist() == ["enter_long",
                                                                          "exit_long"]
    with pytest.raises(PositionError, match="position must be 0 or 1"):
        positions_to_actions(_frame([0, -1]))
    with pytest.raises(PositionError, match="position must be -1, 0 or 1"):
        positions_to_actions(_frame([0, 2]), sides=True)


def test_actions_as_a_backtest_signal_reproduce_the_positions_trades():
    positions = [0, 1, 1, -1, -1, 0, -1, -1, 1, 1, 0, 0]
    acts = positions_to_actions(_frame(positions), sides=True)
    index = pd.date_range("2026-01-01", periods=len(positions), freq="1D", tz="UTC")
    side = {"enter_long": 1.0, "exit_long": 0.0, "enter_short": -1.0, "exit_short": 0.0}
    from_actions = pd.DataFrame({"A": np.nan}, index=index)
    from_actions.loc[acts["datetime"].to_numpy(), "A"] = acts["action"].map(side).to_numpy()
    direct = pd.DataFrame({"A": np.asarray(positions, dtype=float)}, index=index)
    prices = pd.DataFrame({"A": np.linspace(100, 111, len(positions))}, index=index)
    a = simulate_long_short(prices, prices, from_actions, timeframe="1d")
    b = simulate_long_short(prices, prices, direct, timeframe="1d")
    pd.testing.assert_frame_equal(a.trades, b.trades)
    assert a.trades["side"].tolist() == [1, -1, -1, 1]
