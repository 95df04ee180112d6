"""Index-answered queries return exactly what a full scan with MongoDB matching returns.

In-process unit test of the storage planner (no wire protocol): documents with
mixed-type values in indexed fields, random equality / range / ``$in`` filters
and sorts; the indexed answer must equal a brute-force scan with mongomock's
matcher, in MongoDB sort order.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mongomock_ng.filtering import filter_applies

from devservers.mongo import keys
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
