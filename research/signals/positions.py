"""Position series -> contract actions (what a producer exports).

Actions are emitted only where the position changes (flat -> long: enter_long;
long -> flat: exit_long; with -1/0/1 also enter_short/exit_short, a flip being the new
side's entry); every symbol starts flat. The way back, from actions
to held positions, is the decision rule's job (one definition, shared with the
bot: :func:`research.pipeline.decide_positions`). Vectorised per symbol with
group-wise shifts; no loop over bars. Not a backtest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from signal_export.contract import Action
from signal_export.errors import BridgeError


class PositionError(BridgeError, ValueError):
    """Bad position or action input; the message names the row and field."""


def positions_to_actions(frame: pd.DataFrame, position: str = "position",
                         time: str = "datetime", symbol: str = "symbol", *,
                         sides: bool = False) -> pd.DataFrame:
    """Rows where ``position`` changes -> (time, symbol, action); symbols start flat.

    ``position`` is 0/1 (long/flat), or with ``sides=True`` -1/0/1 (short/flat/long, a
    futures symbol): flat -> short is ``enter_short``, short -> flat ``exit_short``, and a
    flip is the entry of the new side (``enter_short`` from long, ``enter_long`` from short;
    one document per bar, the bot closes the old side first).
    """
    for col in (time, symbol, position):
        if col not in frame.columns:
            raise PositionError(f"positions frame has no {col!r} column")
    ordered = frame.sort_values([symbol, time], kind="stable")
    pos = ordered[position].to_numpy()
    allowed = (-1, 0, 1) if sides else (0, 1)
    bad = ~np.isin(pos, allowed)
    if bad.any():
        row = ordered.iloc[int(np.flatnonzero(bad)[0])]
        words = "-1, 0 or 1" if sides else "0 or 1"
        raise PositionError(f"position must be {words}, got {row[position]!r} "
                            f"for {row[symbol]!r} at {row[time]}")
    actions = position_changes(pos, ordered[symbol].to_numpy())
    change = pd.notna(actions)
    out = ordered.loc[change, [time, symbol]].reset_index(drop=True)
    out["action"] = actions[change]
    return out.astype({"action": object})


def events_to_positions(enter: np.ndarray, exit_: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Enter/exit condition arrays (rows time-ordered within each group) -> 0/1 positions.

    Enter when flat, exit when long; when both fire on one bar, exit wins (the
    conservative reading). Each group starts flat.
    """
    state = np.where(exit_, 0.0, np.where(enter, 1.0, np.nan))
    filled = pd.Series(state).groupby(groups, sort=False).ffill().fillna(0.0)
    return filled.to_numpy().astype(np.int8)


def position_changes(position: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per row: the action where the position (-1/0/1) changes, else None (0/1: only
    enter_long/exit_long). A flip is the new side's entry."""
    prev = pd.Series(position).groupby(groups, sort=False).shift(1).fillna(0).to_numpy()
    out = np.full(len(position), None, dtype=object)
    out[(position == 1) & (prev != 1)] = Action.ENTER_LONG.value
    out[(position == -1) & (prev != -1)] = Action.ENTER_SHORT.value
    out[(position == 0) & (prev == 1)] = Action.EXIT_LONG.value
    out[(position == 0) & (prev == -1)] = Action.EXIT_SHORT.value
    return out
