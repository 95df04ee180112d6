"""0/1 positions <-> enter/exit actions: only changes, dedupe, round trip."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from signal_data import BTC, ETH, T0, at

from research.signals.positions import PositionError, actions_to_positions, positions_to_actions


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
    grid = _positions({BTC: [0] * 7})[["datetime", "symbol"]]
    pos = actions_to_positions(acts, grid)
    assert pos["position"].tolist() == [1, 1, 1, 0, 0, 0, 0]
    again = positions_to_actions(pos)
    assert again["action"].tolist() == ["enter_long", "exit_long"]


def test_conflicting_or_off_grid_actions_are_errors():
    conflict = pd.DataFrame({"datetime": [at(0), at(0)], "symbol": BTC,
                             "action": ["enter_long", "exit_long"]})
    with pytest.raises(PositionError, match="conflicting actions"):
        actions_to_positions(conflict)
    grid = _positions({BTC: [0, 0]})[["datetime", "symbol"]]
    off = pd.DataFrame({"datetime": [at(5)], "symbol": [BTC], "action": ["enter_long"]})
    with pytest.raises(PositionError, match="not on the bar grid"):
        actions_to_positions(off, grid)
    with pytest.raises(PositionError, match="position must be 0 or 1"):
        positions_to_actions(_positions({BTC: [0, 2]}))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from([BTC, ETH]),
                       st.lists(st.integers(0, 1), min_size=1, max_size=60), min_size=1))
def test_positions_to_actions_to_positions_is_the_identity(by_symbol):
    positions = _positions(by_symbol)
    actions = positions_to_actions(positions)
    back = actions_to_positions(actions, positions[["datetime", "symbol"]])
    expected = positions.sort_values(["symbol", "datetime"], ignore_index=True)
    assert back["position"].tolist() == expected["position"].tolist()
    assert back["datetime"].tolist() == expected["datetime"].tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["enter_long", "exit_long", None]), min_size=1, max_size=60))
def test_actions_round_trip_to_their_deduplicated_form(raw):
    grid = pd.DataFrame({"datetime": pd.date_range(T0, periods=len(raw), freq="1h"), "symbol": BTC})
    acts = grid.assign(action=raw)
    back = positions_to_actions(actions_to_positions(acts, grid))
    # dedupe by hand: keep an action only when it changes the state, starting flat
    state, expected = 0, []
    for t, a in zip(grid["datetime"], raw, strict=True):
        if a == "enter_long" and state == 0:
            state = 1
            expected.append((t, a))
        elif a == "exit_long" and state == 1:
            state = 0
            expected.append((t, a))
    assert list(zip(back["datetime"], back["action"], strict=True)) == expected
