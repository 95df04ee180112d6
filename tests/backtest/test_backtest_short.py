"""simulate_long_short: hand-checked cases, Freqtrade's intrabar rules, properties, errors.

The vectorised engine is held to a naive bar-by-bar oracle
(``backtest_reference_short``) on random long/short/flat signals with leverage, stops,
targets, missing bars and funding; long-only input must give today's results exactly.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from backtest_reference_short import simulate_reference_short
from conftest import wide

from research.backtest import BacktestInputError, simulate_long_flat, simulate_long_short


def run(open_, signal, *, high=None, low=None, close=None, fee=0.0, **kwargs):
    """One symbol 'A' on a 1d grid; close defaults to the open."""
    o = wide(open_)
    c = wide(close if close is not None else open_)
    s = wide(signal)
    h = wide(high) if high is not None else None
    lw = wide(low) if low is not None else None
    return simulate_long_short(o, c, s, high=h, low=lw, timeframe="1d", fee=fee,
                               initial_capital=100.0, **kwargs)


NAN = np.nan


# --- hand-checked cases -------------------------------------------------------

def test_a_short_of_a_rising_price_loses_what_the_long_gains():
    prices = [100.0, 100.0, 110.0, 121.0, 121.0]
    short = run(prices, [-1, NAN, NAN, 0, NAN])
    long_ = run(prices, [1, NAN, NAN, 0, NAN])
    t = short.trades.iloc[0]
    assert t["side"] == -1 and t["entry_price"] == 100.0 and t["exit_price"] == 121.0
    assert t["exit_reason"] == "exit_signal" and not t["is_open"]
    assert short.equity.iloc[-1] == pytest.approx(79.0)  # 100 * (1 - 0.21)
    assert long_.equity.iloc[-1] == pytest.approx(121.0)
    assert list(short.position["A"]) == [0, -1, -1, -1, 0]
    assert short.equity.iloc[2] == pytest.approx(90.0)  # marked at the close


def test_leverage_scales_the_return_of_each_trade():
    prices = [100.0, 100.0, 104.0, 104.0]
    one = run(prices, [1, NAN, 0, NAN])
    three = run(prices, [1, NAN, 0, NAN], leverage=3.0)
    assert one.trades["return"].iloc[0] == pytest.approx(0.04)
    assert three.trades["return"].iloc[0] == pytest.approx(0.12)
    assert three.trades["leverage"].iloc[0] == 3.0
    assert three.equity.iloc[-1] == pytest.approx(112.0)


def test_fees_follow_freqtrades_profit_ratio_for_shorts():
    res = run([100.0, 100.0, 90.0], [-1, 0, NAN], fee=0.001, leverage=2.0)
    e, x, f, lev = 100.0, 90.0, 0.001, 2.0
    want = lev * (1 - x * (1 + f) / (e * (1 - f)))  # freqtrade Trade.calc_profit_ratio
    assert res.trades["return"].iloc[0] == pytest.approx(want, rel=1e-12)


def test_a_stop_fills_at_the_stop_price_and_the_sleeve_stays_flat():
    #        bar:   0      1      2      3      4
    res = run([100.0, 100.0, 99.0, 97.0, 99.0], [1, NAN, NAN, NAN, NAN],
              high=[100.0, 101.0, 100.0, 98.0, 99.0], low=[100.0, 99.0, 94.0, 96.0, 99.0],
              stop_loss=0.05)
    t = res.trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_price"] == pytest.approx(95.0)
    assert t["exit_time"] == res.equity.index[2] and t["bars_held"] == 2
    assert len(res.trades) == 1  # the wanted side did not change: no re-entry
    assert list(res.position["A"]) == [0, 1, 1, 0, 0]
    assert res.equity.iloc[2:].tolist() == pytest.approx([95.0] * 3)


def test_a_gapped_stop_fills_at_the_open():
    res = run([100.0, 100.0, 90.0], [1, NAN, NAN], high=[100.0, 100.0, 92.0],
              low=[100.0, 99.0, 88.0], stop_loss=0.05)
    assert res.trades["exit_price"].iloc[0] == 90.0  # whole bar below 95: the open
    # freqtrade fills at the stop as soon as the bar reaches it, even after a gap down
    res = run([100.0, 100.0, 90.0], [1, NAN, NAN], high=[100.0, 100.0, 96.0],
              low=[100.0, 99.0, 88.0], stop_loss=0.05)
    assert res.trades["exit_price"].iloc[0] == pytest.approx(95.0)


def test_a_short_stop_is_above_and_its_target_below():
    res = run([100.0, 100.0, 100.0], [-1, NAN, NAN], high=[100.0, 100.0, 103.0],
              low=[100.0, 99.0, 99.0], stop_loss=0.02, take_profit=0.1)
    t = res.trades.iloc[0]
    assert (t["side"], t["exit_reason"]) == (-1, "stop_loss")
    assert t["exit_price"] == pytest.approx(102.0)
    res = run([100.0, 100.0, 100.0], [-1, NAN, NAN], high=[100.0, 100.0, 101.0],
              low=[100.0, 99.0, 89.0], stop_loss=0.02, take_profit=0.1)
    t = res.trades.iloc[0]
    assert (t["exit_reason"], t["exit_price"]) == ("roi", pytest.approx(90.0))


def test_stop_and_target_in_one_bar_exit_at_the_stop():
    res = run([100.0, 100.0, 100.0], [1, NAN, NAN], high=[100.0, 100.0, 120.0],
              low=[100.0, 99.5, 80.0], stop_loss=0.05, take_profit=0.1)
    t = res.trades.iloc[0]
    assert (t["exit_reason"], t["exit_price"]) == ("stop_loss", pytest.approx(95.0))


def test_a_target_fills_at_the_open_when_a_later_bar_opens_beyond_it():
    res = run([100.0, 100.0, 100.0, 115.0], [1, NAN, NAN, NAN],
              high=[100.0, 101.0, 101.0, 116.0], low=[100.0, 99.0, 99.0, 114.0],
              take_profit=0.1)
    t = res.trades.iloc[0]
    assert (t["exit_reason"], t["exit_price"]) == ("roi", 115.0)
    assert t["exit_time"] == res.equity.index[3]


def test_the_entry_bar_is_checked_for_stops_and_targets():
    res = run([100.0, 100.0], [1, NAN], high=[100.0, 111.0], low=[100.0, 99.0],
              take_profit=0.1)
    t = res.trades.iloc[0]
    assert (t["exit_reason"], t["exit_price"], t["bars_held"]) == ("roi", pytest.approx(110.0), 1)


def test_an_exit_signal_at_the_open_comes_before_the_bars_stop():
    res = run([100.0, 100.0, 100.0, 100.0], [1, 0, NAN, NAN],
              high=[100.0, 100.0, 100.0, 100.0], low=[100.0, 99.0, 50.0, 50.0],
              stop_loss=0.05)
    t = res.trades.iloc[0]
    assert (t["exit_reason"], t["exit_price"]) == ("exit_signal", 100.0)


def test_a_flip_exits_and_enters_the_new_side_at_the_same_open():
    prices = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    res = run(prices, [1, NAN, -1, NAN, NAN, NAN])
    first, second = res.trades.iloc[0], res.trades.iloc[1]
    assert (first["side"], first["exit_time"], first["exit_price"]) == (
        1, res.equity.index[3], 103.0)
    assert (second["side"], second["entry_time"], second["entry_price"]) == (
        -1, res.equity.index[3], 103.0)
    assert list(res.position["A"]) == [0, 1, 1, -1, -1, -1]


def test_a_flip_after_a_stop_enters_at_the_next_open():
    res = run([100.0, 100.0, 100.0, 100.0, 100.0], [1, NAN, -1, NAN, NAN],
              high=[100.0] * 5, low=[100.0, 90.0, 100.0, 100.0, 100.0], stop_loss=0.05)
    assert res.trades["exit_reason"].tolist() == ["stop_loss", ""]
    assert res.trades["entry_time"].iloc[1] == res.equity.index[3]


def test_one_bar_wishes_each_trade_for_one_bar():
    res = run([100.0] * 5, [1, NAN, -1, 1, NAN])
    assert res.trades["side"].tolist() == [1, -1, 1]
    assert res.trades["entry_time"].tolist() == list(res.equity.index[[1, 3, 4]])


def test_per_signal_values_come_from_the_bar_that_started_the_side():
    lev = wide([2.0, NAN, NAN, 5.0, NAN, NAN])
    res = run([100.0, 100.0, 110.0, 110.0, 121.0, 121.0], [1, NAN, 0, -1, NAN, NAN],
              leverage=lev)
    assert res.trades["leverage"].tolist() == [2.0, 5.0]


def test_funding_is_paid_by_longs_and_received_by_shorts():
    rate = wide([0.0, 0.001, 0.001, 0.0])
    long_ = run([100.0] * 4, [1, NAN, 0, NAN], funding_rate=rate)
    short = run([100.0] * 4, [-1, NAN, 0, NAN], funding_rate=rate)
    assert long_.trades["funding"].iloc[0] == pytest.approx(0.2)  # 2 bars x 0.1 % of 100
    assert long_.equity.iloc[-1] == pytest.approx(99.8)
    assert short.equity.iloc[-1] == pytest.approx(100.2)
    free = run([100.0] * 4, [1, NAN, 0, NAN])
    assert free.equity.iloc[-1] == 100.0 and free.trades["funding"].iloc[0] == 0.0


# --- long-only input: today's engine, exactly ----------------------------------

@pytest.mark.parametrize("fee_model", ["vectorbt", "deducted"])
@pytest.mark.parametrize("seed", [3, 4])
def test_long_only_input_gives_exactly_the_long_flat_results(seed, fee_model):
    rng = np.random.default_rng(seed)
    n, syms = 600, ["A", "B", "C"]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, 3)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * (1 + 1e-3 * rng.normal(size=(n, 3)))
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    o = pd.DataFrame(open_, index=idx, columns=syms)
    c = pd.DataFrame(close, index=idx, columns=syms)
    o.iloc[40:55, 1] = c.iloc[40:55, 1] = np.nan
    o.iloc[:30, 2] = c.iloc[:30, 2] = np.nan
    sig = pd.DataFrame(((rng.random((n, 3)) < 0.05).cumsum(0) % 2).astype(float), index=idx,
                       columns=syms)
    sig[rng.random((n, 3)) < 0.3] = np.nan
    for signal in (sig, None):
        kw = {"timeframe": "1h", "fee": 0.001, "slippage_bps": 2.0, "fee_model": fee_model}
        old = simulate_long_flat(o, c, signal, **kw)
        new = simulate_long_short(o, c, signal, **kw)
        assert np.array_equal(old.equity.to_numpy(), new.equity.to_numpy())
        assert np.array_equal(old.equity_by_symbol.to_numpy(), new.equity_by_symbol.to_numpy())
        assert np.array_equal(old.position.to_numpy(), new.position.to_numpy())
        pd.testing.assert_frame_equal(old.trades, new.trades[list(old.trades.columns)],
                                      check_exact=True)
        assert (new.trades["side"] == 1).all() and (new.trades["leverage"] == 1).all()
        assert asdict(old.metrics) == asdict(new.metrics) or _nan_equal(old.metrics,
                                                                         new.metrics)


def _nan_equal(a, b) -> bool:
    da, db = asdict(a), asdict(b)
    return all(da[k] == db[k] or (da[k] != da[k] and db[k] != db[k]) for k in da)


# --- the vectorised engine against the bar-by-bar oracle --------------------------

def _random_case(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.01, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    missing = rng.random(n) < 0.03
    missing[0] = False
    for a in (open_, close, high, low):
        a[missing] = np.nan
    signal = rng.choice([-1.0, 0.0, 1.0, np.nan, np.nan, np.nan], n)
    lev = np.where(rng.random(n) < 0.7, rng.choice([1.0, 2.0, 3.0, 5.0], n), np.nan)
    stop = np.where(rng.random(n) < 0.7, rng.uniform(0.005, 0.04, n), np.nan)
    target = np.where(rng.random(n) < 0.7, rng.uniform(0.005, 0.08, n), np.nan)
    funding = np.where(rng.random(n) < 0.2, rng.normal(0, 1e-3, n), np.nan)
    return open_, high, low, close, signal, lev, stop, target, funding


@pytest.mark.parametrize("seed", range(8))
def test_engine_matches_the_bar_by_bar_oracle(seed):
    o, h, lw, c, sig, lev, stop, target, funding = _random_case(seed)
    fee, slip = 0.0005, 1e-4
    res = run(list(o), list(sig), high=list(h), low=list(lw), close=list(c), fee=fee,
              slippage_bps=1.0, leverage=wide(list(lev)), stop_loss=wide(list(stop)),
              take_profit=wide(list(target)), funding_rate=wide(list(funding)))
    eq, pos, trades = simulate_reference_short(
        o, h, lw, c, sig, fee=fee, slip=slip, capital=100.0, leverage=lev, stop_loss=stop,
        take_profit=target, funding=funding)
    np.testing.assert_allclose(res.equity.to_numpy(), eq, rtol=1e-9)
    assert res.position["A"].tolist() == pos
    got = res.trades
    assert len(got) == len(trades) > 5
    index = res.equity.index
    for (_, g), want in zip(got.iterrows(), trades, strict=True):
        assert g["side"] == want["side"]
        assert g["entry_time"] == index[want["entry_bar"]]
        if want["exit_bar"] >= 0:
            assert g["exit_time"] == index[want["exit_bar"]]
        assert g["exit_reason"] == want["reason"]
        assert g["entry_price"] == pytest.approx(want["entry_price"], rel=1e-12)
        assert g["exit_price"] == pytest.approx(want["exit_price"], rel=1e-12)
        assert g["leverage"] == want["leverage"]
        assert g["funding"] == pytest.approx(want["funding"], rel=1e-9, abs=1e-12)
    reasons = set(got["exit_reason"])
    assert {"exit_signal", "stop_loss", "roi"} <= reasons


# --- bad input: one clear error naming the field ----------------------------------

@pytest.mark.parametrize(("kwargs", "match"), [
    ({"stop_loss": 0.05}, "high/low: required"),
    ({"stop_loss": 0.3, "leverage": 4.0, "high": [1.0] * 3, "low": [1.0] * 3},
     "stop_loss: stop_loss x leverage must be < 1"),
    ({"take_profit": 1.5, "high": [1.0] * 3, "low": [1.0] * 3}, "take_profit: must be < 1"),
    ({"leverage": 0.5}, r"leverage: values must lie in \[1, 125\]"),
    ({"stop_loss": -0.1, "high": [1.0] * 3, "low": [1.0] * 3}, r"stop_loss: values must lie"),
    ({"fee_model": "deducted"}, "fee_model: 'deducted' is spot-only"),
    ({"high": [1.0, NAN, 1.0], "low": [1.0] * 3}, "high: price must be finite"),
])
def test_bad_input_is_one_clear_error(kwargs, match):
    with pytest.raises(BacktestInputError, match=match):
        run([1.0, 1.0, 1.0], [-1, NAN, NAN], **kwargs)


def test_a_signal_outside_minus_one_to_one_is_rejected():
    with pytest.raises(BacktestInputError, match="signal: position must be -1, 0, 1 or NaN"):
        run([1.0, 1.0], [2, NAN])


# --- the exchange's tick, as Freqtrade rounds -------------------------------------------

def test_stops_are_rounded_away_from_the_entry_and_targets_to_the_nearest_tick():
    res = run([100.0, 100.0, 100.0], [1, NAN, NAN], high=[100.0, 100.0, 100.0],
              low=[100.0, 99.0, 90.0], stop_loss=0.0333333, price_decimals=2)
    assert res.trades["exit_price"].iloc[0] == 96.67  # 96.66667 rounded up for a long
    res = run([100.0, 100.0, 100.0], [-1, NAN, NAN], high=[100.0, 101.0, 110.0],
              low=[100.0, 99.0, 99.0], stop_loss=0.0333333, price_decimals=2)
    assert res.trades["exit_price"].iloc[0] == 103.33  # 103.33333 rounded down for a short
    res = run([100.0, 100.0, 100.0], [1, NAN, NAN], high=[100.0, 100.5, 120.0],
              low=[100.0, 99.0, 99.0], take_profit=0.123456, price_decimals=2)
    assert res.trades["exit_price"].iloc[0] == 112.35  # nearest tick


def test_tick_rounding_matches_freqtrades_price_to_precision():
    from freqtrade.exchange.exchange_utils import ROUND, ROUND_DOWN, ROUND_UP, TICK_SIZE
    from freqtrade.exchange.exchange_utils import price_to_precision as ft_round

    from research.backtest.longshort import to_tick

    rng = np.random.default_rng(5)
    raw = rng.uniform(0.5, 70_000, 3000)
    digits = rng.integers(0, 12, 3000)
    prices = np.array([round(float(p), int(d)) for p, d in zip(raw, digits, strict=True)]
                      + [21125.89, 0.1 + 0.2, 95.0, 1e-3])
    for decimals in (0, 2, 4, 8):
        tick = 10.0 ** -decimals
        for direction, mode in ((1, ROUND_UP), (-1, ROUND_DOWN), (0, ROUND)):
            got = to_tick(prices, np.full(len(prices), decimals), direction)
            want = [ft_round(float(p), tick, TICK_SIZE, rounding_mode=mode) for p in prices]
            assert got.tolist() == want, (decimals, direction)


def test_stop_scan_gives_the_same_first_hits_dense_and_sparse():
    """The scan reads a dense batch as contiguous views and a sparse one by gathering."""
    from research.backtest.longshort import scan_exits

    rng = np.random.default_rng(9)
    n_bar, n_sym = 3000, 3
    low = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_sym, n_bar)), axis=1))
    high = low * (1 + np.abs(rng.normal(0, 0.01, (n_sym, n_bar))))
    starts, ends = [], []
    for r in range(n_sym):  # back-to-back trades between sorted distinct bars: dense
        pts = np.sort(rng.choice(np.arange(n_bar), 80, replace=False))
        starts.append(r * n_bar + pts[:-1])
        ends.append(r * n_bar + pts[1:])
    start, end = np.concatenate(starts), np.concatenate(ends)
    side = rng.choice([-1, 1], len(start)).astype(np.int8)
    ref = low.ravel()[start]
    stop = np.where(rng.random(len(start)) < 0.8, ref * (1 - side * 0.03), np.nan)
    target = np.where(rng.random(len(start)) < 0.8, ref * (1 + side * 0.05), np.nan)
    full = scan_exits(start, end, side, stop, target, high, low, n_bar)
    sub = np.arange(0, len(start), 4)  # a quarter of the bars of their span: sparse
    sparse = scan_exits(start[sub], end[sub], side[sub], stop[sub], target[sub], high, low,
                        n_bar)
    assert (full[0] >= 0).sum() > 5 and (full[1] >= 0).sum() > 5
    assert full[0][sub].tolist() == sparse[0].tolist()
    assert full[1][sub].tolist() == sparse[1].tolist()
    # a brute-force first hit per trade
    for i in range(len(start)):
        bars = np.arange(start[i], end[i])
        lo_, hi_ = low.ravel()[bars], high.ravel()[bars]
        hit = (lo_ <= stop[i]) if side[i] > 0 else (hi_ >= stop[i])
        want = int(bars[np.argmax(hit)]) if hit.any() else -1
        assert full[0][i] == want
