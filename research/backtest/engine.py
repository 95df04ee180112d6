"""The long/flat simulation kernel: positions, fills, trades and equity on 2-D arrays.

Everything here is numpy on ``(symbols, bars)`` C-contiguous arrays and is
vectorised over bars: positions are a shift (plus a forward fill when bars are
missing), trades are the runs of a held position found with one comparison and
one ``flatnonzero``, compounding is a cumulative product over the *trades*
(about a thousand per symbol, not half a million bars), and the equity curve is
one ``np.repeat`` of per-run levels times the close. There is no loop over bars
or symbols. Validation, frames, metrics and plots live elsewhere; this module
only knows arrays.

Fill convention (the same as Freqtrade's backtesting): the signal of the bar
labelled ``t`` is known at that bar's close and is filled at the **open of bar
t+1**; exits likewise. If bar ``t+1`` is missing (NaN prices) the order fills at
the next bar that has an open, with the newest signal at that time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from research.backtest.inputs import MarketArrays, ffill_rows


class FeeModel(StrEnum):
    """How the fee rate ``f`` turns cash into units and units back into cash.

    ``VECTORBT`` (fee on top of the notional): a buy with cash ``C`` at fill price
    ``p`` gets ``C / (p * (1 + f))`` units and pays ``f`` on their notional; a sell
    of ``u`` units at ``p`` returns ``u * p * (1 - f)``. This is vectorbt's model
    and also Freqtrade's trade value formulas (``open_trade_value = amount *
    open_rate * (1 + fee)``, ``close_trade_value = amount * close_rate * (1 -
    fee)``) when the whole sleeve is the trade's value, so a round trip
    multiplies cash by ``p_exit * (1 - f) / (p_entry * (1 + f))``.

    ``DEDUCTED`` (fee taken out of the amount, as when an exchange charges the
    fee in the bought asset): a buy gets ``C * (1 - f) / p`` units; a sell returns
    ``u * p * (1 - f)``; a round trip multiplies cash by
    ``p_exit / p_entry * (1 - f) ** 2``.
    """

    VECTORBT = "vectorbt"
    DEDUCTED = "deducted"


@dataclass(frozen=True)
class EngineOutput:
    """Raw simulation arrays; ``trade_*`` arrays have one entry per trade.

    Trades are ordered by symbol then entry bar. ``trade_exit_bar`` is -1 for a
    trade still open at the last bar; its ``trade_exit_price`` is then the last
    known close (a mark, no exit fee) and its ``trade_exit_value`` the marked value.
    """

    position: np.ndarray  # int8 (symbols, bars): 1 while held during the bar
    equity: np.ndarray  # float64 (symbols, bars): sleeve value at each close
    trade_symbol: np.ndarray  # row index into symbols
    trade_entry_bar: np.ndarray
    trade_exit_bar: np.ndarray
    trade_entry_price: np.ndarray  # fill price incl. slippage
    trade_exit_price: np.ndarray
    trade_units: np.ndarray
    trade_entry_value: np.ndarray  # cash spent, fee included
    trade_exit_value: np.ndarray  # cash received, fee deducted
    trade_fees: np.ndarray
    buy_notional: float
    sell_notional: float


def held_positions(signal: np.ndarray | None, open_valid: np.ndarray | None,
                   shape: tuple[int, int]) -> np.ndarray:
    """Position held during each bar (int8 0/1), from the signal per bar.

    ``signal[:, t]`` is the wanted state after the close of bar ``t``; NaN keeps
    the previous wish (flat before the first signal). It is held from the open of
    ``t + 1`` on, so the first bar is always flat. Where an open is missing no
    fill can happen, so the position stays as it was until the next bar with an
    open. ``signal=None`` is buy & hold: long from the first available open.
    """
    if signal is None:
        if open_valid is None:
            return np.ones(shape, dtype=np.int8)
        return np.logical_or.accumulate(open_valid, axis=1).view(np.int8)
    if signal.dtype.kind == "f":
        if np.isnan(signal).any():
            signal = np.nan_to_num(ffill_rows(signal), nan=0.0)
        signal = signal == 1
    return fill_at_opens(signal, open_valid, shape)


def fill_at_opens(wish: np.ndarray, open_valid: np.ndarray | None,
                  shape: tuple[int, int]) -> np.ndarray:
    """The side held during each bar (int8) from the side wished after each close: the wish
    of bar ``t`` fills at the open of ``t + 1`` (flat at the first bar); where an open is
    missing nothing fills, so the side held stays until the next bar with an open."""
    pos = np.empty(shape, dtype=np.int8)
    pos[:, 0] = 0
    pos[:, 1:] = wish[:, :-1]
    if open_valid is None:
        return pos
    held = pos.astype(np.float32)
    held[~open_valid] = np.nan
    held[:, 0] = 0.0
    return ffill_rows(held).astype(np.int8)


def _segmented_cumprod(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cumulative product restarting at each new group (groups sorted)."""
    return pd.Series(values).groupby(groups, sort=False).cumprod().to_numpy()


