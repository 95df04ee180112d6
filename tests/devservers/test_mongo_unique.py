"""Unique indexes on the local MongoDB dev server behave like mongod's.

Duplicate keys are E11000 write errors with ``keyPattern``/``keyValue`` inside
the bulk result; unordered bulks continue past them, ordered bulks stop at the
first; building a unique index over duplicates fails. Same file passes against
real MongoDB (``MONGO_TEST_URI``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = [("strategy_id", 1), ("pair", 1), ("timeframe", 1), ("ts", 1)]
INDEX_NAME = "strategy_id_1_pair_1_timeframe_1_ts_1"


def _signal(i: int, **extra) -> dict:
    return {"strategy_id": "s", "pair": "BTC/USDT", "timeframe": "1m",
            "ts": T0 + timedelta(minutes=i), **extra}


@pytest.fixture
def signals(mongo_db):
    mongo_db.crypto_signals.create_index(KEY, unique=True)
    return mongo_db.crypto_signals


def test_duplicate_insert_raises_e11000_with_key_details(signals, mongo_db):
    signals.insert_one(_signal(0, action="enter_long"))
    with pytest.raises(DuplicateKeyError) as err:
        signals.insert_one(_signal(0, action="exit_long"))
    details = err.value.details
    assert details["code"] == 11000
    assert details["keyPattern"] == {"strategy_id": 1, "pair": 1, "timeframe": 1, "ts": 1}
    assert details["keyValue"] == {"strategy_id": "s", "pair": "BTC/USDT", "timeframe": "1m",
                                   "ts": T0}
    assert details["errmsg"].startswith(
        f"E11000 duplicate key error collection: {mongo_db.name}.crypto_signals index: "
        f"{INDEX_NAME} dup key:")
    assert signals.count_documents({}) == 1


def test_datetime_and_int_keys_never_collide(signals):
    signals.insert_one({"strategy_id": "s", "pair": "p", "timeframe": "1m", "ts": 0})
    signals.insert_one({"strategy_id": "s", "pair": "p", "timeframe": "1m",
                        "ts": datetime(1970, 1, 1, tzinfo=UTC)})
    assert signals.count_documents({}) == 2


def test_int_and_float_of_equal_value_are_the_same_key(mongo_db):
    mongo_db.c.create_index("v", unique=True)
    mongo_db.c.insert_one({"v": 1})
    with pytest.raises(DuplicateKeyError):
        mongo_db.c.insert_one({"v": 1.0})


def test_missing_fields_collide_as_null_in_a_unique_index(mongo_db):
    mongo_db.c.create_index("v", unique=True)
    mongo_db.c.insert_one({"other": 1})
    with pytest.raises(DuplicateKeyError):
        mongo_db.c.insert_one({"other": 2})


def test_unordered_bulk_continues_past_duplicates(signals):
    signals.insert_one(_signal(1))
    ops = [InsertOne(_signal(0)), InsertOne(_signal(1)), InsertOne(_signal(2)),
           InsertOne(_signal(2)), InsertOne(_signal(3))]
    with pytest.raises(BulkWriteError) as err:
        signals.bulk_write(ops, ordered=False)
    result = err.value.details
    assert result["nInserted"] == 3
    assert [e["index"] for e in result["writeErrors"]] == [1, 3]
    assert all(e["code"] == 11000 for e in result["writeErrors"])
    assert result["writeErrors"][1]["keyValue"]["ts"] == T0 + timedelta(minutes=2)
    assert signals.count_documents({}) == 4


def test_ordered_bulk_stops_at_the_first_duplicate(signals):
    signals.insert_one(_signal(1))
    ops = [InsertOne(_signal(0)), InsertOne(_signal(1)), InsertOne(_signal(2))]
    with pytest.raises(BulkWriteError) as err:
        signals.bulk_write(ops, ordered=True)
    result = err.value.details
    assert result["nInserted"] == 1
    assert [e["index"] for e in result["writeErrors"]] == [1]
    assert signals.count_documents({}) == 2


def test_update_into_an_existing_key_is_a_write_error(signals):
    signals.insert_many([_signal(0), _signal(1)])
    ops = [UpdateOne(_signal(0), {"$set": {"ts": T0 + timedelta(minutes=1)}}),
           UpdateOne(_signal(1), {"$set": {"note": "ok"}})]
    with pytest.raises(BulkWriteError) as err:
        signals.bulk_write(ops, ordered=False)
    result = err.value.details
    assert [e["index"] for e in result["writeErrors"]] == [0]
    assert result["writeErrors"][0]["code"] == 11000
    assert result["nMatched"] == 1 and result["nModified"] == 1


def test_idempotent_bulk_upsert_re_run_changes_nothing(signals):
    ops = [UpdateOne(_signal(i), {"$set": {"action": "enter_long", "version": 1}}, upsert=True)
           for i in range(50)]
    first = signals.bulk_write(ops, ordered=False)
    assert (first.upserted_count, first.matched_count, first.modified_count) == (50, 0, 0)
    again = signals.bulk_write(ops, ordered=False)
    assert (again.upserted_count, again.matched_count, again.modified_count) == (0, 50, 0)
    newer = [UpdateOne(_signal(i), {"$set": {"action": "exit_long", "version": 2}}, upsert=True)
             for i in range(0, 50, 5)]
    third = signals.bulk_write(newer, ordered=False)
    assert (third.upserted_count, third.matched_count, third.modified_count) == (0, 10, 10)
    assert signals.count_documents({"version": 2}) == 10


def test_upsert_duplicates_inside_one_unordered_bulk_update_the_first(signals):
    ops = [UpdateOne(_signal(0), {"$set": {"v": 1}}, upsert=True),
           UpdateOne(_signal(0), {"$set": {"v": 2}}, upsert=True)]
    result = signals.bulk_write(ops, ordered=False)
    assert (result.upserted_count, result.matched_count, result.modified_count) == (1, 1, 1)
    assert signals.find_one(_signal(0))["v"] == 2


def test_creating_a_unique_index_over_duplicates_fails(mongo_db):
    mongo_db.c.insert_many([{"k": 1}, {"k": 1}, {"k": 2}])
    with pytest.raises(OperationFailure) as err:
        mongo_db.c.create_index("k", unique=True)
    assert err.value.code == 11000
    assert [ix["name"] for ix in mongo_db.c.list_indexes()] == ["_id_"]
    mongo_db.c.insert_one({"k": 1})  # no half-built index left behind
    assert mongo_db.c.count_documents({"k": 1}) == 3


def test_duplicate_id_is_rejected(mongo_db):
    mongo_db.c.insert_one({"_id": "a"})
    with pytest.raises(DuplicateKeyError) as err:
        mongo_db.c.insert_one({"_id": "a"})
    assert err.value.details["keyPattern"] == {"_id": 1}
    assert err.value.details["keyValue"] == {"_id": "a"}
