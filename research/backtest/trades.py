"""The trades list of a backtest as a DataFrame, one row per round trip.

Turns the engine's per-trade arrays into a readable frame with symbols and
timestamps. A trade still open at the last bar is kept (``is_open`` True,
``exit_time`` NaT) and marked at the last known close without an exit fee, the
same mark the equity curve uses. Not a place for statistics: metrics are in
:mod:`research.backtest.metrics`.

Columns: ``symbol``, ``entry_time`` / ``exit_time`` (open times of the fill
bars), ``entry_price`` / ``exit_price`` (fill prices, slippage included),
``units``, ``entry_value`` (cash spent, fee included), ``exit_value`` (cash
received, fee deducted), ``fees``, ``pnl`` (exit_value - entry_value),
``return`` (pnl / entry_value), ``bars_held`` (bars from the entry open to the
exit open, or to the end of the data for an open trade; a stop or target counts its
bar), ``is_open``; long/short runs add ``side`` (1/-1), ``leverage``, ``exit_reason``
(``exit_signal``/``stop_loss``/``roi``, empty while open) and ``funding`` (paid).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from research.backtest.engine import EngineOutput
from research.backtest.longshort import EXIT_REASONS, LongShortOutput

TRADE_COLUMNS: tuple[str, ...] = (
    "symbol", "entry_time", "exit_time", "entry_price", "exit_price", "units", "entry_value",
    "exit_value", "fees", "pnl", "return", "bars_held", "is_open",
)


def trades_frame(out: EngineOutput, index: pd.DatetimeIndex,
                 symbols: tuple[str, ...]) -> pd.DataFrame:
    """One row per trade, ordered by symbol then entry time."""
    is_open = out.trade_exit_bar < 0
    exit_time = pd.DatetimeIndex(index[np.where(is_open, 0, out.trade_exit_bar)])
    exit_time = exit_time.where(~is_open, pd.NaT)
    n_bar = len(index)
    exit_bar = np.where(is_open, n_bar, out.trade_exit_bar)
    pnl = out.trade_exit_value - out.trade_entry_value
    bars_held = exit_bar - out.trade_entry_bar
    extra: dict[str, object] = {}
    if isinstance(out, LongShortOutput):
        bars_held = out.trade_bars_held
        extra = {
            "side": out.trade_side,
            "leverage": out.trade_leverage,
            "exit_reason": np.asarray(EXIT_REASONS, dtype=object)[out.trade_exit_reason],
            "funding": out.trade_funding,
        }
    frame = pd.DataFrame({
        "symbol": pd.Categorical.from_codes(out.trade_symbol, categories=list(symbols)),
        "entry_time": index[out.trade_entry_bar],
        "exit_time": exit_time,
        "entry_price": out.trade_entry_price,
        "exit_price": out.trade_exit_price,
        "units": out.trade_units,
        "entry_value": out.trade_entry_value,
        "exit_value": out.trade_exit_value,
        "fees": out.trade_fees,
        "pnl": pnl,
        "return": pnl / out.trade_entry_value,
        "bars_held": bars_held,
        "is_open": is_open,
        **extra,
    }, columns=list(TRADE_COLUMNS) + list(extra))
    return frame
