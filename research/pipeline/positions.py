"""Signal frames -> the 0/1 long/flat position per symbol and bar that the backtest takes.

Which column decides, in this order: ``action`` (held between actions via
:func:`research.signals.actions_to_positions` on the market's bar grid),
else ``weight`` (long while > 0), else ``score`` (long while >= the configured
threshold; without a threshold a score-only frame is an error rather than a
guess). A bar without a signal row holds the previous position; a signal on a
bar the market does not have is an error (it would be silently lost). The
decision at bar t is filled by the backtest at the open of t+1. Not a backtest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from research.signals import actions_to_positions


class PositionsError(ValueError):
    """Signals that cannot be turned into positions; the message says why."""


def signals_to_positions(signals: pd.DataFrame, market: pd.DataFrame, *,
                         score_threshold: float | None = None) -> pd.DataFrame:
    """Tidy (datetime, symbol, position) rows; NaN position = no new decision on that bar."""
    grid = market[["datetime", "symbol"]].astype({"datetime": "datetime64[ns, UTC]"})
    if signals.empty:
        return grid.assign(position=np.nan)
    rows = signals.rename(columns={"ts": "datetime"}).astype(
        {"datetime": "datetime64[ns, UTC]"})
    if rows["action"].notna().any():
        held = actions_to_positions(rows[["datetime", "symbol", "action"]], grid=grid)
        return held.astype({"position": "float64"})
    if rows["weight"].notna().any():
        decided = rows[rows["weight"].notna()]
        position = (decided["weight"] > 0).astype("float64")
    elif rows["score"].notna().any():
        if score_threshold is None:
            raise PositionsError("signals carry only scores: set backtest.score_threshold "
                                 "(long while score >= threshold)")
        decided = rows[rows["score"].notna()]
        position = (decided["score"] >= score_threshold).astype("float64")
    else:  # pragma: no cover - signal_frame rejects rows without action/score/weight
        raise PositionsError("signals have no action, weight or score")
    decided = decided[["datetime", "symbol"]].assign(position=position.to_numpy())
    merged = grid.merge(decided, on=["datetime", "symbol"], how="outer", indicator=True)
    lost = merged["_merge"] == "right_only"
    if lost.any():
        row = merged[lost].iloc[0]
        raise PositionsError(f"signal for {row['symbol']!r} at {row['datetime']} is not on "
                             "the market's bar grid")
    return merged.drop(columns="_merge").sort_values(["symbol", "datetime"], ignore_index=True)
