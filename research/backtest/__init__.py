"""Research backtest: long/flat 0/1 signals with Freqtrade's next-open fills, metrics, plots."""

from research.backtest.engine import FeeModel
from research.backtest.inputs import BacktestInputError, periods_per_year
from research.backtest.metrics import Metrics, compute_metrics
from research.backtest.simulate import BacktestResult, simulate_long_flat, simulate_long_flat_tidy

__all__ = [
    "BacktestInputError",
    "BacktestResult",
    "FeeModel",
    "Metrics",
    "compute_metrics",
    "periods_per_year",
    "simulate_long_flat",
    "simulate_long_flat_tidy",
]
