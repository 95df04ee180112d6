"""0/1 positions -> enter/exit actions, and back through the decision rule (round trip)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from signal_data import BTC, ETH, T0, at

from research.pipeline import decide_positions
from research.signals.positions import PositionError, positions_to_actions
from signal_export.contract import symbol_to_pair


def _held(actions: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """Actions -> position held after each bar's close, by the bot's decision rule."""
    sig = actions.rename(columns={"datetime": "ts"}).assign(
        timeframe="1h", strategy_id="s", pair=actions["symbol"].map(symbol_to_pair))
    decided = decide_positions(sig, grid, timeframe="1h")
    pos = decided.positions
    n = pos.groupby("symbol")["datetime"].transform("size")
    last_two = pos.groupby("symbol").cumcount() >= n - 2  # the end-of-data rule's bars
    held = pos["position"].groupby(pos["symbol"]).ffill().fillna(0)
    return pos.assign(position=held.astype(int))[~last_two].reset_index(drop=True)


def _positions(by_symbol: dict[str, list[int]]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"datetime": pd.date_range(T0, periods=len(p), freq="1h"),
                                    "symbol": s, "position": p}) for s, p in by_symbol.items()],
                     ignore_index=True)


def test_actions_only_where_the_position_changes():
    acts = positions_to_actions(_positions({BTC: [0, 1, 1, 0, 0, 1], ETH: [1, 1, 0]}))
    assert list(zip(acts["symbol"], acts["datetime"], acts["action"], strict=True)) == [
        (BTC, at(1), "enter_long"), (BTC, at(3), "exit_long"), (BTC, at(5), "enter_long"),
        (ETH, at(0), "enter_long"), (ETH, at(2), "exit_long"),
    ]


def test_repeated_actions_collapse_and_positions_hold_between_actions():
    acts = pd.DataFrame({"datetime": [at(0), at(2), at(3), at(5)], "symbol": BTC,
                         "action": ["enter_long", "enter_long", "exit_long", "exit_long"]})
    grid = _positions({BTC: [0] * 9})[["datetime", "symbol"]]
    pos = _held(acts, grid)
    assert pos["position"].tolist() == [1, 1, 1, 0, 0, 0, 0]
    again = positions_to_actions(pos)
    assert again["action"].tolist() == ["enter_long", "exit_long"]


def test_bad_positions_are_errors():
    with pytest.raises(PositionError, match="position must be 0 or 1"):
        positions_to_actions(_positions({BTC: [0, 2]}))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([BTC, ETH]),
                       st.lists(st.integers(0, 1), min_size=3, max_size=60), min_size=1))
def test_positions_to_actions_and_back_through_the_decision_rule(by_symbol):
    """Round trip: positions -> exported actions -> the bot's rule -> the same positions
    (up to the last two bars, where the end-of-data rule flattens)."""
    positions = _positions(by_symbol)
    back = _held(positions_to_actions(positions), positions[["datetime", "symbol"]])
    expected = positions.sort_values(["symbol", "datetime"], ignore_index=True)
    keep = expected.groupby("symbol").cumcount(ascending=False) >= 2
    expected = expected[keep].reset_index(drop=True)
    assert back["position"].tolist() == expected["position"].tolist()
    assert np.array_equal(back["datetime"].to_numpy(), expected["datetime"].to_numpy())
