"""Performance metrics of an equity curve and a trades list, annualised per timeframe.

Pure functions over a 1-D equity series (the portfolio's value at each bar
close) and the trades frame of :mod:`research.backtest.trades`. Annualisation
uses ``periods_per_year`` = 365 x 86400 / bar seconds (1d -> 365, 1m ->
525,600); crypto trades every day. Not for per-trade analytics beyond win rate
and profit factor, and not a benchmark-relative report (no alpha/beta).

Definitions (``E_0`` = initial capital before the first bar, ``E_1..E_n`` the
closes, ``r_i = E_i / E_{i-1} - 1``, ``P`` = periods per year, ``n`` = bars):

- ``total_return`` = ``E_n / E_0 - 1``; ``cagr`` = ``(E_n / E_0) ** (P / n) - 1``.
- ``volatility`` = sample std of ``r`` (ddof 1) x ``sqrt(P)``.
- ``sharpe`` = mean(r) / std(r, ddof 1) x ``sqrt(P)`` (risk-free rate 0).
- ``sortino`` = mean(r) x P / (``sqrt(mean(min(r, 0) ** 2))`` x ``sqrt(P)``).
- ``max_drawdown`` = min over bars of ``E_i / max_{j<=i} E_j - 1`` (<= 0);
  ``max_drawdown_bars`` = longest stretch, in bars, spent below a previous peak
  (to recovery, or to the end if never recovered).
- ``calmar`` = cagr / |max_drawdown| (NaN without a drawdown).
- ``turnover`` = (bought + sold notional) / mean equity, over the whole run;
  ``turnover_annual`` = that per year.
- ``exposure`` = capital-weighted fraction of bars with a position held.
- ``win_rate`` = closed trades with pnl > 0 / closed trades; ``profit_factor`` =
  sum of winning pnl / |sum of losing pnl| over closed trades (inf with no loser).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Metrics:
    """Summary figures of one backtest; see the module docstring for definitions."""

    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    max_drawdown_bars: int
    max_drawdown_duration: pd.Timedelta
    calmar: float
    turnover: float
    turnover_annual: float
    exposure: float
    n_trades: int
    n_open_trades: int
    win_rate: float
    profit_factor: float
    periods_per_year: float
    bars: int

    def to_dict(self) -> dict[str, float | int | pd.Timedelta]:
        return asdict(self)


def _nan_div(num: float, den: float) -> float:
    return float(num / den) if den != 0 else float("nan")


def drawdown(equity: np.ndarray, initial: float) -> np.ndarray:
    """``E_i / running peak - 1`` at each bar, the initial capital counting as a peak."""
    peak = np.maximum.accumulate(np.concatenate(([initial], equity)))[1:]
    return equity / peak - 1.0


def longest_underwater(equity: np.ndarray, initial: float) -> int:
    """Longest run of bars strictly below the running peak (initial capital included)."""
    values = np.concatenate(([initial], equity))
    at_peak = values >= np.maximum.accumulate(values)
    last_peak = np.maximum.accumulate(np.where(at_peak, np.arange(len(values)), 0))
    return int((np.arange(len(values)) - last_peak).max())


def trade_stats(pnl: np.ndarray) -> tuple[float, float]:
    """(win rate, profit factor) of closed trades' pnl; NaN when there are none."""
    if len(pnl) == 0:
        return float("nan"), float("nan")
    wins = pnl[pnl > 0].sum()
    losses = -pnl[pnl < 0].sum()
    win_rate = float((pnl > 0).mean())
    if losses == 0:
        return win_rate, float("inf") if wins > 0 else float("nan")
    return win_rate, float(wins / losses)


def compute_metrics(equity: pd.Series | np.ndarray, initial_capital: float,
                    periods_per_year: float, bar: pd.Timedelta, *, trades: pd.DataFrame,
                    traded_notional: float, exposure: float) -> Metrics:
    """All metrics from the total equity curve, the trades frame and two engine totals."""
    e = np.asarray(equity, dtype=np.float64)
    n = len(e)
    prev = np.concatenate(([initial_capital], e[:-1]))
    r = e / prev - 1.0
    growth = e[-1] / initial_capital
    years = n / periods_per_year
    with np.errstate(over="ignore"):  # a short, good run annualises to inf, not an error
        cagr = float(np.float64(growth) ** (1.0 / years) - 1.0) if growth > 0 else -1.0
    std = r.std(ddof=1) if n > 1 else float("nan")
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    dd = drawdown(e, initial_capital)
    max_dd = float(dd.min())
    dd_bars = longest_underwater(e, initial_capital)
    closed = ~trades["is_open"].to_numpy(dtype=bool)
    win_rate, profit_factor = trade_stats(trades["pnl"].to_numpy()[closed])
    turnover = traded_notional / e.mean()
    return Metrics(
        total_return=float(growth - 1.0),
        cagr=float(cagr),
        volatility=float(std * np.sqrt(periods_per_year)),
        sharpe=_nan_div(r.mean() * np.sqrt(periods_per_year), std),
        sortino=_nan_div(r.mean() * periods_per_year, downside * np.sqrt(periods_per_year)),
        max_drawdown=max_dd,
        max_drawdown_bars=dd_bars,
        max_drawdown_duration=bar * dd_bars,
        calmar=_nan_div(cagr, abs(max_dd)),
        turnover=float(turnover),
        turnover_annual=float(turnover / years),
        exposure=float(exposure),
        n_trades=int(closed.sum()),
        n_open_trades=int((~closed).sum()),
        win_rate=win_rate,
        profit_factor=profit_factor,
        periods_per_year=float(periods_per_year),
        bars=n,
    )
