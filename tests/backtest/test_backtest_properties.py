"""Property tests: the vectorised engine equals a naive bar-by-bar simulator on any input."""

from __future__ import annotations

import numpy as np
import pandas as pd
from backtest_reference import simulate_reference
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from research.backtest import FeeModel, simulate_long_flat

INDEX_START = pd.Timestamp("2024-01-01", tz="UTC")


@st.composite
def markets(draw):
    n_sym = draw(st.integers(1, 3))
    n_bar = draw(st.integers(2, 30))
    shape = (n_bar, n_sym)
    prices = st.floats(0.5, 200.0, allow_nan=False)
    close = draw(arrays(np.float64, shape, elements=prices))
    open_ = draw(arrays(np.float64, shape, elements=prices))
    missing = draw(arrays(np.bool_, shape)) & draw(arrays(np.bool_, shape))  # sparse gaps
    late = draw(st.lists(st.integers(0, n_bar - 1), min_size=n_sym, max_size=n_sym))
    for j, first in enumerate(late):
        if draw(st.booleans()):
            missing[:first, j] = True
    close[missing] = np.nan
    open_[missing] = np.nan
    signal = None
    if draw(st.booleans()):
        signal = draw(arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0, np.nan])))
        if not np.isnan(signal).any() and draw(st.booleans()):
            signal = signal.astype(draw(st.sampled_from([np.bool_, np.int8, np.int64])))
    fee = draw(st.sampled_from([0.0, 0.001, 0.0075]))
    slip = draw(st.sampled_from([0.0, 2.5, 30.0]))
    model = draw(st.sampled_from(list(FeeModel)))
    return open_, close, signal, fee, slip, model


def frame(values: np.ndarray) -> pd.DataFrame:
    n_bar, n_sym = values.shape
    index = pd.date_range(INDEX_START, periods=n_bar, freq="1h")
    return pd.DataFrame(values, index=index, columns=[f"S{j}" for j in range(n_sym)])


@settings(max_examples=100, deadline=None)
@given(markets())
def test_engine_matches_the_bar_by_bar_reference(case):
    open_, close, signal, fee, slip, model = case
    n_sym = open_.shape[1]
    res = simulate_long_flat(frame(open_), frame(close),
                             None if signal is None else frame(signal), timeframe="1h",
                             fee=fee, slippage_bps=slip, initial_capital=100.0 * n_sym,
                             fee_model=model)
    total = np.zeros(open_.shape[0])
    for j in range(n_sym):
        eq, pos, trades = simulate_reference(
            open_[:, j], close[:, j], None if signal is None else signal[:, j].astype(float),
            fee=fee, slip=slip / 1e4, capital=100.0, model=model.value)
        np.testing.assert_allclose(res.equity_by_symbol[f"S{j}"].to_numpy(), eq, rtol=1e-12)
        np.testing.assert_array_equal(res.position[f"S{j}"].to_numpy(), pos)
        got = res.trades[res.trades["symbol"] == f"S{j}"]
        index = res.equity.index
        assert list(got["entry_time"]) == [index[t[0]] for t in trades]
        assert list(got["exit_time"]) == [index[t[1]] if t[1] >= 0 else pd.NaT for t in trades]
        np.testing.assert_allclose(got["entry_price"], [t[2] for t in trades], rtol=1e-15)
        np.testing.assert_allclose(got["exit_price"], [t[3] for t in trades], rtol=1e-15)
        np.testing.assert_allclose(got["entry_value"], [t[4] for t in trades], rtol=1e-12)
        np.testing.assert_allclose(got["exit_value"], [t[5] for t in trades], rtol=1e-12)
        total += eq
    np.testing.assert_allclose(res.equity.to_numpy(), total, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(markets(), st.data())
def test_future_changes_never_change_past_equity(case, data):
    open_, close, signal, fee, slip, model = case
    n_bar = open_.shape[0]
    t = data.draw(st.integers(0, n_bar - 2))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    o2, c2 = open_.copy(), close.copy()
    o2[t + 1:] *= rng.uniform(0.5, 2.0, o2[t + 1:].shape)
    c2[t + 1:] *= rng.uniform(0.5, 2.0, c2[t + 1:].shape)
    s2 = None
    if signal is not None:
        s2 = signal.astype(float)
        s2[t:] = rng.choice([0.0, 1.0, np.nan], s2[t:].shape)
    kw = {"timeframe": "1h", "fee": fee, "slippage_bps": slip, "fee_model": model}
    base = simulate_long_flat(frame(open_), frame(close),
                              None if signal is None else frame(signal), **kw)
    other = simulate_long_flat(frame(o2), frame(c2), None if s2 is None else frame(s2), **kw)
    np.testing.assert_array_equal(other.equity.to_numpy()[: t + 1],
                                  base.equity.to_numpy()[: t + 1])
    np.testing.assert_array_equal(other.position.to_numpy()[: t + 1],
                                  base.position.to_numpy()[: t + 1])
