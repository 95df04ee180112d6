"""Build signal frames in the contract's shape; every generator's output goes through here.

A signal frame has exactly the columns :data:`SIGNAL_COLUMNS` (ts, timeframe,
symbol, pair, strategy_id, action, score, weight, note, source, version),
optionally followed by ``extra.<name>`` columns (e.g. ``extra.stop_loss``) that
the exporter folds into the document's ``extra`` dict. ``ts`` is the UTC
open time of the bar whose close produced the signal, so it must lie on the
timeframe's grid; ``pair`` comes from the contract's one symbol mapping. A row
carries an ``action`` (enter_long/exit_long, on futures symbols also
enter_short/exit_short) or a ``score``/``weight`` (signed on futures), or both,
and futures entries may carry ``leverage``, ``stop_loss`` and ``take_profit``.
Not an exporter: nothing here writes to MongoDB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from signal_export.contract import Action, ContractError, floor_series_to_bar, symbol_to_pair

SIGNAL_COLUMNS: tuple[str, ...] = (
    "ts", "timeframe", "symbol", "pair", "strategy_id", "action", "score", "weight", "note",
    "source", "version",
)
ACTIONS = frozenset(a.value for a in Action)


EXTRA_PREFIX = "extra."


def empty_signal_frame(extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """A zero-row signal frame with the contract's columns and dtypes."""
    return pd.DataFrame({
        "ts": pd.Series(dtype="datetime64[ns, UTC]"), "timeframe": pd.Series(dtype=object),
        "symbol": pd.Series(dtype=object), "pair": pd.Series(dtype=object),
        "strategy_id": pd.Series(dtype=object), "action": pd.Series(dtype=object),
        "score": pd.Series(dtype="float64"), "weight": pd.Series(dtype="float64"),
        "note": pd.Series(dtype=object), "source": pd.Series(dtype=object),
        "version": pd.Series(dtype="int64"),
        **{f"{EXTRA_PREFIX}{c}": pd.Series(dtype="float64") for c in extra},
    })


def signal_frame(
    ts: pd.Series | np.ndarray,
    symbol: pd.Series | np.ndarray,
    *,
    timeframe: str,
    strategy_id: str,
    action: Any = None,
    score: Any = None,
    weight: Any = None,
    note: Any = None,
    source: str = "research",
    version: int = 1,
    extra: Mapping[str, Any] | None = None,
    leverage: Any = None,
    stop_loss: Any = None,
    take_profit: Any = None,
) -> pd.DataFrame:
    """Assemble and check a contract-shaped signal frame (one row per element of ``ts``).

    ``extra`` maps names to numeric values; they become ``extra.<name>`` columns.
    ``leverage``/``stop_loss``/``take_profit`` (futures entries, docs/LONG_SHORT.md; NaN =
    none) become the contract's columns of those names, only when given: long-only frames
    keep exactly :data:`SIGNAL_COLUMNS`. The exporter checks them against each other.
    """
    if not strategy_id or not isinstance(strategy_id, str):
        raise ContractError(f"strategy_id must be a non-empty string, got {strategy_id!r}")
    ts = pd.Series(ts).reset_index(drop=True)
    n = len(ts)
    if n == 0:
        return empty_signal_frame(tuple(extra or ()))
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ContractError("ts: timestamps must be tz-aware UTC")
    ts = ts.dt.tz_convert("UTC")
    off_grid = floor_series_to_bar(ts, timeframe) != ts
    if off_grid.any():
        raise ContractError(f"ts {ts[off_grid].iloc[0]} is not on the {timeframe} bar grid")
    symbols = pd.Series(symbol).reset_index(drop=True).astype(object)
    pairs = {s: symbol_to_pair(s) for s in symbols.unique()}

    def column(value: Any, dtype: str | type) -> pd.Series:
        if value is None:
            return pd.Series([None] * n if dtype is object else np.full(n, np.nan), dtype=dtype)
        if np.isscalar(value):
            return pd.Series([value] * n, dtype=dtype)
        return pd.Series(np.asarray(value), dtype=dtype).reset_index(drop=True)

    actions = column(action, object)
    actions = actions.where(actions.notna(), None)
    bad = ~actions.isin(ACTIONS) & actions.notna()
    if bad.any():
        raise ContractError(f"action {actions[bad].iloc[0]!r} is not one of {sorted(ACTIONS)}")
    scores, weights = column(score, "float64"), column(weight, "float64")
    empty = actions.isna() & scores.isna() & weights.isna()
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise ContractError(
            f"signal row {i} ({symbols[i]} at {ts[i]}) has no action, score or weight")
    frame = pd.DataFrame({
        "ts": ts, "timeframe": timeframe, "symbol": symbols, "pair": symbols.map(pairs),
        "strategy_id": strategy_id, "action": actions, "score": scores, "weight": weights,
        "note": column(note, object), "source": source, "version": np.int64(version),
    })
    for name, values in (("leverage", leverage), ("stop_loss", stop_loss),
                         ("take_profit", take_profit)):
        if values is not None:
            frame[name] = column(values, "float64")
    for name, values in (extra or {}).items():
        frame[f"{EXTRA_PREFIX}{name}"] = column(values, "float64")
    return frame


def sort_signals(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable (ts, symbol) order, fresh index: the order generators return."""
    return frame.sort_values(["ts", "symbol"], kind="stable", ignore_index=True)
