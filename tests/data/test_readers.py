"""Readers: inclusive boundaries, either symbol form, projection, empty results, big batches."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from research.data.market_store import candle_documents, upsert_candles, validate_candles
from research.data.readers import get_crypto_market_data, get_crypto_min_data
from research.data.synthetic import SyntheticMarket, generate_ohlcv
from signal_export.contract import ContractError


@pytest.fixture
def stored(store, market):
    days = generate_ohlcv(market, "2024-01-01T00:00Z", "2024-02-01T00:00Z", "1d")
    minutes = generate_ohlcv(market, "2024-01-01T00:00Z", "2024-01-03T00:00Z", "1m")
    upsert_candles(days, store, "1d")
    upsert_candles(minutes, store, "1m")
    return days, minutes


def test_daily_boundaries_are_inclusive_in_any_date_form(store, stored):
    days, _ = stored
    for start, end in [("20240105", "20240110"), ("2024-01-05", "2024-01-10"),
                       (date(2024, 1, 5), date(2024, 1, 10)),
                       (pd.Timestamp("2024-01-05", tz="UTC"),
                        pd.Timestamp("2024-01-10", tz="UTC"))]:
        got = get_crypto_market_data(["BTC/USDT"], start, end, db=store)
        assert got["date"].tolist() == list(pd.date_range("2024-01-05", "2024-01-10", tz="UTC"))
    got = get_crypto_market_data("BINANCE:ETHUSDT", "20240105", "20240105", ["close"], db=store)
    want = days[(days["symbol"] == "BINANCE:ETHUSDT")
                & (days["datetime"] == pd.Timestamp("2024-01-05", tz="UTC"))]
    assert list(got.columns) == ["date", "symbol", "close"]
    assert got["close"].tolist() == want["close"].tolist()


def test_minute_boundaries_are_inclusive_and_a_date_end_covers_the_day(store, stored):
    _, minutes = stored
    got = get_crypto_min_data(["BTC/USDT", "ETH/USDT"], pd.Timestamp("2024-01-01T10:00Z"),
                              datetime.fromisoformat("2024-01-01T10:05:00+00:00"), db=store)
    assert len(got) == 2 * 6
    assert got["datetime"].min() == pd.Timestamp("2024-01-01T10:00Z")
    assert got["datetime"].max() == pd.Timestamp("2024-01-01T10:05Z")
    whole = get_crypto_min_data("BTC/USDT", "2024-01-02", "2024-01-02", db=store)
    assert len(whole) == 1440 and whole["datetime"].iloc[-1] == pd.Timestamp("2024-01-02T23:59Z")
    want = minutes[minutes["datetime"] >= pd.Timestamp("2024-01-02", tz="UTC")]
    want = want[want["symbol"] == "BINANCE:BTCUSDT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, want)


def test_results_are_tidy_and_sorted_by_symbol_then_time(store, stored):
    got = get_crypto_min_data(["ETH/USDT", "BTC/USDT"], "2024-01-01", "2024-01-01", db=store)
    assert list(got.columns) == ["datetime", "symbol", "open", "high", "low", "close", "volume"]
    assert str(got["datetime"].dtype) == "datetime64[ms, UTC]"
    assert got["symbol"].tolist() == ["BINANCE:BTCUSDT"] * 1440 + ["BINANCE:ETHUSDT"] * 1440
    assert got.groupby("symbol")["datetime"].apply(lambda s: s.is_monotonic_increasing).all()


def test_empty_results_keep_columns_and_dtypes(store, stored):
    for got, time_col in [
        (get_crypto_market_data("BTC/USDT", "20300101", "20300105", ["open", "close"], db=store),
         "date"),
        (get_crypto_min_data("SOL/USDT", "2024-01-01", "2024-01-02", ["close"], db=store),
         "datetime"),
    ]:
        assert got.empty
        assert list(got.columns) == [time_col, "symbol", *got.columns[2:]]
        assert str(got[time_col].dtype) == "datetime64[ms, UTC]"
        assert all(got[c].dtype == np.float64 for c in got.columns[2:])


def test_projection_is_pushed_to_the_server(store, stored, mongo_uri):
    import pymongo
    from pymongo import monitoring

    class Recorder(monitoring.CommandListener):
        def __init__(self):
            self.finds = []

        def started(self, event):
            if event.command_name == "find":
                self.finds.append(event.command)

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    recorder = Recorder()
    client = pymongo.MongoClient(mongo_uri, event_listeners=[recorder], tz_aware=True)
    try:
        db = client[store.db.name]
        got = get_crypto_min_data("BTC/USDT", "2024-01-01", "2024-01-01", ["close"], db=db,
                                  batch_size=500)
    finally:
        client.close()
    assert len(got) == 1440 and list(got.columns) == ["datetime", "symbol", "close"]
    projection = recorder.finds[0]["projection"]
    assert projection == {"_id": 0, "symbol": 1, "datetime": 1, "close": 1}
    assert recorder.finds[0]["batchSize"] == 500


def test_bad_arguments_name_the_problem(store):
    with pytest.raises(ContractError, match="end.*naive"):
        get_crypto_min_data("BTC/USDT", "2024-01-01", datetime(2024, 1, 2), db=store)
    with pytest.raises(ContractError, match="start.*no timezone"):
        get_crypto_min_data("BTC/USDT", "2024-01-01 10:00", "2024-01-02", db=store)
    with pytest.raises(ContractError, match="unknown field.*'vwap'"):
        get_crypto_market_data("BTC/USDT", "20240101", "20240102", ["close", "vwap"], db=store)
    with pytest.raises(ContractError, match="symbol"):
        get_crypto_market_data("BTCUSDT", "20240101", "20240102", db=store)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_million_minute_rows_stream_back_complete_and_in_order(store):
    market = SyntheticMarket(seed=4, symbols=("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"))
    frame = validate_candles(
        generate_ohlcv(market, "2024-01-01T00:00Z", "2024-06-24T00:00Z", "1m"), "1m")
    assert len(frame) >= 1_000_000
    store.ensure_indexes()
    keys, values = candle_documents(frame, "1m")
    coll = store.collection("1m")
    for lo in range(0, len(keys), 50_000):  # bulk load; the reader is what is under test
        coll.insert_many([{**k, **v} for k, v in zip(keys[lo:lo + 50_000],
                                                     values[lo:lo + 50_000], strict=True)],
                         ordered=False)
    got = get_crypto_min_data(list(market.symbols), "2024-01-01", "2024-06-23", db=store,
                              batch_size=100_000)
    assert len(got) == len(frame)
    pd.testing.assert_frame_equal(got, frame.sort_values(["symbol", "datetime"],
                                                         ignore_index=True))
