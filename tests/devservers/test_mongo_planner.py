"""Index-answered queries return exactly what a full scan with MongoDB matching returns.

In-process unit test of the storage planner (no wire protocol): documents with
mixed-type values in indexed fields, random equality / range / ``$in`` filters
and sorts; the indexed answer must equal a brute-force scan with mongomock's
matcher, in MongoDB sort order, also when every ``$in`` goes through the
temporary range table. Over the wire: a 15,000-prefix ``$in`` (3 strategy ids x
5,000 pairs) returns the right documents without a collection scan.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mongomock_ng.filtering import filter_applies

from devservers.mongo import keys
from devservers.mongo import storage as storage_module
from devservers.mongo.commands import CommandHandler
from devservers.mongo.storage import Storage

T0 = datetime(2026, 1, 1)
# No booleans: the brute-force oracle (mongomock's matcher) treats False == 0 and True == 1,
# mongod does not.
VALUES = [None, 0, 1, 2, 2.5, -3, "a", "b", "ab", T0, T0 + timedelta(minutes=1),
          T0 + timedelta(days=1)]


@pytest.fixture(scope="module")
def handler(tmp_path_factory) -> CommandHandler:
    rng = random.Random(7)
    handler = CommandHandler(Storage(tmp_path_factory.mktemp("planner")))
    docs = []
    for i in range(400):
        doc = {"_id": i}
        for field in ("a", "b", "c"):
            if rng.random() < 0.9:
                doc[field] = rng.choice(VALUES)
        docs.append(doc)
    handler.cmd_insert("db", {"insert": "c", "documents": docs})
    handler.cmd_createindexes("db", {"createIndexes": "c", "indexes": [
        {"key": {"a": 1, "b": 1}, "name": "a_1_b_1"}, {"key": {"c": 1}, "name": "c_1"}]})
    handler.all_docs = docs  # type: ignore[attr-defined]
    return handler


scalar = st.sampled_from([*VALUES, 1.0, "zz", 99])
condition = st.one_of(
    scalar,
    st.builds(lambda v: {"$eq": v}, scalar),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), scalar),
    st.builds(lambda lo, hi: {"$gte": lo, "$lt": hi}, scalar, scalar),
    st.builds(lambda vs: {"$in": vs}, st.lists(scalar, min_size=1, max_size=3)),
)
query = st.dictionaries(st.sampled_from(["a", "b", "c"]), condition, max_size=3)
sort = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "_id"]), st.sampled_from([1, -1])),
                max_size=2, unique_by=lambda t: t[0])


def _expected(docs, q, sort_spec):
    matched = [d for d in docs if filter_applies(q, d)]
    for field, direction in reversed(sort_spec + [("_id", 1)]):
        matched.sort(key=lambda d, f=field: keys.encode_value(keys.get_path(d, f)),
                     reverse=direction == -1)
    return matched


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=query, sort_spec=sort, limit=st.sampled_from([0, 1, 5]))
def test_indexed_answers_equal_a_full_scan(handler, q, sort_spec, limit):
    _check_against_full_scan(handler, q, sort_spec, limit)


def _check_against_full_scan(handler, q, sort_spec, limit):
    spec = dict(sort_spec + [("_id", 1)]) if sort_spec else {"_id": 1}
    reply = handler.cmd_find("db", {"find": "c", "filter": q, "sort": spec, "limit": limit,
                                    "batchSize": 1000})
    got = [dict(d.items())["_id"] for d in reply["cursor"]["firstBatch"]]
    want = [d["_id"] for d in _expected(handler.all_docs, q, list(spec.items())[:-1]
                                        if sort_spec else [])]
    if limit:
        want = want[:limit]
    assert got == want
    count = handler.cmd_count("db", {"count": "c", "query": q})["n"]
    assert count == len(_expected(handler.all_docs, q, []))


def _signals(coll) -> list[dict]:
    t0 = datetime(2026, 1, 1)
    docs = [{"strategy_id": sid, "pair": pair, "timeframe": "1h", "ts": t0 + timedelta(hours=h),
             "action": "enter_long"}
            for sid in ("a", "b", "c") for pair in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")
            for h in range(24)]
    coll.create_index([("strategy_id", 1), ("pair", 1), ("timeframe", 1), ("ts", 1)],
                      unique=True)
    coll.insert_many([dict(d) for d in docs])
    return docs


def test_in_on_two_index_fields_with_a_range_sort_and_limit(mongo_db):
    """The strategy's query shape: $in strategy_ids x $in pairs x one timeframe x a ts range."""
    docs = _signals(mongo_db["sig"])
    lo, hi = datetime(2026, 1, 1, 5), datetime(2026, 1, 1, 9)
    flt = {"strategy_id": {"$in": ["c", "a"]}, "pair": {"$in": ["SOL/USDT", "BTC/USDT", "NOPE"]},
           "timeframe": "1h", "ts": {"$gt": lo, "$lte": hi}}
    want = [d for d in docs if d["strategy_id"] in ("a", "c")
            and d["pair"] in ("BTC/USDT", "SOL/USDT") and lo < d["ts"] <= hi]
    key = ("strategy_id", "pair", "timeframe", "ts")
    got = list(mongo_db["sig"].find(flt, {"_id": 0}).sort([(k, -1) for k in key]))
    for d in got:  # the test client is tz-aware; the documents were written naive (UTC)
        d["ts"] = d["ts"].replace(tzinfo=None)
    assert [tuple(d[k] for k in key) for d in got] == sorted(
        (tuple(d[k] for k in key) for d in want), reverse=True)
    assert len(got) == 2 * 2 * 4
    top = list(mongo_db["sig"].find(flt, {"_id": 0, "ts": 1}).sort("ts", -1).limit(3))
    assert [d["ts"].replace(tzinfo=None) for d in top] == [hi, hi, hi]
    assert mongo_db["sig"].count_documents(flt) == len(want)


