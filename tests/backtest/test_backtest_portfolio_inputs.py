"""Multi-symbol weights, tidy input, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import wide

from research.backtest import BacktestInputError, simulate_long_flat, simulate_long_flat_tidy
from research.data.synthetic import SyntheticMarket, generate_ohlcv

OPENS = {"A": [10.0, 10.0, 20.0], "B": [50.0, 50.0, 25.0]}
CLOSES = {"A": [10.0, 20.0, 20.0], "B": [50.0, 25.0, 25.0]}


def test_equal_weights_by_default():
    res = simulate_long_flat(wide(OPENS), wide(CLOSES), None, timeframe="1d", fee=0.0,
                             initial_capital=1000.0)
    assert res.weights.tolist() == [0.5, 0.5]
    assert res.equity_by_symbol.iloc[-1].tolist() == pytest.approx([1000.0, 250.0])
    assert res.equity.iloc[-1] == pytest.approx(1250.0)


def test_weights_split_capital_and_the_rest_stays_in_cash():
    res = simulate_long_flat(wide(OPENS), wide(CLOSES), None, timeframe="1d", fee=0.0,
                             initial_capital=1000.0, weights={"A": 0.6, "B": 0.2})
    assert res.equity_by_symbol.iloc[0].tolist() == pytest.approx([600.0, 200.0])
    assert res.equity.iloc[-1] == pytest.approx(600 * 2 + 200 * 0.5 + 200)
    total = res.equity_by_symbol.sum(axis=1) + 200.0
    np.testing.assert_allclose(res.equity.to_numpy(), total.to_numpy(), rtol=1e-15)


@pytest.mark.parametrize("weights, field", [
    ({"A": 0.7, "B": 0.7}, "sum"),
    ({"A": -0.1, "B": 0.5}, "'A'"),
    ({"A": 0.5}, "missing ['B']"),
    ({"A": 0.5, "B": 0.2, "C": 0.1}, "unknown ['C']"),
])
def test_bad_weights_are_named(weights, field):
    with pytest.raises(BacktestInputError, match="weights") as err:
        simulate_long_flat(wide(OPENS), wide(CLOSES), None, timeframe="1d", weights=weights)
    assert field in str(err.value)


def test_tidy_input_equals_wide_input():
    market = generate_ohlcv(SyntheticMarket(seed=5), "2024-01-01T00:00Z", "2024-01-01T06:00Z", "1m")
    rng = np.random.default_rng(1)
    signals = market[["datetime", "symbol"]].assign(position=rng.integers(0, 2, len(market)))
    tidy = simulate_long_flat_tidy(market, signals, timeframe="1m", fee=0.001)
    o = market.pivot(index="datetime", columns="symbol", values="open")
    c = market.pivot(index="datetime", columns="symbol", values="close")
    s = signals.pivot(index="datetime", columns="symbol", values="position")
    wide_res = simulate_long_flat(o, c, s, timeframe="1m", fee=0.001)
    np.testing.assert_allclose(tidy.equity.to_numpy(), wide_res.equity.to_numpy(), rtol=1e-15)
    assert len(tidy.trades) == len(wide_res.trades) > 10


def test_tidy_duplicate_bars_are_an_error():
    market = generate_ohlcv(SyntheticMarket(seed=5), "2024-01-01T00:00Z", "2024-01-01T00:10Z", "1m")
    doubled = pd.concat([market, market.iloc[[3]]])
    with pytest.raises(BacktestInputError, match="duplicate bar for symbol"):
        simulate_long_flat_tidy(doubled, None, timeframe="1m")


@pytest.mark.parametrize("mutate, message", [
    (lambda o, c, s: (o.assign(A=[10.0, -1.0, 20.0]), c, s), r"open: .*'A' at bar 2024-01-02"),
    (lambda o, c, s: (o, c.assign(B=[50.0, np.inf, 25.0]), s), r"close: .*'B' at bar"),
    (lambda o, c, s: (o.assign(A=[10.0, np.nan, 20.0]), c, s), r"both prices or neither"),
    (lambda o, c, s: (o, c, s.assign(A=[0, 2, 1])), r"signal: position must be 0 or 1 .*'A'"),
    (lambda o, c, s: (o, c, s.assign(B=[0.0, 0.5, 1.0])), r"signal: .*0, 1 or NaN .*'B'"),
    (lambda o, c, s: (o, c, s.drop(columns="B")), r"signal: columns .*missing \['B'\]"),
    (lambda o, c, s: (o, c, s.set_axis(s.index + pd.Timedelta(days=5))),
     r"signal: bar .* has no price bar"),
    (lambda o, c, s: (o.tz_localize(None), c.tz_localize(None), s), r"open: index must be"),
    (lambda o, c, s: (o, c.iloc[:2], s), r"close: index differs"),
    (lambda o, c, s: (o.set_axis(o.index + pd.Timedelta(hours=1)),
                      c.set_axis(c.index + pd.Timedelta(hours=1)), None),
     r"not on the 86400s grid"),
])
def test_bad_input_errors_name_the_field_and_item(mutate, message):
    s = wide({"A": [1, 0, 1], "B": [0, 1, 1]}).astype(np.int64)
    o, c, s = mutate(wide(OPENS), wide(CLOSES), s)
    with pytest.raises(BacktestInputError, match=message):
        simulate_long_flat(o, c, s, timeframe="1d")


@pytest.mark.parametrize("kw, field", [
    ({"fee": -0.1}, "fee"), ({"fee": 1.0}, "fee"), ({"slippage_bps": np.nan}, "slippage_bps"),
    ({"initial_capital": 0.0}, "initial_capital"), ({"fee_model": "maker"}, "fee_model"),
    ({"timeframe": "7x"}, "timeframe"),
])
def test_bad_parameters_are_named(kw, field):
    kw = {"timeframe": "1d", **kw}
    with pytest.raises(BacktestInputError, match=field):
        simulate_long_flat(wide(OPENS), wide(CLOSES), None, **kw)