def simulate_arrays(market: MarketArrays, capital: np.ndarray, fee: float, slippage: float,
                    fee_model: FeeModel) -> EngineOutput:
    """Run the long/flat simulation; ``capital`` is the initial cash per symbol sleeve."""
    n_sym, n_bar = market.open.shape
    pos = held_positions(market.signal, market.open_valid, (n_sym, n_bar))

    # Runs of constant position per symbol: a run starts at bar 0 and wherever it changes.
    change = np.empty((n_sym, n_bar), dtype=bool)
    change[:, 0] = True
    np.not_equal(pos[:, 1:], pos[:, :-1], out=change[:, 1:])
    starts = np.flatnonzero(change)
    del change
    lengths = np.diff(starts, append=n_sym * n_bar)
    row, col = np.divmod(starts, n_bar)
    is_long = pos.ravel()[starts] == 1
    end = col + lengths  # exclusive: the exit bar of a long run if < n_bar

    # Trades = long runs. Entry at the run's first open, exit at the next run's first open.
    t_idx = np.flatnonzero(is_long)
    t_row, t_entry, t_end = row[t_idx], col[t_idx], end[t_idx]
    t_closed = t_end < n_bar
    opens = market.open.ravel()
    entry_price = opens[starts[t_idx]] * (1.0 + slippage)
    exit_bar = np.where(t_closed, t_end, -1)
    exit_price = np.empty(len(t_idx))
    exit_price[t_closed] = opens[(t_row * n_bar + t_end)[t_closed]] * (1.0 - slippage)
    exit_price[~t_closed] = market.close_filled[t_row[~t_closed], n_bar - 1]

    if fee_model is FeeModel.VECTORBT:
        units_per_cash = 1.0 / (entry_price * (1.0 + fee))
    else:
        units_per_cash = (1.0 - fee) / entry_price
    proceeds_per_unit = np.where(t_closed, exit_price * (1.0 - fee), exit_price)

    # Compounding over trades: cash before each run = capital x product of earlier round trips.
    growth = np.ones(len(starts))
    growth[t_idx[t_closed]] = (units_per_cash * proceeds_per_unit)[t_closed]
    inclusive = _segmented_cumprod(growth, row)
    cash_before = np.empty(len(starts))
    cash_before[0] = 1.0
    cash_before[1:] = inclusive[:-1]
    cash_before[col == 0] = 1.0
    cash_before *= capital[row]

    # Equity: flat runs hold cash, long runs hold units marked at the (carried) close.
    level = cash_before.copy()
    if fee_model is FeeModel.VECTORBT:
        level[t_idx] /= entry_price * (1.0 + fee)
    else:
        level[t_idx] *= (1.0 - fee) / entry_price
    equity = np.repeat(level, lengths).reshape(n_sym, n_bar)
    np.multiply(equity, market.close_filled, out=equity, where=pos.view(bool))

    cash_in = cash_before[t_idx]
    units = level[t_idx]
    exit_value = units * proceeds_per_unit
    entry_fee = units * entry_price * fee if fee_model is FeeModel.VECTORBT else cash_in * fee
    exit_fee = np.where(t_closed, units * exit_price * fee, 0.0)
    return EngineOutput(
        position=pos,
        equity=equity,
        trade_symbol=t_row,
        trade_entry_bar=t_entry,
        trade_exit_bar=exit_bar,
        trade_entry_price=entry_price,
        trade_exit_price=exit_price,
        trade_units=units,
        trade_entry_value=cash_in,
        trade_exit_value=exit_value,
        trade_fees=entry_fee + exit_fee,
        buy_notional=float((units * entry_price).sum()),
        sell_notional=float((units * exit_price)[t_closed].sum()),
    )
