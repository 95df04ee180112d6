"""Time, volume and dollar bars from 1m bars: labels, aggregation, volume conservation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from factor_data import ohlcv
from hypothesis import given, settings
from hypothesis import strategies as st

from research.data.bars import BarsError, dollar_bars, expected_bars, time_bars, volume_bars

A, B = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"


def test_hourly_bars_are_labelled_by_open_time_and_aggregate_ohlcv():
    m = ohlcv(150, A, 1, start="2024-01-01 00:30")
    out = time_bars(m, "1h")
    assert out["datetime"].tolist() == [pd.Timestamp(f"2024-01-01 0{h}:00", tz="UTC")
                                        for h in (0, 1, 2)]
    assert out["n_bars"].tolist() == [30, 60, 60]  # the first hour is incomplete, not padded
    second = m.iloc[30:90]
    row = out.iloc[1]
    assert row["open"] == second["open"].iloc[0] and row["close"] == second["close"].iloc[-1]
    assert row["high"] == second["high"].max() and row["low"] == second["low"].min()
    assert row["volume"] == pytest.approx(second["volume"].sum(), rel=1e-12)
    assert expected_bars("1h") == 60


def test_daily_bars_start_at_midnight_utc_per_symbol():
    m = pd.concat([ohlcv(3000, A, 1, start="2024-01-01 22:00"), ohlcv(100, B, 2)])
    out = time_bars(m, "1d")
    assert (out["datetime"].dt.hour == 0).all()
    assert out.groupby("symbol")["n_bars"].sum().to_dict() == {A: 3000, B: 100}
    np.testing.assert_allclose(out.groupby("symbol")["volume"].sum().sort_index(),
                               m.groupby("symbol")["volume"].sum().sort_index(), rtol=1e-12)


def test_unknown_timeframe_is_an_error():
    with pytest.raises(BarsError, match="7m"):
        time_bars(ohlcv(10, A, 1), "7m")


def test_volume_bars_conserve_volume_and_close_on_the_threshold():
    m = pd.concat([ohlcv(2000, A, 1), ohlcv(1500, B, 2)])
    threshold = 500.0
    out = volume_bars(m, threshold)
    for sym in (A, B):
        got = out[out["symbol"] == sym]
        src = m[m["symbol"] == sym]
        assert got["volume"].sum() == pytest.approx(src["volume"].sum(), rel=1e-12)
        assert got["n_bars"].sum() == len(src)
        # each complete bar ends on the 1m bar whose running total crosses the next multiple
        running = src.set_index("datetime")["volume"].cumsum()
        end_total = running.loc[got["end_datetime"]].to_numpy()
        before_end = end_total - src.set_index("datetime")["volume"].loc[got["end_datetime"]]
        crossed = np.floor(end_total / threshold) > np.floor(before_end.to_numpy() / threshold)
        assert (crossed == got["complete"].to_numpy()).all()
        assert got["complete"].iloc[:-1].all()  # only the last bar may still be open
        assert got["volume"].mean() == pytest.approx(threshold, rel=0.2)


def test_volume_bar_boundaries_known_answer():
    m = ohlcv(6, A, 1).assign(volume=[4.0, 4.0, 4.0, 1.0, 9.0, 2.0])
    out = volume_bars(m, 10.0)
    # running totals before each bar: 0,4,8,12,13,22 -> bar ids 0,0,0,1,1,2
    assert out["n_bars"].tolist() == [3, 2, 1]
    assert out["volume"].tolist() == [12.0, 10.0, 2.0]
    assert out["complete"].tolist() == [True, True, False]
    assert out["end_datetime"].iloc[0] == m["datetime"].iloc[2]


def test_dollar_bars_use_close_times_volume():
    m = ohlcv(4, A, 1).assign(close=[10.0, 20.0, 10.0, 5.0], volume=[1.0, 1.0, 1.0, 2.0])
    out = dollar_bars(m, 30.0)
    # values 10, 20, 10, 10 -> totals before: 0,10,30,40 -> ids 0,0,1,1; bar 1 ends at 50 < 60
    assert out["dollar_volume"].tolist() == [30.0, 20.0]
    assert out["volume"].tolist() == [2.0, 3.0]
    assert out["complete"].tolist() == [True, False]


def test_threshold_must_be_positive():
    with pytest.raises(BarsError, match="threshold"):
        volume_bars(ohlcv(5, A, 1), 0)


@settings(max_examples=50, deadline=None)
@given(volumes=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200),
       threshold=st.floats(1e-3, 1e7, allow_nan=False))
def test_volume_is_conserved_for_any_input(volumes, threshold):
    m = ohlcv(len(volumes), A, 1).assign(volume=volumes)
    out = volume_bars(m, threshold)
    assert out["volume"].sum() == pytest.approx(sum(volumes), rel=1e-9, abs=1e-9)
    assert out["n_bars"].sum() == len(volumes)
