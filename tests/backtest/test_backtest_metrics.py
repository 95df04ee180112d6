"""Metric values against small hand-computed examples, and annualisation per timeframe."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import wide

from research.backtest import compute_metrics, periods_per_year, simulate_long_flat

DAY = pd.Timedelta(days=1)


def trades(pnl=(), is_open=()):
    return pd.DataFrame({"pnl": list(pnl), "is_open": list(is_open) or [False] * len(pnl)})


def metrics(equity, initial=100.0, ppy=365.0, bar=DAY, t=None, notional=0.0, exposure=0.0):
    return compute_metrics(np.asarray(equity, dtype=float), initial, ppy, bar,
                           trades=trades() if t is None else t, traded_notional=notional,
                           exposure=exposure)


def test_periods_per_year_follow_the_timeframe():
    assert periods_per_year("1d") == 365
    assert periods_per_year("1h") == 8760
    assert periods_per_year("1m") == 525_600
    assert periods_per_year("4h") == 2190


def test_return_cagr_volatility_sharpe_sortino_by_hand():
    m = metrics([110.0, 99.0, 121.0])
    r = [0.1, -0.1, 121 / 99 - 1]
    mean = sum(r) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert m.total_return == pytest.approx(0.21, rel=1e-14)
    assert m.cagr == pytest.approx(1.21 ** (365 / 3) - 1, rel=1e-12)
    assert m.volatility == pytest.approx(std * math.sqrt(365), rel=1e-12)
    assert m.sharpe == pytest.approx(mean / std * math.sqrt(365), rel=1e-12)
    downside = math.sqrt(0.01 / 3)
    assert m.sortino == pytest.approx(mean * 365 / (downside * math.sqrt(365)), rel=1e-12)
    assert m.max_drawdown == pytest.approx(-0.1, rel=1e-14)
    assert m.max_drawdown_bars == 1
    assert m.calmar == pytest.approx(m.cagr / 0.1, rel=1e-12)


def test_max_drawdown_and_its_duration_by_hand():
    m = metrics([120.0, 90.0, 100.0, 110.0, 130.0, 125.0])
    assert m.max_drawdown == pytest.approx(90 / 120 - 1)
    assert m.max_drawdown_bars == 3  # 90, 100, 110 below the 120 peak
    assert m.max_drawdown_duration == 3 * DAY
    never_recovers = metrics([120.0, 90.0, 100.0, 110.0, 119.0])
    assert never_recovers.max_drawdown_bars == 4
    below_start = metrics([95.0, 99.0, 101.0])
    assert below_start.max_drawdown == pytest.approx(-0.05)
    assert below_start.max_drawdown_bars == 2


def test_annualisation_scales_with_the_timeframe():
    eq = [101.0, 100.0, 102.0, 101.5, 103.0]
    daily = metrics(eq, ppy=periods_per_year("1d"))
    minute = metrics(eq, ppy=periods_per_year("1m"), bar=pd.Timedelta(minutes=1))
    assert minute.volatility / daily.volatility == pytest.approx(math.sqrt(1440), rel=1e-12)
    assert minute.sharpe / daily.sharpe == pytest.approx(math.sqrt(1440), rel=1e-12)
    assert minute.sortino / daily.sortino == pytest.approx(math.sqrt(1440), rel=1e-12)
    assert daily.total_return == minute.total_return
    assert daily.cagr == pytest.approx(1.03 ** (365 / 5) - 1, rel=1e-12)
    assert minute.cagr == math.inf  # 3% in 5 minutes compounds past float range


def test_win_rate_and_profit_factor_use_closed_trades_only():
    t = trades([10.0, -5.0, 3.0, -2.0, -100.0], [False, False, False, False, True])
    m = metrics([100.0, 100.0], t=t)
    assert m.win_rate == 0.5
    assert m.profit_factor == pytest.approx(13 / 7)
    assert (m.n_trades, m.n_open_trades) == (4, 1)
    only_wins = metrics([100.0, 100.0], t=trades([1.0, 2.0]))
    assert only_wins.profit_factor == math.inf and only_wins.win_rate == 1.0
    none = metrics([100.0, 100.0])
    assert math.isnan(none.win_rate) and math.isnan(none.profit_factor)


def test_turnover_and_exposure_from_a_simulation_by_hand():
    o = wide([10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
    c = wide([10.5, 11.5, 12.5, 13.5, 14.5, 15.5])
    s = wide([1, 0, 0, 0, 0, 0])
    res = simulate_long_flat(o, c, s, timeframe="1d", fee=0.0, initial_capital=100.0)
    units = 100 / 11
    eq = [100.0, units * 11.5] + [units * 12] * 4
    notional = 100.0 + units * 12
    assert res.metrics.turnover == pytest.approx(notional / np.mean(eq), rel=1e-12)
    assert res.metrics.turnover_annual == pytest.approx(notional / np.mean(eq) / (6 / 365))
    assert res.metrics.exposure == pytest.approx(1 / 6)


def test_exposure_is_capital_weighted():
    o = wide({"A": [10.0] * 4, "B": [10.0] * 4})
    s = wide({"A": [1, 1, 1, 1], "B": [0, 0, 0, 0]})
    res = simulate_long_flat(o, o, s, timeframe="1d", weights={"A": 0.75, "B": 0.25})
    assert res.metrics.exposure == pytest.approx(0.75 * 3 / 4)


def test_no_drawdown_gives_nan_calmar_and_flat_equity_nan_sharpe():
    up = metrics([101.0, 102.0, 103.0])
    assert up.max_drawdown == 0 and math.isnan(up.calmar) and math.isnan(up.sortino)
    flat = metrics([100.0, 100.0, 100.0])
    assert math.isnan(flat.sharpe) and flat.volatility == 0
