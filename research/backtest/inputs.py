"""Validate backtest inputs and bring them into the engine's layout.

The engine works on 2-D numpy arrays shaped ``(symbols, bars)``, C-contiguous,
so that each symbol's history is one contiguous row (that layout made a
cumulative product 2.7x faster than ``(bars, symbols)`` on this machine).
This module turns the public inputs - wide frames (index = bar open times,
columns = symbols) or tidy frames (one row per symbol and bar) - into that
layout without copying when the frames are already single-block float frames,
and rejects bad input with an error that names the symbol, the bar and the
field. It is not the simulation: it never computes a position or a price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from signal_export.contract import ContractError, timeframe_seconds
from signal_export.errors import BridgeError


class BacktestInputError(BridgeError, ValueError):
    """Bad backtest input; the message names the symbol, bar and field."""


@dataclass(frozen=True)
class MarketArrays:
    """Prices and signal in the engine's ``(symbols, bars)`` layout.

    ``open_valid`` is ``None`` when every open price is present (the fast path);
    otherwise a bool array, False where the bar is missing (NaN open and close).
    ``close_filled`` is the close carried forward over missing bars (used only to
    mark open positions); it is the input close itself when nothing is missing.
    ``signal`` is ``None`` for buy & hold, else an int8/bool/float array where NaN
    means "no new signal on this bar".
    """

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: np.ndarray
    close: np.ndarray
    close_filled: np.ndarray
    open_valid: np.ndarray | None
    signal: np.ndarray | None


def bar_seconds(timeframe: str) -> int:
    """Seconds per bar, from the contract; a bad timeframe is a :class:`BacktestInputError`."""
    try:
        return timeframe_seconds(timeframe)
    except ContractError as exc:
        raise BacktestInputError(f"timeframe: {exc}") from exc


def periods_per_year(timeframe: str) -> float:
    """Bars per 365-day year: 1d -> 365, 1h -> 8,760, 1m -> 525,600."""
    return 365 * 86400 / bar_seconds(timeframe)


def _rows(frame: pd.DataFrame, name: str) -> np.ndarray:
    """``frame`` (bars x symbols) as a ``(symbols, bars)`` array, without a copy if possible."""
    values = frame.to_numpy()
    if values.dtype.kind not in "fiub":
        raise BacktestInputError(f"{name}: values must be numeric, got dtype {values.dtype}")
    rows = values.T
    return rows if rows.flags.c_contiguous else np.ascontiguousarray(rows)


def _check_index(index: pd.Index, name: str, step_s: int) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise BacktestInputError(
            f"{name}: index must be a tz-aware UTC DatetimeIndex of bar open times")
    if len(index) == 0:
        raise BacktestInputError(f"{name}: no bars")
    index = index.tz_convert("UTC").as_unit("ns")
    ns = index.asi8
    if len(ns) > 1 and not (np.diff(ns) > 0).all():
        bad = int(np.flatnonzero(np.diff(ns) <= 0)[0]) + 1
        raise BacktestInputError(f"{name}: index not strictly increasing at bar {index[bad]}")
    off = ns % (step_s * 1_000_000_000)
    if off.any():
        bad = int(np.flatnonzero(off)[0])
        raise BacktestInputError(f"{name}: bar {index[bad]} is not on the {step_s}s grid")
    return index


def _full_grid(index: pd.DatetimeIndex, step_s: int) -> pd.DatetimeIndex | None:
    """The regular grid spanning ``index`` if ``index`` has gaps, else ``None``."""
    if len(index) < 2 or (np.diff(index.asi8) == step_s * 1_000_000_000).all():
        return None
    return pd.date_range(index[0], index[-1], freq=pd.Timedelta(seconds=step_s)).as_unit("ns")


def _first_cell(mask: np.ndarray, symbols: tuple[str, ...], index: pd.DatetimeIndex) -> str:
    r, c = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    return f"symbol {symbols[r]!r} at bar {index[c]}"


def ffill_rows(values: np.ndarray) -> np.ndarray:
    """Carry the last non-NaN value forward along each row (pandas' C pad routine)."""
    return pd.DataFrame(values.T, copy=False).ffill().to_numpy().T


def _check_prices(open_: np.ndarray, close: np.ndarray, symbols: tuple[str, ...],
                  index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (close carried forward, open_valid or None); raise on bad prices."""
    # Fast path: min/max propagate NaN, so one reduction per array proves "all finite and > 0".
    if open_.min() > 0 and close.min() > 0 and open_.max() < np.inf and close.max() < np.inf:
        return close, None
    for name, arr in (("open", open_), ("close", close)):
        bad = ~np.isnan(arr) & ~((arr > 0) & (arr < np.inf))
        if bad.any():
            raise BacktestInputError(
                f"{name}: price must be finite and > 0 ({_first_cell(bad, symbols, index)})")
    open_nan = np.isnan(open_)
    mismatch = open_nan != np.isnan(close)
    if mismatch.any():
        raise BacktestInputError(
            "open/close: a bar must have both prices or neither "
            f"({_first_cell(mismatch, symbols, index)})")
    return ffill_rows(close), ~open_nan


def _check_signal(signal: np.ndarray, symbols: tuple[str, ...],
                  index: pd.DatetimeIndex, sides: bool = False) -> np.ndarray:
    """0/1 (long/flat) or, with ``sides``, -1/0/1 (short/flat/long); NaN = no new signal."""
    low = -1 if sides else 0
    allowed = "-1, 0, 1" if sides else "0, 1"
    if signal.dtype == bool:
        return signal
    if signal.dtype.kind in "iu":
        if signal.min() < low or signal.max() > 1:
            bad = (signal < low) | (signal > 1)
            raise BacktestInputError(
                f"signal: position must be {allowed.replace(', 1', ' or 1')} "
                f"({_first_cell(bad, symbols, index)})")
        return signal.astype(np.int8, copy=False)
    bad = ~np.isnan(signal) & (signal != 0) & (signal != 1)
    if sides:
        bad &= signal != -1
    if bad.any():
        raise BacktestInputError(
            f"signal: position must be {allowed} or NaN ({_first_cell(bad, symbols, index)})")
    return signal


def market_from_wide(open_: pd.DataFrame, close: pd.DataFrame, signal: pd.DataFrame | None,
                     timeframe: str, *, sides: bool = False) -> MarketArrays:
    """Validate wide frames (index = bar open times UTC, columns = symbols).

    ``open_`` and ``close`` must share index and columns. Gaps in the index (bars
    absent altogether) are re-inserted as NaN bars so that annualisation counts
    real time. ``signal`` columns must equal the price columns and its index must
    be a subset of the price index (a signal on a bar with no price would be
    silently lost otherwise); bars without a signal row get NaN (no new signal).
    """
    step_s = bar_seconds(timeframe)
    for name, frame in (("open", open_), ("close", close)):
        if not isinstance(frame, pd.DataFrame):
            raise BacktestInputError(f"{name}: expected a wide DataFrame (bars x symbols)")
    index = _check_index(open_.index, "open", step_s)
    if not open_.index.equals(close.index):
        raise BacktestInputError("close: index differs from open's index")
    if list(open_.columns) != list(close.columns):
        raise BacktestInputError("close: columns differ from open's columns")
    symbols = tuple(str(c) for c in open_.columns)
    if len(set(symbols)) != len(symbols) or not symbols:
        raise BacktestInputError("open: columns must be unique symbol names, at least one")
    grid = _full_grid(index, step_s)
    if grid is not None:
        open_, close = open_.reindex(grid), close.reindex(grid)
        index = grid
    sig_rows = None
    if signal is not None:
        sig_rows = _rows(_align_signal(signal, index, symbols), "signal")
    o = _rows(open_.astype(np.float64), "open")
    c = _rows(close.astype(np.float64), "close")
    close_filled, open_valid = _check_prices(o, c, symbols, index)
    if sig_rows is not None:
        sig_rows = _check_signal(sig_rows, symbols, index, sides)
    return MarketArrays(index, symbols, o, c, close_filled, open_valid, sig_rows)


def aligned_rows(values: pd.DataFrame | float | None, name: str, market: MarketArrays, *,
                 low: float, high: float, low_open: bool = True) -> np.ndarray | None:
    """A per-bar input (a scalar for every bar, or a wide frame like ``signal``: columns = the
    symbols, index a subset of the bars, NaN = not set) in the engine layout, range-checked:
    every set value must lie in ``(low, high]`` (``[low, high]`` if not ``low_open``). A
    scalar comes back as a 0-d array (it broadcasts)."""
    if values is None:
        return None
    shape = market.open.shape
    if isinstance(values, pd.DataFrame):
        rows = _rows(_align_signal(values, market.index, market.symbols, name), name)
        rows = rows.astype(np.float64, copy=False)
    else:
        try:
            scalar = float(values)
        except (TypeError, ValueError) as exc:
            raise BacktestInputError(
                f"{name}: expected a number or a wide DataFrame, got {type(values).__name__}"
            ) from exc
        rows = np.asarray(scalar)  # 0-d: broadcast, never expanded to every bar
    set_ = ~np.isnan(rows)
    above = rows > low if low_open else rows >= low
    bad = set_ & ~(above & (rows <= high))
    if bad.any():
        span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        where = _first_cell(np.broadcast_to(bad, shape), market.symbols, market.index)
        raise BacktestInputError(f"{name}: values must lie in {span} ({where})")
    return rows


def price_rows(frame: pd.DataFrame | None, name: str, market: MarketArrays) -> np.ndarray | None:
    """``high``/``low`` like ``open``: same symbols, a price (> 0) wherever the bar has an open."""
    if frame is None:
        return None
    if not isinstance(frame, pd.DataFrame):
        raise BacktestInputError(f"{name}: expected a wide DataFrame (bars x symbols)")
    rows = _rows(_align_signal(frame, market.index, market.symbols, name), name)
    rows = rows.astype(np.float64, copy=False)
    if market.open_valid is None and rows.min() > 0 and rows.max() < np.inf:
        return rows  # every bar has an open: one reduction each proves all finite and > 0
    valid = np.ones(rows.shape, bool) if market.open_valid is None else market.open_valid
    bad = valid & ~((rows > 0) & (rows < np.inf))
    if bad.any():
        raise BacktestInputError(
            f"{name}: price must be finite and > 0 where the bar has an open "
            f"({_first_cell(bad, market.symbols, market.index)})")
    return rows


def _align_signal(signal: pd.DataFrame, index: pd.DatetimeIndex,
                  symbols: tuple[str, ...], name: str = "signal") -> pd.DataFrame:
    if not isinstance(signal, pd.DataFrame):
        raise BacktestInputError(f"{name}: expected a wide DataFrame (bars x symbols) or None")
    cols = [str(c) for c in signal.columns]
    missing = sorted(set(symbols) - set(cols))
    extra = sorted(set(cols) - set(symbols))
    if missing or extra:
        raise BacktestInputError(
            f"{name}: columns must equal the price symbols (missing {missing}, unknown {extra})")
    if not isinstance(signal.index, pd.DatetimeIndex) or signal.index.tz is None:
        raise BacktestInputError(f"{name}: index must be a tz-aware UTC DatetimeIndex")
    sig_index = signal.index.tz_convert("UTC").as_unit("ns")
    if sig_index.has_duplicates:
        raise BacktestInputError(
            f"{name}: duplicate bar {sig_index[sig_index.duplicated()][0]}")
    unknown = sig_index.difference(index)
    if len(unknown):
        raise BacktestInputError(
            f"{name}: bar {unknown[0]} has no price bar ({len(unknown)} such bars)")
    signal = signal.set_axis(sig_index, axis=0).set_axis(cols, axis=1)
    if signal.index.equals(index) and cols == list(symbols):
        return signal
    return signal.reindex(index=index, columns=list(symbols)).astype(np.float64)


def wide_from_tidy(frame: pd.DataFrame, value: str, *, symbol_col: str = "symbol",
                   time_col: str = "datetime", name: str = "market") -> pd.DataFrame:
    """Pivot a tidy frame (one row per symbol and bar) into bars x symbols.

    Duplicate (symbol, bar) rows are an error, never silently dropped.
    """
    for col in (symbol_col, time_col, value):
        if col not in frame.columns:
            raise BacktestInputError(f"{name}: missing column {col!r}")
    dup = frame.duplicated([symbol_col, time_col])
    if dup.any():
        row = frame.loc[dup].iloc[0]
        raise BacktestInputError(
            f"{name}: duplicate bar for symbol {row[symbol_col]!r} at {row[time_col]}")
    times = frame[time_col]
    if getattr(times.dt, "tz", None) is None:
        raise BacktestInputError(f"{name}: column {time_col!r} must be tz-aware UTC")
    tidy = frame.assign(**{time_col: times.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")})
    wide = tidy.pivot(index=time_col, columns=symbol_col, values=value).sort_index()
    wide.columns = [str(c) for c in wide.columns]
    wide.index.name = None
    return wide


def weights_vector(weights: Mapping[str, float] | pd.Series | None,
                   symbols: tuple[str, ...]) -> np.ndarray:
    """Weights per symbol in ``symbols`` order; equal by default.

    Weights are fractions of the initial capital (each >= 0, sum in (0, 1]); any
    remainder stays in cash. They are fixed at the start: sleeves compound
    independently, there is no rebalancing between symbols.
    """
    if weights is None:
        return np.full(len(symbols), 1.0 / len(symbols))
    given = dict(weights.items())
    unknown = sorted(set(map(str, given)) - set(symbols))
    missing = [s for s in symbols if s not in given]
    if unknown or missing:
        raise BacktestInputError(f"weights: symbols missing {missing}, unknown {unknown}")
    w = np.array([float(given[s]) for s in symbols])
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        s = symbols[int(np.flatnonzero(bad)[0])]
        raise BacktestInputError(f"weights: weight of {s!r} must be finite and >= 0")
    total = w.sum()
    if not 0 < total <= 1 + 1e-12:
        raise BacktestInputError(f"weights: must sum to a value in (0, 1], got {total:g}")
    return w
