"""Idempotent candle upserts into crypto_market / crypto_market_1m, with validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data.market_store import MarketStore, last_stored_bar, upsert_candles
from research.data.synthetic import generate_ohlcv
from signal_export.contract import ContractError


@pytest.fixture
def minutes(market) -> pd.DataFrame:
    return generate_ohlcv(market, "2024-01-01T00:00Z", "2024-01-01T02:00Z", "1m")


def test_upserts_are_idempotent_and_last_writer_wins(store, minutes):
    first = upsert_candles(minutes, store, "1m")
    again = upsert_candles(minutes, store, "1m", batch_size=50)
    assert (first.inserted, first.updated, first.unchanged) == (240, 0, 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 240)
    corrected = minutes.iloc[[5]].assign(close=lambda f: f["close"] + 1.0,
                                         high=lambda f: f["high"] + 1.0)
    fixed = upsert_candles(corrected, store, "1m")
    assert (fixed.inserted, fixed.updated) == (0, 1)
    doc = store.collection("1m").find_one({"symbol": "BINANCE:BTCUSDT",
                                           "datetime": minutes["datetime"].iloc[5]})
    assert doc["close"] == minutes["close"].iloc[5] + 1.0
    assert store.collection("1m").count_documents({}) == 240


def test_unique_indexes_of_the_contract_exist(store, minutes):
    upsert_candles(minutes, store, "1m")
    minute_idx = store.collection("1m").index_information()
    daily_idx = store.collection("1d").index_information()
    assert any(i["key"] == [("symbol", 1), ("datetime", 1)] and i.get("unique")
               for i in minute_idx.values())
    assert any(i["key"] == [("symbol", 1), ("date", 1)] and i.get("unique")
               for i in daily_idx.values())


def test_daily_bars_are_keyed_by_yyyymmdd_and_pairs_become_symbols(store, market):
    days = generate_ohlcv(market, "2024-01-01T00:00Z", "2024-01-04T00:00Z", "1d")
    days["symbol"] = days["symbol"].map({"BINANCE:BTCUSDT": "BTC/USDT",
                                         "BINANCE:ETHUSDT": "ETH/USDT"})
    assert upsert_candles(days, store, "1d").inserted == 6
    docs = list(store.collection("1d").find({}, {"_id": 0}).sort([("symbol", 1), ("date", 1)]))
    assert [(d["symbol"], d["date"]) for d in docs[:3]] == [
        ("BINANCE:BTCUSDT", "20240101"), ("BINANCE:BTCUSDT", "20240102"),
        ("BINANCE:BTCUSDT", "20240103")]
    assert set(docs[0]) == {"symbol", "date", "open", "high", "low", "close", "volume"}
    assert last_stored_bar(store, "ETH/USDT", "1d") == pd.Timestamp("2024-01-03", tz="UTC")
    assert last_stored_bar(store, "SOL/USDT", "1d") is None


def test_a_plain_database_uses_the_contract_collection_names(mongo_db, minutes):
    upsert_candles(minutes.head(3), mongo_db, "1m")
    assert mongo_db["crypto_market_1m"].count_documents({}) == 3
    custom = MarketStore(mongo_db, minute_collection="my_1m")
    upsert_candles(minutes.head(2), custom, "1m")
    assert mongo_db["my_1m"].count_documents({}) == 2


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda f: f.assign(datetime=f["datetime"].dt.tz_localize(None)), "tz-aware"),
    (lambda f: f.assign(close=np.where(f.index == 7, np.nan, f["close"])), "close is NaN.*row 7"),
    (lambda f: f.assign(datetime=f["datetime"] + pd.Timedelta(seconds=5)), "not on the 1m grid"),
    (lambda f: f.assign(high=f["low"] - 1), "high/low do not bound"),
    (lambda f: pd.concat([f, f.iloc[[3]]], ignore_index=True), "duplicated"),
    (lambda f: f.assign(symbol="BTCUSDT"), "symbol 'BTCUSDT'"),
    (lambda f: f.drop(columns="volume"), "missing column"),
    (lambda f: f.assign(volume=-1.0), "volume is negative"),
])
def test_bad_candles_are_rejected_naming_the_field(store, minutes, mutate, message):
    with pytest.raises(ContractError, match=message):
        upsert_candles(mutate(minutes), store, "1m")
    assert store.collection("1m").count_documents({}) == 0


def test_only_1m_and_1d_are_stored(store, minutes):
    with pytest.raises(ContractError, match="only 1m, 1d"):
        upsert_candles(minutes, store, "1h")
