"""Fees, slippage and the trades list against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import wide

from research.backtest import FeeModel, simulate_long_flat
from research.backtest.trades import TRADE_COLUMNS

OPEN = [10.0, 10.0, 12.0, 12.5]
CLOSE = [10.0, 11.0, 12.5, 13.0]
SIGNAL = [1, 0, 0, 0]  # long from bar 1's open (10) to bar 2's open (12)


def run(**kw):
    kw = {"timeframe": "1d", "initial_capital": 1000.0, **kw}
    return simulate_long_flat(wide(OPEN), wide(CLOSE), wide(SIGNAL), **kw)


def test_vectorbt_fee_model_round_trip_by_hand():
    t = run(fee=0.01).trades.iloc[0]
    units = 1000 / (10 * 1.01)  # 99.00990099...
    assert t["units"] == pytest.approx(99.00990099009901, rel=1e-15)
    assert t["units"] == pytest.approx(units, rel=1e-15)
    assert t["fees"] == pytest.approx(units * 10 * 0.01 + units * 12 * 0.01, rel=1e-14)
    assert t["fees"] == pytest.approx(21.782178217821784, rel=1e-14)
    assert t["exit_value"] == pytest.approx(1176.2376237623762, rel=1e-14)
    assert t["return"] == pytest.approx(12 * 0.99 / (10 * 1.01) - 1, rel=1e-14)


def test_deducted_fee_model_round_trip_by_hand():
    res = run(fee=0.01, fee_model="deducted")
    t = res.trades.iloc[0]
    assert t["units"] == pytest.approx(99.0, rel=1e-15)
    assert t["fees"] == pytest.approx(10.0 + 11.88, rel=1e-14)
    assert t["exit_value"] == pytest.approx(1176.12, rel=1e-14)
    assert res.fee_model is FeeModel.DEDUCTED
    assert res.equity.iloc[-1] == pytest.approx(1176.12, rel=1e-14)


def test_slippage_moves_both_fills_against_the_trader():
    t = run(fee=0.0, slippage_bps=50).trades.iloc[0]
    assert t["entry_price"] == pytest.approx(10.05, rel=1e-15)
    assert t["exit_price"] == pytest.approx(11.94, rel=1e-15)
    assert t["return"] == pytest.approx(11.94 / 10.05 - 1, rel=1e-14)


def test_zero_fee_costs_nothing_and_fee_always_costs():
    free, paid = run(fee=0.0), run(fee=0.001)
    assert free.trades["fees"].iloc[0] == 0.0
    assert free.equity.iloc[-1] == pytest.approx(1000 * 12 / 10, rel=1e-15)
    assert paid.equity.iloc[-1] < free.equity.iloc[-1]


def test_trades_list_columns_and_values_by_hand():
    o = wide({"A": [10.0, 10.0, 12.0, 12.5, 13.0], "B": [5.0, 5.0, 4.0, 4.0, 5.0]})
    c = wide({"A": [10.0, 11.0, 12.5, 13.0, 13.5], "B": [5.0, 4.5, 4.0, 4.5, 5.5]})
    s = wide({"A": [1, 0, 1, 1, 1], "B": [0, 1, 0, 0, 0]})
    res = simulate_long_flat(o, c, s, timeframe="1d", fee=0.0, initial_capital=200.0)
    t = res.trades
    assert tuple(t.columns) == TRADE_COLUMNS
    idx = res.equity.index
    expected = pd.DataFrame({
        "symbol": ["A", "A", "B"],
        "entry_time": [idx[1], idx[3], idx[2]],
        "exit_time": [idx[2], pd.NaT, idx[3]],
        "entry_price": [10.0, 12.5, 4.0],
        "exit_price": [12.0, 13.5, 4.0],  # the open trade is marked at the last close
        "bars_held": [1, 2, 1],
        "is_open": [False, True, False],
    })
    got = t[expected.columns].assign(symbol=t["symbol"].astype(str))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert t["entry_value"].tolist() == pytest.approx([100.0, 120.0, 100.0])
    assert t["pnl"].tolist() == pytest.approx([20.0, 120 / 12.5 * 13.5 - 120, 0.0])
    assert t["return"].tolist() == pytest.approx([0.2, 13.5 / 12.5 - 1, 0.0])
    assert res.metrics.n_trades == 2 and res.metrics.n_open_trades == 1


@pytest.mark.parametrize("model", list(FeeModel))
def test_trade_cash_flows_add_up(model):
    rng = np.random.default_rng(11)
    n = 200
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    open_ = np.r_[50.0, close[:-1]]
    sig = (rng.random(n) < 0.5).astype(float)
    res = simulate_long_flat(wide(list(open_)), wide(list(close)), wide(list(sig)),
                             timeframe="1d", fee=0.002, slippage_bps=3, fee_model=model)
    t = res.trades[~res.trades["is_open"]]
    assert len(t) > 10
    # notional + fees: what was paid in and out
    np.testing.assert_allclose(t["exit_value"] + t["units"] * t["exit_price"] * 0.002,
                               t["units"] * t["exit_price"], rtol=1e-12)
    entry_fee = t["fees"] - t["units"] * t["exit_price"] * 0.002
    np.testing.assert_allclose(t["units"] * t["entry_price"] + entry_fee, t["entry_value"],
                               rtol=1e-12)
    # each trade starts with the cash the previous one ended with
    np.testing.assert_allclose(t["entry_value"].to_numpy()[1:], t["exit_value"].to_numpy()[:-1],
                               rtol=1e-12)
    assert res.equity.iloc[-1] == pytest.approx(res.trades["exit_value"].iloc[-1]
                                                if res.trades["is_open"].iloc[-1]
                                                else t["exit_value"].iloc[-1], rel=1e-12)
