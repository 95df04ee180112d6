"""0/1 long/flat position series <-> enter_long/exit_long actions, both ways.

Actions are emitted only where the position changes (flat -> long: enter_long;
long -> flat: exit_long); every symbol starts flat. Going the other way,
repeated identical actions collapse (a second enter while long changes
nothing), and the position holds between actions. Round trip: positions ->
actions -> positions is the identity on the same bar grid. Vectorised per
symbol with group-wise shifts and forward fills; no loop over bars. Not a
backtest: fills and prices are the backtest's business.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signal_export.contract import Action


class PositionError(ValueError):
    """Bad position or action input; the message names the row and field."""


def positions_to_actions(frame: pd.DataFrame, position: str = "position",
                         time: str = "datetime", symbol: str = "symbol") -> pd.DataFrame:
    """Rows where ``position`` (0/1) changes -> (time, symbol, action); symbols start flat."""
    for col in (time, symbol, position):
        if col not in frame.columns:
            raise PositionError(f"positions frame has no {col!r} column")
    ordered = frame.sort_values([symbol, time], kind="stable")
    pos = ordered[position].to_numpy()
    bad = ~np.isin(pos, (0, 1))
    if bad.any():
        row = ordered.iloc[int(np.flatnonzero(bad)[0])]
        raise PositionError(f"position must be 0 or 1, got {row[position]!r} "
                            f"for {row[symbol]!r} at {row[time]}")
    prev = ordered.groupby(symbol, sort=False)[position].shift(1).fillna(0).to_numpy()
    change = pos != prev
    out = ordered.loc[change, [time, symbol]].reset_index(drop=True)
    out["action"] = np.where(pos[change] == 1, Action.ENTER_LONG.value, Action.EXIT_LONG.value)
    return out.astype({"action": object})


def actions_to_positions(actions: pd.DataFrame, grid: pd.DataFrame | None = None,
                         time: str = "datetime", symbol: str = "symbol",
                         action: str = "action") -> pd.DataFrame:
    """Actions -> 0/1 position per bar of ``grid`` (time, symbol); ``grid`` defaults to the
    action rows themselves. Rows with no action hold the previous state; duplicates collapse.

    An action whose bar is not in ``grid`` is an error (it would be silently lost).
    """
    for col in (time, symbol, action):
        if col not in actions.columns:
            raise PositionError(f"actions frame has no {col!r} column")
    acts = actions[[time, symbol, action]]
    acts = acts[acts[action].notna()]
    unknown = ~acts[action].isin([a.value for a in Action])
    if unknown.any():
        row = acts[unknown].iloc[0]
        raise PositionError(f"unknown action {row[action]!r} for {row[symbol]!r} at {row[time]}")
    state = acts.assign(_state=np.where(acts[action] == Action.ENTER_LONG.value, 1.0, 0.0))
    if state.duplicated([time, symbol]).any():
        conflict = state.groupby([time, symbol])["_state"].nunique() > 1
        if conflict.any():
            t, s = conflict[conflict].index[0]
            raise PositionError(f"conflicting actions for {s!r} at {t}")
        state = state.drop_duplicates([time, symbol])
    base = (grid[[time, symbol]] if grid is not None else state[[time, symbol]]).drop_duplicates()
    merged = base.merge(state[[time, symbol, "_state"]], on=[time, symbol], how="outer",
                        indicator=True)
    lost = merged["_merge"] == "right_only"
    if lost.any():
        row = merged[lost].iloc[0]
        raise PositionError(f"action for {row[symbol]!r} at {row[time]} is not on the bar grid")
    merged = merged.sort_values([symbol, time], kind="stable", ignore_index=True)
    filled = merged.groupby(symbol, sort=False)["_state"].ffill().fillna(0.0)
    return pd.DataFrame({time: merged[time], symbol: merged[symbol],
                         "position": filled.astype(np.int8).to_numpy()})


def events_to_positions(enter: np.ndarray, exit_: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Enter/exit condition arrays (rows time-ordered within each group) -> 0/1 positions.

    Enter when flat, exit when long; when both fire on one bar, exit wins (the
    conservative reading). Each group starts flat.
    """
    state = np.where(exit_, 0.0, np.where(enter, 1.0, np.nan))
    filled = pd.Series(state).groupby(groups, sort=False).ffill().fillna(0.0)
    return filled.to_numpy().astype(np.int8)


def position_changes(position: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per row: 'enter_long' / 'exit_long' where the position changes, else None."""
    prev = pd.Series(position).groupby(groups, sort=False).shift(1).fillna(0).to_numpy()
    out = np.full(len(position), None, dtype=object)
    out[(position == 1) & (prev == 0)] = Action.ENTER_LONG.value
    out[(position == 0) & (prev == 1)] = Action.EXIT_LONG.value
    return out
