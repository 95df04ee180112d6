"""``simulate_long_flat`` and ``simulate_long_short``: the research backtests.

The public entry point of :mod:`research.backtest`. It validates inputs, runs
the vectorised kernel of :mod:`research.backtest.engine`, and packs equity,
positions, trades and metrics into one :class:`BacktestResult`. It is for
portfolios of independent per-symbol sleeves (no rebalancing between symbols):
``simulate_long_flat`` for 0/1 spot signals, ``simulate_long_short`` for -1/0/1
signals with leverage, stops and take-profits under Freqtrade's futures rules
(:mod:`research.backtest.longshort`). Not an order-book simulator; no partial fills.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.backtest.engine import EngineOutput, FeeModel, simulate_arrays
from research.backtest.inputs import (
    BacktestInputError,
    MarketArrays,
    aligned_rows,
    bar_seconds,
    market_from_wide,
    periods_per_year,
    price_rows,
    weights_vector,
    wide_from_tidy,
)
from research.backtest.longshort import RiskArrays, simulate_long_short_arrays
from research.backtest.metrics import Metrics, compute_metrics
from research.backtest.trades import trades_frame
from signal_export.contract import LEVERAGE_MAX


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
    model = _fee_model(fee_model)
    market = market_from_wide(open, close, signal, timeframe)
    w = weights_vector(weights, market.symbols)
    out = simulate_arrays(market, w * initial_capital, fee, slippage_bps / 1e4, model)
    return _result(out, market, w, initial_capital=initial_capital, timeframe=timeframe,
                   fee=fee, slippage_bps=slippage_bps, fee_model=model)


def _fee_model(fee_model: FeeModel | str) -> FeeModel:
    try:
        return FeeModel(fee_model)
    except ValueError as exc:
        raise BacktestInputError(
            f"fee_model: {fee_model!r} is not one of {[m.value for m in FeeModel]}") from exc


def _result(out: EngineOutput, market: MarketArrays, w: np.ndarray, *, initial_capital: float,
            timeframe: str, fee: float, slippage_bps: float,
            fee_model: FeeModel) -> BacktestResult:
    """Equity, positions, trades and metrics of an engine run, as a :class:`BacktestResult`."""
    model = fee_model
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


def simulate_long_short(
    open: pd.DataFrame,  # noqa: A002 - the price field's own name
    close: pd.DataFrame,
    signal: pd.DataFrame | None = None,
    *,
    timeframe: str,
    high: pd.DataFrame | None = None,
    low: pd.DataFrame | None = None,
    leverage: pd.DataFrame | float | None = None,
    stop_loss: pd.DataFrame | float | None = None,
    take_profit: pd.DataFrame | float | None = None,
    funding_rate: pd.DataFrame | None = None,
    price_decimals: Mapping[str, int] | int | None = None,
    fee: float = 0.001,
    slippage_bps: float = 0.0,
    initial_capital: float = 10_000.0,
    weights: Mapping[str, float] | pd.Series | None = None,
    fee_model: FeeModel | str = FeeModel.VECTORBT,
) -> BacktestResult:
    """Backtest long/short/flat signals with leverage, stops and take-profits (futures rules).

    ``signal[t, s]`` is the wanted side after the close of bar ``t``: 1 long, -1 short,
    0 flat, NaN no new signal. Fills and sleeves as :func:`simulate_long_flat`, whose
    results long-only 0/1 input reproduces. In addition (docs/LONG_SHORT.md):

    * A flip (long -> short or back) exits and enters the new side at the same next open
      (Freqtrade's backtester, with shorts, runs a candle again for the other side's entry
      once a trade closed in it).
    * ``leverage`` (>= 1, <= 125), ``stop_loss`` and ``take_profit`` (fractions of the
      entry price, > 0): a scalar for every trade, or wide frames like ``signal``; a trade
      takes the values of the signal bar where its side was first wanted (NaN = none;
      leverage 1). ``stop_loss * leverage`` must be < 1, a short's ``take_profit`` < 1.
    * Stops and targets are checked on every bar the trade is held, the entry bar
      included, on ``high``/``low`` (required with either): a stop hits at ``low <=
      stop`` (short: ``high >= stop``) and fills at the stop, or at the open when the
      whole bar lies beyond it; a target hits at ``high > target`` (short: ``low <
      target``) and fills at the target, or at the open when a later bar opens beyond it.
      Both in one bar: the stop wins. After a stop or target the sleeve stays flat
      until the wanted side changes. Exit reasons: ``exit_signal``, ``stop_loss``, ``roi``.
    * A sleeve's margin grows by ``1 + ratio`` per trade, Freqtrade's profit ratio:
      long ``L (x(1-f) / (e(1+f)) - 1)``, short ``L (1 - x(1+f) / (e(1-f)))``; it is
      marked to the close in between; a loss beyond the margin ends at 0 (liquidation
      itself is not modelled: keep stops inside it).
    * Funding-free unless ``funding_rate`` (a rate per bar, like ``signal``) is given:
      then a position pays ``side * units * open * rate`` at the open of each bar it holds
      (entry bar included, the exit-signal bar not), settled at the exit.

    * ``price_decimals`` (an int, or per symbol): the exchange's tick ``10**-d``; stops are
      rounded away from the entry (Freqtrade: up for longs, down for shorts) and target
      fills to the nearest tick, as Freqtrade does. Default: no rounding.

    ``fee_model="deducted"`` (fee in the bought coin) is spot-only: no shorts, no leverage.
    Trades get ``side`` (1/-1), ``leverage``, ``exit_reason`` and ``funding`` columns.
    """
    _check_costs(fee, slippage_bps, initial_capital)
    model = _fee_model(fee_model)
    market = market_from_wide(open, close, signal, timeframe, sides=True)
    w = weights_vector(weights, market.symbols)
    risk = RiskArrays(
        high=price_rows(high, "high", market), low=price_rows(low, "low", market),
        leverage=aligned_rows(leverage, "leverage", market, low=1.0, high=LEVERAGE_MAX,
                              low_open=False),
        stop_loss=aligned_rows(stop_loss, "stop_loss", market, low=0.0, high=1.0),
        take_profit=aligned_rows(take_profit, "take_profit", market, low=0.0, high=np.inf),
        funding=aligned_rows(funding_rate, "funding_rate", market, low=-1.0, high=1.0,
                             low_open=False),
        price_decimals=_decimals(price_decimals, market.symbols),
    )
    _check_risk(market, risk, model)
    out = simulate_long_short_arrays(market, risk, w * initial_capital, fee, slippage_bps / 1e4,
                                     model)
    return _result(out, market, w, initial_capital=initial_capital, timeframe=timeframe,
                   fee=fee, slippage_bps=slippage_bps, fee_model=model)


def _decimals(value: Mapping[str, int] | int | None, symbols: tuple[str, ...]
              ) -> np.ndarray | None:
    """Price decimals per symbol (the exchange's tick 10**-d), or None (no rounding)."""
    if value is None:
        return None
    given = dict(value) if isinstance(value, Mapping) else dict.fromkeys(symbols, value)
    unknown = sorted(set(map(str, given)) - set(symbols))
    if unknown:
        raise BacktestInputError(f"price_decimals: unknown symbols {unknown}")
    out = np.array([given.get(s, -1) for s in symbols], dtype=object)
    bad = [s for s, d in zip(symbols, out, strict=True)
           if isinstance(d, bool) or not isinstance(d, int | np.integer) or not -1 <= d <= 12]
    if bad:
        raise BacktestInputError(f"price_decimals: {bad[0]!r} needs an integer 0..12 "
                                 f"(-1: no rounding), got {given.get(bad[0])!r}")
    return out.astype(np.int64)


def _check_risk(market: MarketArrays, risk: RiskArrays, model: FeeModel) -> None:
    """The cross-field rules of the contract (signal_export.contract.check_risk_fields)."""
    def where(mask: np.ndarray) -> str:
        mask = np.broadcast_to(mask, market.open.shape)
        r, c = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
        return f"symbol {market.symbols[r]!r} at bar {market.index[c]}"

    if (risk.stop_loss is not None or risk.take_profit is not None) and (
            risk.high is None or risk.low is None):
        raise BacktestInputError("high/low: required with stop_loss or take_profit (stops and "
                                 "targets are checked on each bar's high and low)")
    if risk.stop_loss is not None:
        lev = 1.0 if risk.leverage is None else np.nan_to_num(risk.leverage, nan=1.0)
        bad = risk.stop_loss * lev >= 1
        if bad.any():
            raise BacktestInputError(f"stop_loss: stop_loss x leverage must be < 1, the stop "
                                     f"would lie beyond the margin ({where(bad)})")
    sig = market.signal
    if risk.take_profit is not None and sig is not None and bool((risk.take_profit >= 1).any()):
        bad = (np.asarray(sig) == -1) & (risk.take_profit >= 1)
        if bad.any():
            raise BacktestInputError(
                f"take_profit: must be < 1 on a short ({where(bad)})")
    if model is FeeModel.DEDUCTED:
        short = sig is not None and bool((np.asarray(sig) == -1).any())
        levered = risk.leverage is not None and bool((np.nan_to_num(risk.leverage,
                                                                     nan=1.0) != 1).any())
        if short or levered:
            raise BacktestInputError("fee_model: 'deducted' is spot-only (no shorts, no "
                                     "leverage); futures use 'vectorbt' (Freqtrade's formulas)")


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
    wide = _TidyWide(market, symbol_col, time_col)
    return simulate_long_flat(wide("open"), wide("close"), wide.signals(signals, position_col),
                              timeframe=timeframe, **kwargs)


def simulate_long_short_tidy(
    market: pd.DataFrame,
    signals: pd.DataFrame | None = None,
    *,
    timeframe: str,
    symbol_col: str = "symbol",
    time_col: str = "datetime",
    position_col: str = "position",
    **kwargs,
) -> BacktestResult:
    """:func:`simulate_long_short` on tidy frames (what ``decide_positions`` returns).

    As :func:`simulate_long_flat_tidy`, with ``position_col`` -1/0/1 and, when
    ``signals`` has them, per-bar ``leverage``, ``stop_loss`` and ``take_profit``
    columns (the entry signal's values; NaN = none); ``market`` then needs ``high`` and
    ``low``. Other keyword arguments go to :func:`simulate_long_short`.
    """
    wide = _TidyWide(market, symbol_col, time_col)
    risk = {name: wide.signals(signals, name) for name in ("leverage", "stop_loss",
                                                           "take_profit")
            if signals is not None and name in signals and signals[name].notna().any()}
    if {"stop_loss", "take_profit"} & set(risk):
        kwargs.setdefault("high", wide("high"))
        kwargs.setdefault("low", wide("low"))
    return simulate_long_short(wide("open"), wide("close"), wide.signals(signals, position_col),
                               timeframe=timeframe, **risk, **kwargs)


class _TidyWide:
    """Tidy market/signal columns -> the wide (bar x symbol) frames the simulations take."""

    def __init__(self, market: pd.DataFrame, symbol_col: str, time_col: str) -> None:
        self.market, self.symbol_col, self.time_col = market, symbol_col, time_col
        self.columns = self("open").columns

    def __call__(self, field: str) -> pd.DataFrame:
        return wide_from_tidy(self.market, field, symbol_col=self.symbol_col,
                              time_col=self.time_col)

    def signals(self, signals: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
        if signals is None:
            return None
        wide = wide_from_tidy(signals, column, symbol_col=self.symbol_col,
                              time_col=self.time_col, name="signals")
        unknown = sorted(set(wide.columns) - set(self.columns))
        if unknown:
            raise BacktestInputError(f"signals: symbols {unknown} have no market data")
        return wide.reindex(columns=self.columns).astype(np.float64)
