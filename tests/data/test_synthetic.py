"""The synthetic market: deterministic, sane OHLC, slice-stable, correlated, with regimes/gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data.synthetic import (
    SyntheticMarket,
    generate_ohlcv,
    generate_symbol_ohlcv,
    symbol_spec,
)
from signal_export.contract import ContractError

START, END = "2024-01-01T00:00Z", "2024-01-04T00:00Z"


def test_same_seed_gives_identical_candles_and_another_seed_does_not(market):
    a = generate_ohlcv(market, START, END, "1m")
    b = generate_ohlcv(SyntheticMarket(seed=11, symbols=("BTC/USDT", "ETH/USDT")), START, END)
    c = generate_ohlcv(SyntheticMarket(seed=12, symbols=("BTC/USDT", "ETH/USDT")), START, END)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"], c["close"])


def test_frame_is_tidy_utc_labelled_by_open_time(market):
    frame = generate_ohlcv(market, START, END, "1d")
    assert list(frame.columns) == ["datetime", "symbol", "open", "high", "low", "close", "volume"]
    assert str(frame["datetime"].dtype) == "datetime64[ms, UTC]"
    assert set(frame["symbol"]) == {"BINANCE:BTCUSDT", "BINANCE:ETHUSDT"}
    assert (frame["datetime"] == frame["datetime"].dt.normalize()).all()
    assert frame.groupby("symbol").size().tolist() == [3, 3]
    assert (frame[["open", "high", "low", "close", "volume"]].dtypes == "float64").all()


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1h", "4h", "1d"])
def test_ohlc_bounds_and_next_open_equals_previous_close(market, timeframe):
    frame = generate_ohlcv(market, "2024-01-01T00:00Z", "2024-01-20T00:00Z", timeframe)
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["low"] > 0).all() and (frame["volume"] > 0).all()
    for _, group in frame.groupby("symbol"):
        # without gaps the path is continuous: each open is the previous close exactly
        assert (group["open"].to_numpy()[1:] == group["close"].to_numpy()[:-1]).all()


@pytest.mark.parametrize(("timeframe", "start", "end"), [
    ("1m", "2024-02-03T05:07:00Z", "2024-02-04T01:00:00Z"),
    ("15m", "2024-02-03T05:07:31Z", "2024-02-05T00:00:00Z"),
    ("1h", "2024-02-01T23:00:00Z", "2024-02-10T13:30:00Z"),
    ("1d", "2024-02-02T12:00:00Z", "2024-02-20T00:00:00Z"),
])
def test_any_slice_equals_the_same_slice_of_a_longer_generation(market, timeframe, start, end):
    longer = generate_symbol_ohlcv(market, "BTC/USDT", "2024-01-01T00:00Z", "2024-03-01T00:00Z",
                                   timeframe)
    inside = (longer["datetime"] >= pd.Timestamp(start)) & (longer["datetime"] < pd.Timestamp(end))
    piece = generate_symbol_ohlcv(market, "BINANCE:BTCUSDT", start, end, timeframe)
    assert len(piece) > 0
    pd.testing.assert_frame_equal(piece, longer[inside].reset_index(drop=True))


def test_higher_timeframes_aggregate_the_1m_bars(market):
    day = ("2024-03-01T00:00Z", "2024-03-02T00:00Z")
    minutes = generate_symbol_ohlcv(market, "ETH/USDT", *day)
    hours = generate_symbol_ohlcv(market, "ETH/USDT", *day, "1h")
    agg = minutes.set_index("datetime").resample("1h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    np.testing.assert_array_equal(hours[["open", "high", "low", "close"]].to_numpy(),
                                  agg[["open", "high", "low", "close"]].to_numpy())
    np.testing.assert_allclose(hours["volume"].to_numpy(), agg["volume"].to_numpy(), rtol=1e-9)


def test_prices_sit_on_the_tick_grid(market):
    frame = generate_symbol_ohlcv(market, "BTC/USDT", START, END)
    decimals = symbol_spec(market, "BTC/USDT").price_decimals
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(frame[col].to_numpy(), np.round(frame[col], decimals))


def test_symbols_share_a_market_factor():
    market = SyntheticMarket(seed=3, symbols=("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"))
    daily = generate_ohlcv(market, "2020-01-01T00:00Z", "2024-01-01T00:00Z", "1d")
    returns = np.log(daily.pivot(index="datetime", columns="symbol", values="close")).diff()
    corr = returns.corr().to_numpy()
    off_diagonal = corr[~np.eye(len(corr), dtype=bool)]
    assert off_diagonal.min() > 0.15  # independent walks would scatter around 0


def test_volatility_changes_with_regimes(market):
    daily = generate_symbol_ohlcv(market, "BTC/USDT", "2019-01-01T00:00Z", "2024-01-01T00:00Z",
                                  "1d")
    vol = np.log(daily["close"]).diff().rolling(60).std().dropna()
    assert vol.max() / vol.min() > 1.5


def test_gaps_drop_bars_without_touching_the_others():
    plain = SyntheticMarket(seed=5, symbols=("BTC/USDT",))
    gappy = SyntheticMarket(seed=5, symbols=("BTC/USDT",), gap_rate=2.0, max_gap_minutes=20)
    full = generate_symbol_ohlcv(plain, "BTC/USDT", START, END)
    holes = generate_symbol_ohlcv(gappy, "BTC/USDT", START, END)
    assert 0 < len(full) - len(holes) < len(full) // 10
    assert not holes.isna().any().any()  # missing, never filled
    kept = full[full["datetime"].isin(holes["datetime"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, holes)
    again = generate_symbol_ohlcv(gappy, "BTC/USDT", START, END)
    pd.testing.assert_frame_equal(holes, again)


def test_higher_timeframe_bars_use_only_present_minutes():
    gappy = SyntheticMarket(seed=5, symbols=("BTC/USDT",), gap_rate=2.0, max_gap_minutes=20)
    minutes = generate_symbol_ohlcv(gappy, "BTC/USDT", START, END)
    hours = generate_symbol_ohlcv(gappy, "BTC/USDT", START, END, "1h")
    agg = minutes.set_index("datetime").resample("1h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last"}).dropna()
    np.testing.assert_array_equal(hours[["open", "high", "low", "close"]].to_numpy(),
                                  agg.to_numpy())


def test_bad_arguments_are_clear_errors(market):
    with pytest.raises(ContractError, match="naive"):
        generate_symbol_ohlcv(market, "BTC/USDT", pd.Timestamp("2024-01-01"), END)
    with pytest.raises(ContractError, match="weekly"):
        generate_symbol_ohlcv(market, "BTC/USDT", START, END, "1w")
    with pytest.raises(ContractError, match="timeframe"):
        generate_symbol_ohlcv(market, "BTC/USDT", START, END, "7x")
    with pytest.raises(ValueError, match="covers"):
        generate_symbol_ohlcv(market, "BTC/USDT", "2016-01-01T00:00Z", END)
    with pytest.raises(ContractError, match="symbol"):
        SyntheticMarket(symbols=("BTCUSDT",))


def test_empty_range_gives_an_empty_frame_with_columns(market):
    empty = generate_ohlcv(market, END, END, "1h")
    assert empty.empty
    assert str(empty["datetime"].dtype) == "datetime64[ms, UTC]"
    assert list(empty.columns) == ["datetime", "symbol", "open", "high", "low", "close", "volume"]


def test_long_requests_are_generated_in_chunks_that_join_seamlessly(market):
    daily = generate_symbol_ohlcv(market, "BTC/USDT", "2019-06-01T00:00Z", "2022-02-01T00:00Z",
                                  "1d")
    assert daily["datetime"].diff().iloc[1:].eq(pd.Timedelta("1D")).all()
    assert (daily["open"].to_numpy()[1:] == daily["close"].to_numpy()[:-1]).all()
    one_year = generate_symbol_ohlcv(market, "BTC/USDT", "2020-03-01T00:00Z",
                                     "2021-03-01T00:00Z", "1d")
    inside = daily[daily["datetime"].between(one_year["datetime"].iloc[0],
                                             one_year["datetime"].iloc[-1])]
    pd.testing.assert_frame_equal(inside.reset_index(drop=True), one_year)