def test_unordered_insert_many_with_a_duplicate_key_stores_the_rest(mongo_db):
    import pymongo.errors

    coll = mongo_db["sig"]
    coll.create_index([("k", 1)], unique=True)
    with pytest.raises(pymongo.errors.BulkWriteError) as info:
        coll.insert_many([{"k": 1}, {"k": 2}, {"k": 1}, {"k": 3}], ordered=False)
    assert [e["index"] for e in info.value.details["writeErrors"]] == [2]
    assert info.value.details["writeErrors"][0]["code"] == 11000
    assert sorted(d["k"] for d in coll.find()) == [1, 2, 3]


def test_raw_insert_command_without_id_gets_one(mongo_db):
    reply = mongo_db.command("insert", "raw", documents=[{"x": 1}, {"x": 2}])
    assert reply["n"] == 2
    ids = [d["_id"] for d in mongo_db["raw"].find()]
    assert len(ids) == 2 and len(set(ids)) == 2


@pytest.fixture
def join_every_in(monkeypatch):
    """Every multi-range plan goes through the temporary range table (not only large ones)."""
    monkeypatch.setattr(storage_module, "RANGE_JOIN_MIN", 2)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=query, sort_spec=sort, limit=st.sampled_from([0, 1, 5]))
def test_range_table_answers_equal_a_full_scan(handler, join_every_in, q, sort_spec, limit):
    _check_against_full_scan(handler, q, sort_spec, limit)


def test_a_15000_prefix_in_is_answered_from_the_index(mongo_db):
    """3 strategy ids x 5,000 pairs = 15,000 index prefixes: the right documents, in order,
    read through the index: the server's collection-scan counter does not move and it
    examines no document outside the answer (mongod's ``scannedObjects``)."""
    coll = mongo_db["sig"]
    coll.create_index([("strategy_id", 1), ("pair", 1), ("timeframe", 1), ("ts", 1)],
                      unique=True)
    t0 = datetime(2026, 1, 1)
    sids, pairs = ["s0", "s1", "s2"], [f"P{i:04d}/USDT" for i in range(5_000)]
    docs = [{"strategy_id": sid, "pair": pair, "timeframe": tf, "ts": t0 + timedelta(hours=h)}
            for sid in [*sids, "other"] for pair in pairs for tf in ("1h", "5m")
            for h in range(2)]
    coll.insert_many(docs, ordered=False)
    flt = {"strategy_id": {"$in": sids}, "pair": {"$in": pairs[::-1]}, "timeframe": "1h",
           "ts": {"$gte": t0 + timedelta(hours=1)}}
    want = sorted((d["strategy_id"], d["pair"]) for d in docs if d["strategy_id"] in sids
                  and d["timeframe"] == "1h" and d["ts"] == t0 + timedelta(hours=1))
    admin = mongo_db.client.admin
    local = "queryExecutor" in admin.command("serverStatus").get("metrics", {})

    def counters() -> tuple[int, int]:
        if not local:
            return 0, 0
        executor = admin.command("serverStatus")["metrics"]["queryExecutor"]
        return executor["collectionScans"]["total"], executor["scannedObjects"]

    scans, examined = counters()
    got = [(d["strategy_id"], d["pair"]) for d in coll.find(flt, {"_id": 0}).sort(
        [("strategy_id", 1), ("pair", 1)])]
    assert got == want and len(got) == 15_000
    assert coll.count_documents(flt) == 15_000
    newest = list(coll.find(flt, {"_id": 0, "pair": 1}).sort(
        [("strategy_id", -1), ("pair", -1), ("timeframe", -1), ("ts", -1)]).limit(2))
    assert [d["pair"] for d in newest] == [pairs[-1], pairs[-2]]
    if local:  # no collection scan, and no document read that is not in an answer
        assert counters()[0] == scans
        assert counters()[1] - examined <= 15_000 + 2
