"""The buy-and-hold benchmark of a backtest: the same universe, capital, weights and costs.

Every symbol's sleeve buys at its first available open (a symbol that starts
late waits in cash) and holds to the end, marked at each close, through the
same engine, fee model and slippage as the strategy, so the two equity curves
and metric sets compare like for like. Not an index or a market-cap-weighted
benchmark.
"""

from __future__ import annotations

import pandas as pd

from research.backtest.simulate import BacktestResult, simulate_long_flat_tidy


def buy_and_hold(result: BacktestResult, market: pd.DataFrame) -> BacktestResult:
    """Buy-and-hold of ``result``'s symbols over ``market`` (tidy OHLCV) with its costs."""
    symbols = [str(s) for s in result.weights.index]
    universe = market[market["symbol"].astype(str).isin(symbols)]
    return simulate_long_flat_tidy(
        universe, None, timeframe=result.timeframe, fee=result.fee,
        slippage_bps=result.slippage_bps, initial_capital=result.initial_capital,
        weights=result.weights, fee_model=result.fee_model)
