"""Fill timing, position switching, buy & hold, missing bars and late starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import wide

from research.backtest import simulate_long_flat

OPEN = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
CLOSE = [10.5, 11.5, 12.5, 13.5, 14.5, 15.5]


def run(signal, open_=OPEN, close=CLOSE, **kw):
    kw = {"timeframe": "1d", "fee": 0.0, "initial_capital": 100.0, **kw}
    sig = None if signal is None else wide(signal)
    return simulate_long_flat(wide(open_), wide(close), sig, **kw)


def test_signal_at_bar_t_fills_at_the_open_of_bar_t_plus_1():
    res = run([1, 1, 1, 1, 1, 1])
    assert res.position["A"].tolist() == [0, 1, 1, 1, 1, 1]
    trade = res.trades.iloc[0]
    assert trade["entry_time"] == res.equity.index[1]
    assert trade["entry_price"] == 11.0
    # flat through bar 0 (signal only known at its close), then units bought at 11
    assert res.equity.iloc[0] == 100.0
    assert res.equity.iloc[-1] == pytest.approx(100.0 / 11.0 * 15.5, rel=1e-15)


def test_exit_signal_fills_at_the_next_open():
    res = run([1, 0, 0, 0, 0, 0])
    trade = res.trades.iloc[0]
    assert (trade["entry_price"], trade["exit_price"]) == (11.0, 12.0)
    assert trade["exit_time"] == res.equity.index[2]
    assert trade["bars_held"] == 1
    assert res.equity.iloc[2:].tolist() == [pytest.approx(100.0 / 11.0 * 12.0)] * 4


def test_enter_and_exit_on_consecutive_bars_makes_separate_trades():
    res = run([1, 0, 1, 0, 1, 0])
    assert res.position["A"].tolist() == [0, 1, 0, 1, 0, 1]
    t = res.trades
    assert t["entry_price"].tolist() == [11.0, 13.0, 15.0]
    assert t["exit_price"].tolist()[:2] == [12.0, 14.0]
    assert t["is_open"].tolist() == [False, False, True]
    expected = 100.0 * (12 / 11) * (14 / 13) * (15.5 / 15)
    assert res.equity.iloc[-1] == pytest.approx(expected, rel=1e-14)


def test_repeated_identical_signals_are_no_ops():
    once = run([1, np.nan, np.nan, 0, np.nan, np.nan])
    repeated = run([1, 1, 1, 0, 0, 0])
    pd.testing.assert_series_equal(once.equity, repeated.equity)
    assert len(repeated.trades) == 1
    flat_again = run([0, 0, 1, 1, 1, 1])
    assert len(flat_again.trades) == 1
    assert flat_again.trades["entry_price"].iloc[0] == 13.0


def test_the_last_bar_signal_has_no_bar_to_fill_in():
    res = run([0, 0, 0, 0, 0, 1])
    assert res.trades.empty
    assert (res.equity == 100.0).all()


def test_buy_and_hold_equals_price_ratio_minus_fees_exactly():
    fee, slip_bps = 0.001, 5.0
    res = run(None, fee=fee, slippage_bps=slip_bps)
    entry = OPEN[0] * (1 + slip_bps / 1e4)
    units = 100.0 / (entry * (1 + fee))  # fee on top of the notional
    expected = units * np.asarray(CLOSE)
    np.testing.assert_array_equal(res.equity.to_numpy(), np.asarray(expected))
    assert res.position["A"].tolist() == [1] * 6
    assert res.trades["is_open"].tolist() == [True]


def test_no_lookahead_changing_the_future_never_changes_past_equity():
    rng = np.random.default_rng(3)
    n = 60
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.r_[100.0, close[:-1]] * (1 + rng.normal(0, 0.002, n))
    signal = (rng.random(n) < 0.5).astype(float)
    base = run(list(signal), list(open_), list(close), fee=0.001)
    for t in (5, 20, 41, 58):
        o2, c2, s2 = open_.copy(), close.copy(), signal.copy()
        o2[t + 1:] *= rng.uniform(0.5, 2.0, n - t - 1)
        c2[t + 1:] *= rng.uniform(0.5, 2.0, n - t - 1)
        s2[t:] = 1 - s2[t:]  # even the signal of bar t itself: it acts only from t+1
        other = run(list(s2), list(o2), list(c2), fee=0.001)
        np.testing.assert_array_equal(other.equity.to_numpy()[: t + 1],
                                      base.equity.to_numpy()[: t + 1])


def test_missing_bar_delays_the_fill_to_the_next_available_open():
    nan = np.nan
    open_ = [10.0, 11.0, nan, 13.0, 14.0, 15.0]
    close = [10.5, 11.5, nan, 13.5, 14.5, 15.5]
    res = run([0, 1, 0, 0, 0, 0], open_, close)
    # entry wished at close of bar 1 -> bar 2 missing -> the newest wish at bar 3 is flat
    assert res.trades.empty
    res = run([1, 0, 1, 0, 0, 0], open_, close)
    # long from bar 1; exit wished at close of bar 1; bar 2 has no open -> exit at bar 3's
    # open, with the newest wish (bar 2's signal = 1) -> stays long until bar 4's open
    assert res.position["A"].tolist() == [0, 1, 1, 1, 0, 0]
    t = res.trades.iloc[0]
    assert (t["entry_price"], t["exit_price"], t["exit_time"]) == (11.0, 14.0, res.equity.index[4])
    # equity on the missing bar is marked at the last known close
    assert res.equity.iloc[2] == pytest.approx(100 / 11 * 11.5)


def test_symbol_that_starts_late_stays_in_cash_until_its_first_open():
    nan = np.nan
    o = wide({"A": OPEN, "B": [nan, nan, 20.0, 21.0, 22.0, 23.0]})
    c = wide({"A": CLOSE, "B": [nan, nan, 20.5, 21.5, 22.5, 23.5]})
    res = simulate_long_flat(o, c, None, timeframe="1d", fee=0.0, initial_capital=200.0)
    assert res.position["B"].tolist() == [0, 0, 1, 1, 1, 1]
    assert res.equity_by_symbol["B"].tolist()[:2] == [100.0, 100.0]
    assert res.equity_by_symbol["B"].iloc[-1] == pytest.approx(100 / 20 * 23.5)
    sig = wide({"A": [1] * 6, "B": [1] * 6})
    res = simulate_long_flat(o, c, sig, timeframe="1d", fee=0.0, initial_capital=200.0)
    assert res.trades.set_index("symbol").loc["B", "entry_price"] == 20.0


def test_gaps_in_the_index_are_missing_bars():
    idx = pd.date_range("2024-01-01", periods=6, freq="1D", tz="UTC").delete(2)
    o = pd.DataFrame({"A": [10.0, 11.0, 13.0, 14.0, 15.0]}, index=idx)
    c = pd.DataFrame({"A": [10.5, 11.5, 13.5, 14.5, 15.5]}, index=idx)
    res = simulate_long_flat(o, c, None, timeframe="1d", fee=0.0, initial_capital=100.0)
    assert len(res.equity) == 6 and res.metrics.bars == 6
    assert res.equity.iloc[2] == pytest.approx(100 / 10 * 11.5)


def test_float_signal_nan_keeps_the_last_wish_and_bool_signal_works():
    as_bool = run([True, True, False, False, True, True])
    as_float = run([1.0, np.nan, 0.0, np.nan, 1.0, np.nan])
    pd.testing.assert_series_equal(as_bool.equity, as_float.equity)
