"""The report's metrics are the ones quants know: equal to empyrical's on random equity curves.

empyrical (empyrical-reloaded, the maintained fork used by pyfolio/zipline-reloaded) is
the reference implementation of these statistics. The research report keeps its own
vectorised versions (:mod:`research.backtest.metrics`) rather than importing a tearsheet
library at run time, for measured reasons: the figures are equal (this test, 1e-9), empyrical
costs ~1 s of import in every research process, and quantstats 0.0.86 would add 12 packages
to the research install (yfinance, curl_cffi, lxml, seaborn, ...: a market-data downloader
the report does not use). empyrical is a development dependency only.
"""

from __future__ import annotations

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research.backtest.metrics import compute_metrics

NO_TRADES = pd.DataFrame({"is_open": pd.Series(dtype=bool), "pnl": pd.Series(dtype=float)})
PERIODS = {"1m": 525_600.0, "1h": 8_760.0, "4h": 2_190.0, "1d": 365.0}


@st.composite
def return_paths(draw) -> tuple[np.ndarray, float]:
    n = draw(st.integers(min_value=3, max_value=400))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    vol = draw(st.sampled_from([0.001, 0.01, 0.05]))
    drift = draw(st.floats(min_value=-0.003, max_value=0.003))
    rng = np.random.default_rng(seed)
    returns = np.clip(rng.normal(drift, vol, n), -0.5, 0.5)
    if draw(st.booleans()):  # flat stretches: bars out of the market
        returns[rng.random(n) < 0.3] = 0.0
    return returns, PERIODS[draw(st.sampled_from(sorted(PERIODS)))]


def _ours(returns: np.ndarray, periods: float, initial: float = 1000.0):
    equity = initial * np.cumprod(1.0 + returns)
    return compute_metrics(equity, initial, periods, pd.Timedelta(minutes=1), trades=NO_TRADES,
                           traded_notional=0.0, exposure=1.0)


@settings(max_examples=200, deadline=None)
@given(return_paths())
def test_metrics_equal_empyrical(path):
    returns, periods = path
    ours = _ours(returns, periods)
    r = pd.Series(returns, index=pd.date_range("2024-01-01", periods=len(returns), freq="D"))
    close = {"rel": 1e-9, "abs": 1e-12}
    assert ours.total_return == pytest.approx(ep.cum_returns_final(r), **close)
    assert ours.max_drawdown == pytest.approx(ep.max_drawdown(r), **close)
    assert ours.volatility == pytest.approx(ep.annual_volatility(r, annualization=periods),
                                            **close)
    if returns.std() > 0:
        assert ours.sharpe == pytest.approx(ep.sharpe_ratio(r, annualization=periods), **close)
    if (returns < 0).any():
        assert ours.sortino == pytest.approx(ep.sortino_ratio(r, annualization=periods),
                                             **close)
    with np.errstate(over="ignore"):
        theirs_cagr = ep.cagr(r, annualization=periods)
    if np.isfinite(theirs_cagr) and np.isfinite(ours.cagr):
        assert ours.cagr == pytest.approx(theirs_cagr, rel=1e-9, abs=1e-12)
        theirs_calmar = ep.calmar_ratio(r, annualization=periods)
        if ours.max_drawdown < 0 and np.isfinite(theirs_calmar):  # empyrical's overflows: NaN
            assert ours.calmar == pytest.approx(theirs_calmar, rel=1e-9, abs=1e-12)


def test_a_known_path_by_hand_and_by_empyrical():
    returns = np.array([0.10, -0.20, 0.05, 0.0, 0.10])
    ours = _ours(returns, 365.0)
    equity = 1000 * np.cumprod(1 + returns)  # 1100, 880, 924, 924, 1016.4
    assert ours.total_return == pytest.approx(0.0164)
    assert ours.max_drawdown == pytest.approx(880 / 1100 - 1)
    r = pd.Series(returns, index=pd.date_range("2024-01-01", periods=5, freq="D"))
    assert ours.max_drawdown == pytest.approx(ep.max_drawdown(r))
    assert equity[-1] / 1000 - 1 == pytest.approx(ep.cum_returns_final(r))
