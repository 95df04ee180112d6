"""The market store's timeframes: 1m/1d stored, 5m..12h derived from 1m on the contract grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data.market_store import (
    check_readable_timeframe,
    check_stored_timeframe,
    is_derived_timeframe,
    upsert_candles,
)
from research.data.readers import get_crypto_bars, get_crypto_market_data, get_crypto_min_data
from research.data.synthetic import SyntheticMarket, generate_ohlcv
from signal_export.contract import ContractError, floor_to_bar, timeframe_seconds

START, END = pd.Timestamp("2024-03-01T00:00Z"), pd.Timestamp("2024-03-02T06:00Z")


@pytest.fixture
def minutes(store, market) -> pd.DataFrame:
    frame = generate_ohlcv(market, START, END, "1m")
    upsert_candles(frame, store, "1m")
    return frame


def _pandas_resample(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Reference: pandas' own resample, left-closed, left-labelled, epoch origin."""
    rule = pd.Timedelta(seconds=timeframe_seconds(timeframe))
    parts = []
    for symbol, group in frame.groupby("symbol", sort=True):
        agg = group.set_index("datetime").resample(rule, origin="epoch", label="left",
                                                   closed="left").agg(
            {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        agg = agg[group.set_index("datetime")["close"].resample(
            rule, origin="epoch", label="left", closed="left").count() > 0]
        parts.append(agg.reset_index().assign(symbol=symbol))
    out = pd.concat(parts, ignore_index=True)
    out["datetime"] = out["datetime"].astype("datetime64[ms, UTC]")
    return out[["datetime", "symbol", "open", "high", "low", "close", "volume"]]


@pytest.mark.parametrize("timeframe", ["5m", "15m", "1h", "4h"])
def test_derived_bars_are_the_standard_ohlcv_aggregation_of_1m(store, minutes, timeframe):
    got = get_crypto_bars(["BTC/USDT", "ETH/USDT"], START, END - pd.Timedelta("1ms"), timeframe,
                          db=store)
    want = _pandas_resample(minutes, timeframe)
    pd.testing.assert_frame_equal(got, want)
    step = timeframe_seconds(timeframe)
    assert all(floor_to_bar(t, timeframe) == t for t in got["datetime"])  # contract grid
    assert (got["datetime"].astype("int64") // 1000 % step == 0).all()    # epoch-anchored
    per_symbol = got.groupby("symbol").size()
    assert (per_symbol == -(-30 * 3600 // step)).all()  # 30 hours (4h: last bar partial)


def test_four_hour_bars_open_at_midnight_and_every_four_hours(store, minutes):
    got = get_crypto_bars("BTC/USDT", "2024-03-01", "2024-03-01", "4h", db=store)
    assert got["datetime"].dt.strftime("%H:%M").tolist() == [
        "00:00", "04:00", "08:00", "12:00", "16:00", "20:00"]
    first = minutes[(minutes["symbol"] == "BINANCE:BTCUSDT")
                    & (minutes["datetime"] < pd.Timestamp("2024-03-01T04:00Z"))]
    row = got.iloc[0]
    assert row["open"] == first["open"].iloc[0] and row["close"] == first["close"].iloc[-1]
    assert row["high"] == first["high"].max() and row["low"] == first["low"].min()
    assert row["volume"] == pytest.approx(first["volume"].sum(), rel=1e-12)


def test_a_start_inside_a_bar_skips_that_bar_and_the_end_bar_is_whole(store, minutes):
    got = get_crypto_bars("ETH/USDT", pd.Timestamp("2024-03-01T01:10Z"),
                          pd.Timestamp("2024-03-01T03:05Z"), "1h", ["close", "volume"], db=store)
    assert list(got.columns) == ["datetime", "symbol", "close", "volume"]
    assert got["datetime"].dt.strftime("%H:%M").tolist() == ["02:00", "03:00"]
    eth = minutes[minutes["symbol"] == "BINANCE:ETHUSDT"].set_index("datetime")
    assert got["close"].iloc[-1] == eth.loc[pd.Timestamp("2024-03-01T03:59Z"), "close"]
    assert got["volume"].iloc[-1] == pytest.approx(
        eth.loc["2024-03-01T03:00Z":"2024-03-01T03:59Z", "volume"].sum(), rel=1e-12)
    assert get_crypto_bars("ETH/USDT", pd.Timestamp("2024-03-01T01:10Z"),
                           pd.Timestamp("2024-03-01T01:50Z"), "1h", db=store).empty


def test_holes_are_not_filled_and_complete_drops_short_bars(store):
    market = SyntheticMarket(seed=5, symbols=("BTC/USDT",), gap_rate=12.0, max_gap_minutes=20)
    frame = generate_ohlcv(market, START, START + pd.Timedelta(days=1), "1m")
    assert len(frame) < 1440  # the synthetic market left holes
    upsert_candles(frame, store, "1m")
    got = get_crypto_bars("BTC/USDT", "2024-03-01", "2024-03-01", "15m", db=store)
    want = _pandas_resample(frame, "15m")
    pd.testing.assert_frame_equal(got, want)
    counts = frame.groupby(floor_series(frame["datetime"], "15m")).size()
    full = get_crypto_bars("BTC/USDT", "2024-03-01", "2024-03-01", "15m", db=store,
                           complete=True)
    assert full["datetime"].tolist() == [t for t, n in counts.items() if n == 15]
    assert len(full) < len(got)
    assert got["volume"].sum() == pytest.approx(frame["volume"].sum(), rel=1e-12)


def floor_series(values: pd.Series, timeframe: str) -> pd.Series:
    step = timeframe_seconds(timeframe) * 10**3
    ms = values.astype("datetime64[ms, UTC]").astype("int64")
    return pd.to_datetime(ms - np.mod(ms, step), unit="ms", utc=True).astype("datetime64[ms, UTC]")


def test_1m_and_1d_are_read_as_stored_with_one_column_layout(store, minutes, market):
    days = generate_ohlcv(market, "2024-02-01T00:00Z", "2024-03-01T00:00Z", "1d")
    upsert_candles(days, store, "1d")
    got = get_crypto_bars(["ETH/USDT", "BTC/USDT"], "2024-02-01", "2024-02-29", "1d", db=store)
    want = get_crypto_market_data(["BTC/USDT", "ETH/USDT"], "2024-02-01", "2024-02-29", db=store)
    pd.testing.assert_frame_equal(got, want.rename(columns={"date": "datetime"}))
    one = get_crypto_bars("BTC/USDT", "2024-03-01", "2024-03-01", "1m", db=store)
    pd.testing.assert_frame_equal(one, get_crypto_min_data("BTC/USDT", "2024-03-01",
                                                           "2024-03-01", db=store))


def test_which_timeframes_are_stored_derived_or_refused():
    for tf in ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h"):
        assert is_derived_timeframe(tf)
        check_readable_timeframe(tf)
    for tf in ("1m", "1d"):
        assert not is_derived_timeframe(tf)
        check_readable_timeframe(tf)
        check_stored_timeframe(tf)
    with pytest.raises(ContractError, match=r"'4h'.*only 1m, 1d; 4h bars are derived .* store 1m"):
        check_stored_timeframe("4h")
    for bad in ("1w", "2d"):
        with pytest.raises(ContractError, match=f"'{bad}'.*reads 1m and 1d as stored"):
            check_readable_timeframe(bad)
    with pytest.raises(ContractError, match="not of the form"):
        check_readable_timeframe("7x")


def test_writing_a_derived_timeframe_is_refused_with_the_reason(store, market):
    frame = generate_ohlcv(market, START, START + pd.Timedelta(hours=3), "1m")
    with pytest.raises(ContractError, match="derived from the stored 1m bars"):
        upsert_candles(frame, store, "1h")
