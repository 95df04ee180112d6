"""Research backtest: long/flat and long/short signals with Freqtrade's fills, metrics, plots."""

from research.backtest.engine import FeeModel
from research.backtest.inputs import BacktestInputError, periods_per_year
from research.backtest.metrics import Metrics, compute_metrics
from research.backtest.simulate import (
    BacktestResult,
    simulate_long_flat,
    simulate_long_flat_tidy,
    simulate_long_short,
    simulate_long_short_tidy,
)

__all__ = [
    "BacktestInputError",
    "BacktestResult",
    "FeeModel",
    "Metrics",
    "compute_metrics",
    "periods_per_year",
    "simulate_long_flat",
    "simulate_long_flat_tidy",
    "simulate_long_short",
    "simulate_long_short_tidy",
]
