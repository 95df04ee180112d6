"""``simulate_long_flat``: the research backtest of 0/1 position signals.

The public entry point of :mod:`research.backtest`. It validates inputs, runs
the vectorised kernel of :mod:`research.backtest.engine`, and packs equity,
positions, trades and metrics into one :class:`BacktestResult`. It is for
long/flat portfolios of independent per-symbol sleeves (no shorts, no
leverage, no rebalancing between symbols); it is not an order-book simulator
and has no stop-losses or partial fills.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.backtest.engine import FeeModel, simulate_arrays
from research.backtest.inputs import (
    BacktestInputError,
    bar_seconds,
    market_from_wide,
    periods_per_year,
    weights_vector,
    wide_from_tidy,
)
from research.backtest.metrics import Metrics, compute_metrics
from research.backtest.trades import trades_frame


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest produced.

    ``equity`` is the portfolio value at each bar close (the sleeves plus any
    unallocated cash); ``equity_by_symbol`` and ``position`` are wide frames
    (bars x symbols); ``position`` is 1 for bars during which the symbol was held
    (entered at that bar's open or earlier). The initial capital is the value
    before the first bar, i.e. not a row of ``equity``.
    """

    equity: pd.Series
    equity_by_symbol: pd.DataFrame
    position: pd.DataFrame
    trades: pd.DataFrame
    metrics: Metrics
    timeframe: str
    initial_capital: float
    weights: pd.Series
    fee: float
    slippage_bps: float
    fee_model: FeeModel


def _check_costs(fee: float, slippage_bps: float, initial_capital: float) -> None:
    if not (np.isfinite(fee) and 0 <= fee < 1):
        raise BacktestInputError(f"fee: must be a rate in [0, 1), got {fee!r}")
    if not (np.isfinite(slippage_bps) and 0 <= slippage_bps < 10_000):
        raise BacktestInputError(f"slippage_bps: must be in [0, 10000), got {slippage_bps!r}")
    if not (np.isfinite(initial_capital) and initial_capital > 0):
        raise BacktestInputError(f"initial_capital: must be > 0, got {initial_capital!r}")


def simulate_long_flat(
    open: pd.DataFrame,  # noqa: A002 - the price field's own name
    close: pd.DataFrame,
    signal: pd.DataFrame | None = None,
    *,
    timeframe: str,
    fee: float = 0.001,
    slippage_bps: float = 0.0,
    initial_capital: float = 10_000.0,
    weights: Mapping[str, float] | pd.Series | None = None,
    fee_model: FeeModel | str = FeeModel.VECTORBT,
) -> BacktestResult:
    """Backtest long/flat 0/1 signals per symbol with next-open fills.

    Inputs are wide frames: index = bar open times (tz-aware UTC, on the
    ``timeframe`` grid), columns = symbols. ``signal[t, s]`` is the wanted
    position (1 long, 0 flat, NaN = no new signal, keep the last) decided at
    the close of bar ``t``. ``signal=None`` means buy & hold: every sleeve buys
    at its first available open and holds to the end.

    Fills, as in Freqtrade's backtesting: the signal of bar ``t`` is filled at
    the **open of bar t+1**, entries and exits alike, so a signal can never use
    the bar it was computed on; repeated identical signals are no-ops. A
    missing bar (NaN open and close) cannot be traded: the order fills at the
    next bar that has an open, with the newest signal at that time. Symbols
    that start late are NaN until their first bar and stay in cash until then.
    Open positions are marked at the close (carried over missing bars) with
    no exit fee; a trade still open at the end is listed with ``is_open``.

    Costs: ``fee`` is a rate charged on both sides per ``fee_model`` (see
    :class:`FeeModel`; the default is vectorbt's and Freqtrade's trade value
    formula); ``slippage_bps`` moves every fill against the trader (buys at
    ``open * (1 + bps/1e4)``, sells at ``open * (1 - bps/1e4)``).

    Capital: ``weights`` (symbol -> fraction of ``initial_capital``, equal by
    default, sum <= 1, remainder kept as cash) fix each symbol's sleeve at the
    start; sleeves compound independently. Metrics are annualised with
    365 x 86400 / bar seconds periods per year.
    """
    _check_costs(fee, slippage_bps, initial_capital)
    try:
        model = FeeModel(fee_model)
    except ValueError as exc:
        raise BacktestInputError(
            f"fee_model: {fee_model!r} is not one of {[m.value for m in FeeModel]}") from exc
    market = market_from_wide(open, close, signal, timeframe)
    w = weights_vector(weights, market.symbols)
    out = simulate_arrays(market, w * initial_capital, fee, slippage_bps / 1e4, model)
    cash = initial_capital * (1.0 - w.sum())
    total = out.equity.sum(axis=0)
    if cash:
        total += cash
    n_bar = len(market.index)
    trades = trades_frame(out, market.index, market.symbols)
    held_bars = np.bincount(out.trade_symbol, weights=trades["bars_held"].to_numpy(),
                            minlength=len(market.symbols))
    metrics = compute_metrics(
        total, initial_capital, periods_per_year(timeframe),
        pd.Timedelta(seconds=bar_seconds(timeframe)), trades=trades,
        traded_notional=out.buy_notional + out.sell_notional,
        exposure=float((held_bars / n_bar * w).sum() / w.sum()),
    )
    symbols = list(market.symbols)
    return BacktestResult(
        equity=pd.Series(total, index=market.index, name="equity", copy=False),
        equity_by_symbol=pd.DataFrame(out.equity.T, index=market.index, columns=symbols,
                                      copy=False),
        position=pd.DataFrame(out.position.T, index=market.index, columns=symbols, copy=False),
        trades=trades,
        metrics=metrics,
        timeframe=timeframe,
        initial_capital=float(initial_capital),
        weights=pd.Series(w, index=symbols, name="weight"),
        fee=float(fee),
        slippage_bps=float(slippage_bps),
        fee_model=model,
    )


def simulate_long_flat_tidy(
    market: pd.DataFrame,
    signals: pd.DataFrame | None = None,
    *,
    timeframe: str,
    symbol_col: str = "symbol",
    time_col: str = "datetime",
    position_col: str = "position",
    **kwargs,
) -> BacktestResult:
    """:func:`simulate_long_flat` on tidy frames (one row per symbol and bar).

    ``market`` has ``symbol_col``, ``time_col`` (bar open time, UTC), ``open`` and
    ``close`` (as :func:`research.data.synthetic.generate_ohlcv` returns); a
    bar absent for a symbol is a missing bar. ``signals`` has ``symbol_col``,
    ``time_col`` and ``position_col`` (0/1); bars without a row get no new signal.
    Other keyword arguments go to :func:`simulate_long_flat`.
    """
    open_ = wide_from_tidy(market, "open", symbol_col=symbol_col, time_col=time_col)
    close = wide_from_tidy(market, "close", symbol_col=symbol_col, time_col=time_col)
    wide_signal = None
    if signals is not None:
        wide_signal = wide_from_tidy(signals, position_col, symbol_col=symbol_col,
                                     time_col=time_col, name="signals")
        unknown = sorted(set(wide_signal.columns) - set(open_.columns))
        if unknown:
            raise BacktestInputError(f"signals: symbols {unknown} have no market data")
        wide_signal = wide_signal.reindex(columns=open_.columns).astype(np.float64)
    return simulate_long_flat(open_, close, wide_signal, timeframe=timeframe, **kwargs)
