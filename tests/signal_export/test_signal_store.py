"""Indexes and reads of the store, through real pymongo against the test server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pymongo
import pytest

from signal_export.settings import Settings, load_settings
from signal_export.store import (
    HISTORY_KEY_INDEX,
    HISTORY_TTL_INDEX,
    SIGNAL_CHANGES_INDEX,
    SIGNAL_KEY_INDEX,
    SIGNAL_TTL_INDEX,
    ensure_indexes,
    ensure_signal_indexes,
    latest_signals,
    signals_in_range,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def test_indexes_are_created_idempotently(mongo_client, mongo_db):
    settings = Settings(db=mongo_db.name, market_db=mongo_db.name)
    ensure_indexes(mongo_client, settings)
    ensure_indexes(mongo_client, settings)  # second call is a no-op, not an error
    signal_idx = mongo_db["crypto_signals"].index_information()
    assert signal_idx[SIGNAL_KEY_INDEX]["unique"] is True
    assert [k for k, _ in signal_idx[SIGNAL_KEY_INDEX]["key"]] == [
        "strategy_id", "pair", "timeframe", "ts"]
    # the live bot's change read (consumer/source.py) finds it and reads only what changed
    assert [k for k, _ in signal_idx[SIGNAL_CHANGES_INDEX]["key"]] == [
        "strategy_id", "timeframe", "updated_at"]
    market = mongo_db["crypto_market"].index_information()
    assert any(v.get("unique") and [k for k, _ in v["key"]] == ["symbol", "date"]
               for v in market.values())
    minute = mongo_db["crypto_market_1m"].index_information()
    assert any(v.get("unique") and [k for k, _ in v["key"]] == ["symbol", "datetime"]
               for v in minute.values())
    runs = mongo_db["export_runs"].index_information()
    assert any([k for k, _ in v["key"]] == ["started_at"] for v in runs.values())


def test_history_indexes_follow_the_settings(mongo_client, mongo_db, monkeypatch):
    monkeypatch.setenv("EXT_SIG_HISTORY_TTL_SECONDS", "86400")
    monkeypatch.setenv("EXT_SIG_HISTORY_COLLECTION", "revisions")
    settings = load_settings(None, db=mongo_db.name, market_db=mongo_db.name)
    assert settings.history_collection_name == "revisions"
    ensure_indexes(mongo_client, settings)
    info = mongo_db["revisions"].index_information()
    assert info[HISTORY_KEY_INDEX]["unique"] is True
    assert [k for k, _ in info[HISTORY_KEY_INDEX]["key"]] == [
        "strategy_id", "pair", "timeframe", "ts", "version", "content_hash"]
    assert info[HISTORY_TTL_INDEX]["expireAfterSeconds"] == 86400
    assert dict(info[HISTORY_TTL_INDEX]["key"]) == {"superseded_at": 1}
    default = Settings(db=mongo_db.name)
    assert default.history_collection_name == "crypto_signals_history"
    assert default.history_ttl_seconds is None  # keep history forever unless told
    ensure_signal_indexes(mongo_db["crypto_signals"])  # callers without settings: the default
    assert HISTORY_KEY_INDEX in mongo_db["crypto_signals_history"].index_information()
    assert HISTORY_TTL_INDEX not in mongo_db["crypto_signals_history"].index_information()


def test_unique_key_is_enforced(mongo_db):
    coll = mongo_db["crypto_signals"]
    ensure_signal_indexes(coll)
    key = {"strategy_id": "s", "pair": "BTC/USDT", "timeframe": "1d", "ts": T0}
    coll.insert_one(dict(key))
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        coll.insert_one(dict(key))


def test_ttl_index_is_optional_and_changes_in_place(mongo_db):
    coll = mongo_db["crypto_signals"]
    ensure_signal_indexes(coll)
    assert SIGNAL_TTL_INDEX not in coll.index_information()
    ensure_signal_indexes(coll, expire_after_seconds=3600)
    ensure_signal_indexes(coll, expire_after_seconds=3600)
    assert coll.index_information()[SIGNAL_TTL_INDEX]["expireAfterSeconds"] == 3600
    ensure_signal_indexes(coll, expire_after_seconds=7200)
    assert coll.index_information()[SIGNAL_TTL_INDEX]["expireAfterSeconds"] == 7200
    ensure_signal_indexes(coll)  # None leaves it alone
    assert SIGNAL_TTL_INDEX in coll.index_information()


def _seed(coll):
    ensure_signal_indexes(coll)
    docs = []
    for sid in ("a", "b"):
        for pair in ("BTC/USDT", "ETH/USDT"):
            for h in range(3):
                docs.append({"strategy_id": sid, "pair": pair, "timeframe": "1h",
                             "ts": T0 + timedelta(hours=h), "score": float(h), "version": 1})
    docs.append({"strategy_id": "a", "pair": "BTC/USDT", "timeframe": "1d", "ts": T0,
                 "score": 9.0, "version": 1})
    coll.insert_many(docs)


def test_latest_signal_per_pair(mongo_db):
    coll = mongo_db["crypto_signals"]
    _seed(coll)
    latest = latest_signals(coll, strategy_ids="a", timeframe="1h")
    assert list(latest["pair"]) == ["BTC/USDT", "ETH/USDT"]
    assert list(latest["score"]) == [2.0, 2.0]
    assert (latest["ts"] == T0 + timedelta(hours=2)).all()
    everything = latest_signals(coll)
    assert len(everything) == 5  # 2 strategies x 2 pairs x 1h + a's 1d
    assert str(everything["ts"].dt.tz) == "UTC"


def test_signals_in_range_are_inclusive_and_sorted(mongo_db):
    coll = mongo_db["crypto_signals"]
    _seed(coll)
    got = signals_in_range(coll, T0 + timedelta(hours=1), T0 + timedelta(hours=2),
                           strategy_ids=["b"], timeframe="1h", pairs=["ETH/USDT"])
    assert list(got["ts"]) == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert set(got["strategy_id"]) == {"b"} and "_id" not in got.columns
    assert signals_in_range(coll, T0 + timedelta(days=5), T0 + timedelta(days=6)).empty
