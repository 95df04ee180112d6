"""The insert-only upsert (``{key, _id: {$exists: false}}`` + ``$setOnInsert`` +
``$currentDate``) the exporter uses to stamp documents with the server's clock, and update
path conflicts, command by command as mongod answers them (the file also passes against a
real MongoDB when ``MONGO_TEST_URI`` is set)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pymongo
import pytest
from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

KEY = {"k": "a", "n": 1}


def _insert_only(key: dict, doc: dict) -> UpdateOne:
    return UpdateOne({**key, "_id": {"$exists": False}},
                     {"$setOnInsert": doc, "$currentDate": {"at": True}}, upsert=True)


@pytest.fixture
def coll(mongo_db):
    c = mongo_db["c"]
    c.create_index([("k", 1), ("n", 1)], unique=True)
    return c


def test_it_inserts_with_the_filters_equality_fields_and_the_server_clock(coll):
    before = datetime.now(UTC) - timedelta(seconds=5)
    reply = coll.bulk_write([_insert_only(KEY, {**KEY, "v": 1})], ordered=False)
    assert (reply.upserted_count, reply.matched_count, reply.modified_count) == (1, 0, 0)
    doc = coll.find_one(KEY)
    assert doc["v"] == 1 and doc["k"] == "a" and doc["n"] == 1
    assert isinstance(doc["_id"], ObjectId)  # a new id, not the clause
    assert before <= doc["at"].replace(tzinfo=UTC) <= datetime.now(UTC) + timedelta(seconds=5)


def test_it_never_touches_a_stored_document_the_unique_index_answers(coll):
    coll.bulk_write([_insert_only(KEY, {**KEY, "v": 1})])
    stored = coll.find_one(KEY)
    other = {"k": "b", "n": 1}
    with pytest.raises(BulkWriteError) as err:
        coll.bulk_write([_insert_only(KEY, {**KEY, "v": 2}), _insert_only(other, {**other})],
                        ordered=False)
    details = err.value.details
    assert [e["code"] for e in details["writeErrors"]] == [11000]
    assert details["writeErrors"][0]["index"] == 0 and details["nUpserted"] == 1
    assert coll.find_one(KEY) == stored  # neither v nor the clock moved
    assert coll.count_documents({}) == 2


def test_without_upsert_it_matches_nothing(coll):
    coll.insert_one({**KEY, "v": 1})
    reply = coll.update_one({**KEY, "_id": {"$exists": False}}, {"$set": {"v": 9}})
    assert (reply.matched_count, reply.modified_count) == (0, 0)
    assert coll.find_one(KEY)["v"] == 1


@pytest.mark.parametrize(("update", "path", "other"), [
    ({"$setOnInsert": {"a": 1, "b": 2}, "$currentDate": {"b": True}}, "b", "b"),
    ({"$set": {"a.b": 1, "c": 1}, "$unset": {"a": ""}}, "a", "a.b"),
    ({"$set": {"x": 1, "a": 1}, "$unset": {"a.b.c": ""}}, "a.b.c", "a"),
    ({"$set": {"a.b": 1, "a.c": 1}, "$inc": {"a.b.d": 1}}, "a.b.d", "a.b"),
])
def test_two_operators_on_one_path_conflict_and_the_error_names_both(coll, update, path,
                                                                      other):
    coll.insert_one({"_id": 1, **KEY})
    with pytest.raises(pymongo.errors.WriteError) as err:
        coll.update_one({"_id": 1}, update)
    assert err.value.code == 40
    assert f"'{path}'" in str(err.value) and f"'{other}'" in str(err.value)


def test_operators_on_disjoint_paths_apply_together(coll):
    coll.insert_one({"_id": 1, **KEY, "a": {"b": 1}})
    coll.update_one({"_id": 1}, {"$set": {"a.c": 2, "ab": 1}, "$inc": {"a.b": 1},
                                 "$currentDate": {"t": True}})
    doc = coll.find_one({"_id": 1})
    assert doc["a"] == {"b": 2, "c": 2} and doc["ab"] == 1 and isinstance(doc["t"], datetime)
