"""Conformance of the local MongoDB dev server, command by command.

Every test talks real pymongo over the wire to the session server from
``tests/conftest.py``. The expected values are what mongod documents and
returns, so the same file passes against a real MongoDB when
``MONGO_TEST_URI`` is set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pymongo
import pytest
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.errors import OperationFailure


def test_ping_and_build_info(mongo_client):
    assert mongo_client.admin.command("ping")["ok"] == 1.0
    info = mongo_client.admin.command("buildInfo")
    assert info["ok"] == 1.0
    assert isinstance(info["version"], str)
    assert info["versionArray"][0] >= 4
    assert info["maxBsonObjectSize"] == 16 * 1024 * 1024


def test_hello_reports_a_writable_primary(mongo_client):
    hello = mongo_client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert hello["maxWireVersion"] >= 8
    assert hello["minWireVersion"] == 0
    assert hello["maxBsonObjectSize"] == 16 * 1024 * 1024
    assert hello["maxMessageSizeBytes"] == 48_000_000
    assert hello["maxWriteBatchSize"] == 100_000
    assert hello["logicalSessionTimeoutMinutes"] == 30
    legacy = mongo_client.admin.command("isMaster")
    assert legacy["ismaster"] is True


def test_unknown_command_is_rejected_with_its_name(mongo_db):
    with pytest.raises(OperationFailure) as err:
        mongo_db.command("noSuchThingAtAll")
    assert err.value.code == 59
    assert err.value.details["codeName"] == "CommandNotFound"
    assert "no such command: 'noSuchThingAtAll'" in err.value.details["errmsg"]


def test_insert_and_find_round_trip_types(mongo_db):
    ts = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    doc = {"s": "x", "i": 7, "f": 1.5, "b": True, "n": None, "ts": ts,
           "sub": {"a": [1, 2, {"c": "d"}]}}
    result = mongo_db.c.insert_one(doc)
    assert isinstance(result.inserted_id, ObjectId)
    found = mongo_db.c.find_one({"_id": result.inserted_id})
    assert found == {**doc, "_id": result.inserted_id}
    assert found["ts"] == ts and found["ts"].tzinfo is not None


def test_insert_many_reply_counts(mongo_db):
    reply = mongo_db.command("insert", "c", documents=[{"_id": i} for i in range(3)])
    assert reply["n"] == 3 and reply["ok"] == 1.0
    assert "writeErrors" not in reply


def test_update_operators(mongo_db):
    mongo_db.c.insert_one({"_id": 1, "a": 1, "b": 5, "c": 10, "gone": "x",
                           "d": datetime(2026, 1, 1, tzinfo=UTC)})
    result = mongo_db.c.update_one({"_id": 1}, {
        "$set": {"s": "new", "nested.deep": 1},
        "$inc": {"a": 2},
        "$max": {"b": 7, "d": datetime(2026, 1, 2, tzinfo=UTC)},
        "$min": {"c": 3},
        "$unset": {"gone": ""},
        "$setOnInsert": {"only_on_insert": True},
    })
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert mongo_db.c.find_one({"_id": 1}) == {
        "_id": 1, "a": 3, "b": 7, "c": 3, "d": datetime(2026, 1, 2, tzinfo=UTC),
        "s": "new", "nested": {"deep": 1},
    }


def test_max_min_that_change_nothing_do_not_count_as_modified(mongo_db):
    mongo_db.c.insert_one({"_id": 1, "a": 5, "b": 5})
    result = mongo_db.c.update_one({"_id": 1}, {"$max": {"a": 3}, "$min": {"b": 9}})
    assert (result.matched_count, result.modified_count) == (1, 0)


def test_two_operators_on_one_path_conflict(mongo_db):
    mongo_db.c.insert_one({"_id": 1, "a": 5})
    with pytest.raises(pymongo.errors.WriteError) as err:
        mongo_db.c.update_one({"_id": 1}, {"$max": {"a": 3}, "$min": {"a": 9}})
    assert err.value.code == 40


def test_n_modified_counts_only_real_changes(mongo_db):
    mongo_db.c.insert_many([{"_id": 1, "v": 1}, {"_id": 2, "v": 2}, {"_id": 3, "v": 1}])
    result = mongo_db.c.update_many({}, {"$set": {"v": 1}})
    assert (result.matched_count, result.modified_count) == (3, 1)
    again = mongo_db.c.update_many({}, {"$set": {"v": 1}})
    assert (again.matched_count, again.modified_count) == (3, 0)


def test_upsert_reports_the_new_id_and_seeds_from_the_filter(mongo_db):
    result = mongo_db.c.update_one({"k": "a", "n": {"$eq": 2}},
                                   {"$set": {"v": 1}, "$setOnInsert": {"created": True}},
                                   upsert=True)
    assert result.matched_count == 0 and result.modified_count == 0
    assert isinstance(result.upserted_id, ObjectId)
    doc = mongo_db.c.find_one({"_id": result.upserted_id}, {"_id": 0})
    assert doc == {"k": "a", "n": 2, "v": 1, "created": True}
    second = mongo_db.c.update_one({"k": "a", "n": 2},
                                   {"$set": {"v": 1}, "$setOnInsert": {"created": False}},
                                   upsert=True)
    assert (second.matched_count, second.modified_count, second.upserted_id) == (1, 0, None)
    assert mongo_db.c.find_one({"k": "a"})["created"] is True


def test_raw_update_reply_shape_with_upserts(mongo_db):
    reply = mongo_db.command("update", "c", updates=[
        {"q": {"_id": "x"}, "u": {"$set": {"v": 1}}, "upsert": True},
        {"q": {"_id": "x"}, "u": {"$set": {"v": 2}}, "upsert": True},
        {"q": {"_id": "y"}, "u": {"$set": {"v": 3}}, "upsert": False},
    ])
    assert reply["n"] == 2
    assert reply["nModified"] == 1
    assert reply["upserted"] == [{"index": 0, "_id": "x"}]


def test_replacement_update_keeps_id(mongo_db):
    mongo_db.c.insert_one({"_id": 1, "a": 1, "b": 2})
    result = mongo_db.c.replace_one({"_id": 1}, {"c": 3})
    assert result.modified_count == 1
    assert mongo_db.c.find_one({"_id": 1}) == {"_id": 1, "c": 3}


def test_update_of_immutable_id_fails(mongo_db):
    mongo_db.c.insert_one({"_id": 1, "a": 1})
    with pytest.raises(pymongo.errors.WriteError) as err:
        mongo_db.c.update_one({"_id": 1}, {"$set": {"_id": 2}})
    assert err.value.code == 66


def test_inc_on_a_string_is_a_type_mismatch(mongo_db):
    mongo_db.c.insert_one({"_id": 1, "a": "text"})
    with pytest.raises(pymongo.errors.WriteError) as err:
        mongo_db.c.update_one({"_id": 1}, {"$inc": {"a": 1}})
    assert err.value.code == 14


def test_delete_one_and_many(mongo_db):
    mongo_db.c.insert_many([{"_id": i, "g": i % 2} for i in range(6)])
    assert mongo_db.c.delete_one({"g": 1}).deleted_count == 1
    assert mongo_db.c.delete_many({"g": 1}).deleted_count == 2
    assert mongo_db.c.delete_many({"g": 5}).deleted_count == 0
    assert sorted(d["_id"] for d in mongo_db.c.find()) == [0, 2, 4]


@pytest.fixture
def people(mongo_db):
    docs = [
        {"_id": 1, "name": "ann", "age": 31, "city": "Oslo", "tags": ["a", "b"]},
        {"_id": 2, "name": "bob", "age": 25, "city": "Rome"},
        {"_id": 3, "name": "cat", "age": 40, "city": "Oslo", "tags": []},
        {"_id": 4, "name": "dan", "age": 25, "city": None},
        {"_id": 5, "name": "eve", "age": 52},
    ]
    mongo_db.people.insert_many(docs)
    return mongo_db.people


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"age": {"$gte": 31}}, [1, 3, 5]),
        ({"age": {"$gt": 31}}, [3, 5]),
        ({"age": {"$lte": 25}}, [2, 4]),
        ({"age": {"$lt": 31, "$gt": 20}}, [2, 4]),
        ({"city": {"$in": ["Oslo", "Rome"]}}, [1, 2, 3]),
        ({"city": {"$exists": False}}, [5]),
        ({"city": {"$exists": True}}, [1, 2, 3, 4]),
        ({"city": None}, [4, 5]),
        ({"city": {"$ne": "Oslo"}}, [2, 4, 5]),
        ({"age": {"$eq": 25}}, [2, 4]),
        ({"$or": [{"age": 52}, {"city": "Rome"}]}, [2, 5]),
        ({"$and": [{"city": "Oslo"}, {"age": {"$gt": 35}}]}, [3]),
        ({"tags": "a"}, [1]),
        ({"age": {"$gte": "0"}}, []),
    ],
)
def test_find_filters(people, query, expected):
    assert sorted(d["_id"] for d in people.find(query)) == expected


def test_find_sort_skip_limit_projection(people):
    rows = list(people.find({}, {"name": 1, "_id": 0}).sort([("age", DESCENDING),
                                                               ("name", ASCENDING)])
                .skip(1).limit(3))
    assert rows == [{"name": "cat"}, {"name": "ann"}, {"name": "bob"}]
    excluded = people.find_one({"_id": 2}, {"city": 0, "tags": 0})
    assert excluded == {"_id": 2, "name": "bob", "age": 25}


def test_sort_puts_missing_and_null_first(people):
    cities = [d.get("city", "<missing>") for d in people.find().sort([("city", 1), ("_id", 1)])]
    assert cities == [None, "<missing>", "Oslo", "Oslo", "Rome"]


def test_batch_size_and_get_more(mongo_db):
    mongo_db.c.insert_many([{"_id": i} for i in range(25)])
    reply = mongo_db.command("find", "c", batchSize=10, sort={"_id": 1})
    cursor = reply["cursor"]
    assert [d["_id"] for d in cursor["firstBatch"]] == list(range(10))
    assert cursor["id"] != 0
    assert cursor["ns"] == f"{mongo_db.name}.c"
    more = mongo_db.command("getMore", cursor["id"], collection="c", batchSize=10)
    assert [d["_id"] for d in more["cursor"]["nextBatch"]] == list(range(10, 20))
    last = mongo_db.command("getMore", cursor["id"], collection="c", batchSize=10)
    assert [d["_id"] for d in last["cursor"]["nextBatch"]] == list(range(20, 25))
    assert last["cursor"]["id"] == 0
    assert [d["_id"] for d in mongo_db.c.find().sort("_id", 1).batch_size(7)] == list(range(25))


def test_kill_cursors(mongo_db):
    mongo_db.c.insert_many([{"_id": i} for i in range(5)])
    cursor_id = mongo_db.command("find", "c", batchSize=2)["cursor"]["id"]
    reply = mongo_db.command("killCursors", "c", cursors=[cursor_id])
    assert reply["cursorsKilled"] == [cursor_id]
    with pytest.raises(OperationFailure) as err:
        mongo_db.command("getMore", cursor_id, collection="c")
    assert err.value.code == 43


def test_aggregate_match_sort_group_project_limit(mongo_db):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    mongo_db.s.insert_many([
        {"pair": "BTC/USDT", "ts": t0 + timedelta(minutes=i), "score": float(i)} for i in range(5)
    ] + [{"pair": "ETH/USDT", "ts": t0 + timedelta(minutes=i), "score": -float(i)}
         for i in range(3)])
    rows = list(mongo_db.s.aggregate([
        {"$match": {"ts": {"$gte": t0 + timedelta(minutes=1)}}},
        {"$sort": {"ts": 1}},
        {"$group": {"_id": "$pair", "first": {"$first": "$score"}, "last": {"$last": "$score"},
                    "hi": {"$max": "$score"}, "lo": {"$min": "$score"},
                    "total": {"$sum": "$score"}, "n": {"$sum": 1},
                    "latest": {"$max": "$ts"}}},
        {"$sort": {"_id": 1}},
        {"$project": {"_id": 0, "pair": "$_id", "first": 1, "last": 1, "hi": 1, "lo": 1,
                      "total": 1, "n": 1, "latest": 1}},
        {"$limit": 5},
    ]))
    assert rows == [
        {"first": 1.0, "last": 4.0, "hi": 4.0, "lo": 1.0, "total": 10.0, "n": 4,
         "latest": t0 + timedelta(minutes=4), "pair": "BTC/USDT"},
        {"first": -1.0, "last": -2.0, "hi": -1.0, "lo": -2.0, "total": -3.0, "n": 2,
         "latest": t0 + timedelta(minutes=2), "pair": "ETH/USDT"},
    ]


def test_aggregate_count_and_cursor_reply(mongo_db):
    mongo_db.c.insert_many([{"v": i} for i in range(7)])
    assert list(mongo_db.c.aggregate([{"$match": {"v": {"$gt": 2}}}, {"$count": "n"}])) == [
        {"n": 4}]
    reply = mongo_db.command("aggregate", "c", pipeline=[{"$sort": {"v": 1}}],
                             cursor={"batchSize": 3})
    assert [d["v"] for d in reply["cursor"]["firstBatch"]] == [0, 1, 2]
    assert reply["cursor"]["id"] != 0


def test_count_count_documents_and_estimate(mongo_db):
    mongo_db.c.insert_many([{"v": i % 3} for i in range(10)])
    assert mongo_db.command("count", "c", query={"v": 1})["n"] == 3
    assert mongo_db.c.count_documents({"v": {"$in": [0, 2]}}) == 7
    assert mongo_db.c.count_documents({}, skip=2, limit=5) == 5
    assert mongo_db.c.count_documents({"v": 9}) == 0
    assert mongo_db.c.estimated_document_count() == 10
    assert mongo_db.missing.count_documents({}) == 0


def test_distinct(people):
    assert sorted(people.distinct("city", {"age": {"$lt": 50}}), key=str) == [None, "Oslo", "Rome"]
    assert sorted(people.distinct("city", {"age": {"$lt": 30}}), key=str) == [None, "Rome"]
    assert sorted(people.distinct("age")) == [25, 31, 40, 52]
    assert sorted(people.distinct("tags")) == ["a", "b"]


def test_create_list_and_drop_indexes(mongo_db):
    coll = mongo_db.signals
    name = coll.create_index([("strategy_id", 1), ("pair", 1), ("timeframe", 1), ("ts", 1)],
                             unique=True)
    assert name == "strategy_id_1_pair_1_timeframe_1_ts_1"
    ttl = coll.create_index([("expires", 1)], expireAfterSeconds=3600)
    indexes = {ix["name"]: ix for ix in coll.list_indexes()}
    assert set(indexes) == {"_id_", name, ttl}
    assert indexes[name]["unique"] is True
    assert dict(indexes[name]["key"]) == {"strategy_id": 1, "pair": 1, "timeframe": 1, "ts": 1}
    assert indexes[ttl]["expireAfterSeconds"] == 3600
    again = mongo_db.command("createIndexes", "signals", indexes=[
        {"key": {"expires": 1}, "name": ttl, "expireAfterSeconds": 3600}])
    assert again["numIndexesBefore"] == again["numIndexesAfter"] == 3
    coll.drop_index(ttl)
    assert {ix["name"] for ix in coll.list_indexes()} == {"_id_", name}
    with pytest.raises(OperationFailure) as err:
        coll.drop_index("nope_1")
    assert err.value.code == 27
    with pytest.raises(OperationFailure) as err:
        coll.drop_index("_id_")
    assert err.value.code == 72
    coll.drop_indexes()
    assert [ix["name"] for ix in coll.list_indexes()] == ["_id_"]


def test_create_indexes_reply_shape(mongo_db):
    reply = mongo_db.command("createIndexes", "fresh", indexes=[{"key": {"a": 1}, "name": "a_1"}])
    assert reply["numIndexesBefore"] == 1
    assert reply["numIndexesAfter"] == 2
    assert reply["createdCollectionAutomatically"] is True


def test_list_indexes_of_a_missing_collection_fails(mongo_db):
    with pytest.raises(OperationFailure) as err:
        mongo_db.command("listIndexes", "nothing_here")
    assert err.value.code == 26
    assert list(mongo_db.nothing_here.list_indexes()) == []  # pymongo hides code 26


def test_list_collections_drop_and_drop_database(mongo_client, mongo_db):
    mongo_db.a.insert_one({"x": 1})
    mongo_db.b.insert_one({"x": 1})
    assert sorted(mongo_db.list_collection_names()) == ["a", "b"]
    infos = {c["name"]: c for c in mongo_db.list_collections()}
    assert infos["a"]["type"] == "collection"
    assert [c["name"] for c in mongo_db.list_collections(filter={"name": "b"})] == ["b"]
    assert mongo_db.name in mongo_client.list_database_names()
    mongo_db.a.drop()
    assert mongo_db.list_collection_names() == ["b"]
    mongo_db.a.drop()  # dropping a missing collection is not an error
    mongo_client.drop_database(mongo_db.name)
    assert mongo_db.name not in mongo_client.list_database_names()
    assert mongo_db.list_collection_names() == []


def test_list_databases_reply_shape(mongo_client, mongo_db):
    mongo_db.c.insert_one({"x": 1})
    reply = mongo_client.admin.command("listDatabases")
    entry = next(d for d in reply["databases"] if d["name"] == mongo_db.name)
    assert entry["empty"] is False
    assert "sizeOnDisk" in entry and "totalSize" in reply


def test_end_sessions_is_accepted(mongo_client):
    with mongo_client.start_session() as session:
        mongo_client.admin.command("ping", session=session)
    assert mongo_client.admin.command("endSessions", [])["ok"] == 1.0


def test_bulk_write_result_shape(mongo_db):
    result = mongo_db.c.bulk_write([
        InsertOne({"_id": 1, "v": 0}),
        UpdateOne({"_id": 1}, {"$set": {"v": 1}}),
        UpdateOne({"_id": 2}, {"$set": {"v": 2}}, upsert=True),
        UpdateOne({"_id": 1}, {"$set": {"v": 1}}),
    ], ordered=False)
    assert result.bulk_api_result == {
        "writeErrors": [], "writeConcernErrors": [], "nInserted": 1, "nUpserted": 1,
        "nMatched": 2, "nModified": 1, "nRemoved": 0, "upserted": [{"index": 2, "_id": 2}],
    }


def test_find_one_and_update(mongo_db):
    mongo_db.c.insert_one({"_id": 1, "n": 1})
    after = mongo_db.c.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}},
                                           return_document=pymongo.ReturnDocument.AFTER)
    assert after == {"_id": 1, "n": 2}
    created = mongo_db.c.find_one_and_update({"_id": 2}, {"$set": {"n": 5}}, upsert=True,
                                             return_document=pymongo.ReturnDocument.AFTER)
    assert created == {"_id": 2, "n": 5}


def test_range_query_on_an_index_prefix_matches_a_full_scan(mongo_db):
    coll = mongo_db.sig
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    coll.create_index([("strategy_id", 1), ("pair", 1), ("timeframe", 1), ("ts", 1)],
                      unique=True)
    coll.insert_many([
        {"strategy_id": sid, "pair": pair, "timeframe": "1m", "ts": t0 + timedelta(minutes=i)}
        for sid in ("a", "b") for pair in ("BTC/USDT", "ETH/USDT") for i in range(30)
    ] + [{"strategy_id": "a", "pair": "BTC/USDT", "timeframe": "1m", "ts": 5}])
    query = {"strategy_id": "a", "pair": "BTC/USDT", "timeframe": "1m",
             "ts": {"$gte": t0 + timedelta(minutes=10), "$lt": t0 + timedelta(minutes=20)}}
    got = [d["ts"] for d in coll.find(query).sort("ts", 1)]
    assert got == [t0 + timedelta(minutes=i) for i in range(10, 20)]
    latest = coll.find({"strategy_id": "b", "pair": "ETH/USDT", "timeframe": "1m"}).sort(
        "ts", -1).limit(2)
    assert [d["ts"] for d in latest] == [t0 + timedelta(minutes=29), t0 + timedelta(minutes=28)]
    numbers = list(coll.find({"strategy_id": "a", "pair": "BTC/USDT", "ts": {"$lt": 100}}))
    assert [d["ts"] for d in numbers] == [5]


def test_aggregate_lookup_joins_another_collection(mongo_db):
    mongo_db.runs.insert_many([{"_id": 1, "strategy_id": "a"}, {"_id": 2, "strategy_id": "b"}])
    mongo_db.sigs.insert_many([{"_id": 10, "strategy_id": "a"}, {"_id": 11, "strategy_id": "a"}])
    rows = list(mongo_db.runs.aggregate([
        {"$lookup": {"from": "sigs", "localField": "strategy_id", "foreignField": "strategy_id",
                     "as": "signals"}},
        {"$project": {"n": {"$size": "$signals"}}},
        {"$sort": {"_id": 1}},
    ]))
    assert rows == [{"_id": 1, "n": 2}, {"_id": 2, "n": 0}]


def test_dotted_paths_and_array_operators(mongo_db):
    mongo_db.c.insert_one({"_id": 1, "meta": {"n": 1, "keep": True}, "tags": ["a"]})
    mongo_db.c.update_one({"_id": 1}, {"$set": {"meta.new.deep": "x"}, "$inc": {"meta.n": 4},
                                       "$push": {"tags": "b"}, "$addToSet": {"seen": "a"}})
    mongo_db.c.update_one({"_id": 1}, {"$addToSet": {"tags": {"$each": ["a", "c"]}},
                                       "$unset": {"meta.keep": 1}})
    mongo_db.c.update_one({"_id": 1}, {"$pull": {"tags": "b"}})
    assert mongo_db.c.find_one({"_id": 1}) == {
        "_id": 1, "meta": {"n": 5, "new": {"deep": "x"}}, "tags": ["a", "c"], "seen": ["a"]}
    assert mongo_db.c.find_one({"meta.new.deep": "x"}, {"meta.n": 1, "_id": 0}) == {
        "meta": {"n": 5}}
    assert mongo_db.c.count_documents({"meta.n": {"$gt": 4}}) == 1


def test_unacknowledged_writes_are_applied(mongo_uri, mongo_db):
    fire_and_forget = pymongo.MongoClient(mongo_uri, w=0, serverSelectionTimeoutMS=5000)
    coll = fire_and_forget[mongo_db.name].c
    for i in range(20):
        coll.insert_one({"_id": i})
    coll.update_one({"_id": 0}, {"$set": {"v": 1}})
    # a following acknowledged command on the same connection sees every earlier write
    assert fire_and_forget[mongo_db.name].command("count", "c")["n"] == 20
    fire_and_forget.close()
    assert mongo_db.c.find_one({"_id": 0}) == {"_id": 0, "v": 1}


def test_find_one_and_delete_and_replace(mongo_db):
    mongo_db.c.insert_many([{"_id": 1, "v": 1}, {"_id": 2, "v": 2}])
    assert mongo_db.c.find_one_and_delete({"v": 2}) == {"_id": 2, "v": 2}
    before = mongo_db.c.find_one_and_replace({"_id": 1}, {"w": 9})
    assert before == {"_id": 1, "v": 1}
    assert list(mongo_db.c.find()) == [{"_id": 1, "w": 9}]


def test_setting_sub_documents_and_arrays_counts_real_changes_only(mongo_db):
    mongo_db.c.insert_one({"_id": 1})
    first = mongo_db.c.update_one({"_id": 1}, {"$set": {"obj": {"k": [1, {"x": 2}]}}})
    again = mongo_db.c.update_one({"_id": 1}, {"$set": {"obj": {"k": [1, {"x": 2}]}}})
    only_insert = mongo_db.c.update_one({"_id": 1}, {"$setOnInsert": {"z": 1}}, upsert=True)
    assert (first.modified_count, again.modified_count, only_insert.modified_count) == (1, 0, 0)
    assert mongo_db.c.find_one({"_id": 1}) == {"_id": 1, "obj": {"k": [1, {"x": 2}]}}
