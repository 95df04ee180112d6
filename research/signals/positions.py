"""0/1 long/flat position series -> enter_long/exit_long actions (what a producer exports).

Actions are emitted only where the position changes (flat -> long: enter_long;
long -> flat: exit_long); every symbol starts flat. The way back, from actions
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
