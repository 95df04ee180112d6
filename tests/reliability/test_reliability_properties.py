"""Property-based tests of the exporter against the real server (hypothesis, modest sizes).

* idempotency: any frame exported twice -> the second run writes nothing and
  leaves every stored byte (``updated_at``, ``run_id`` included) as it was;
* order independence: any permutation and chunking of a frame -> the same
  stored state as one export of it;
* version ordering: the same keys in many versions, exported in any order and
  grouping -> each key ends at its highest version, with that version's content.

Symbol round trips and floor idempotency are in tests/signal_export/test_contract.py,
"tolerance never maps a signal to an earlier row" in tests/strategy/test_matching.py
(see RELIABILITY.md); they are not repeated here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signal_export.contract import SIGNAL_FIELDS
from signal_export.exporter import export_signals
from signal_export.store import ensure_signal_indexes

T0 = datetime(2026, 2, 2, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
PAIRS = ("BTC/USDT", "ETH/USDT", "ETH/BTC")
IDS = ("alpha", "beta")
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

keys = st.tuples(st.sampled_from(IDS), st.sampled_from(PAIRS), st.integers(0, 11))
contents = st.one_of(
    st.fixed_dictionaries({"action": st.sampled_from(["enter_long", "exit_long"])}),
    st.fixed_dictionaries({"score": st.floats(-5, 5, allow_nan=False)}),
    st.fixed_dictionaries({"weight": st.floats(0, 1)}),
    st.fixed_dictionaries({"action": st.just("enter_long"), "weight": st.floats(0.01, 1),
                           "note": st.text(max_size=20)}),
)


def row(key: tuple, content: dict, version: int = 1) -> dict:
    sid, pair, hour = key
    return {"ts": T0 + timedelta(hours=hour), "timeframe": "1h", "pair": pair,
            "strategy_id": sid, "version": version, **content}


frames = st.lists(st.tuples(keys, contents), min_size=1, max_size=40,
                  unique_by=lambda kc: kc[0]).map(lambda rows: [row(k, c) for k, c in rows])


@contextmanager
def fresh_collection(client) -> Iterator:
    db = client[f"prop_{uuid.uuid4().hex[:10]}"]
    coll = db["crypto_signals"]
    ensure_signal_indexes(coll)
    try:
        yield coll
    finally:
        client.drop_database(db.name)


def state(coll, fields=(*SIGNAL_FIELDS, "content_hash")) -> list[dict]:
    projection = {f: 1 for f in fields} | {"_id": 0}
    return list(coll.find({}, projection).sort([("strategy_id", 1), ("pair", 1), ("ts", 1)]))


def full_state(coll) -> list[dict]:
    return list(coll.find({}).sort([("strategy_id", 1), ("pair", 1), ("ts", 1)]))


@SETTINGS
@given(docs=frames, as_frame=st.booleans())
def test_exporting_any_frame_twice_changes_nothing_the_second_time(mongo_client, docs, as_frame):
    data = pd.DataFrame(docs) if as_frame else docs
    with fresh_collection(mongo_client) as coll:
        first = export_signals(data, coll, now=NOW)
        before = full_state(coll)
        second = export_signals(data, coll, now=NOW)
        assert (first.inserted, first.rejected) == (len(docs), 0)
        assert (second.inserted, second.updated, second.unchanged) == (0, 0, len(docs))
        assert full_state(coll) == before


@SETTINGS
@given(docs=frames, data=st.data())
def test_any_permutation_and_chunking_gives_the_same_stored_state(mongo_client, docs, data):
    order = data.draw(st.permutations(range(len(docs))), label="order")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(docs) - 1)), max_size=4),
                            label="cuts"))
    batch_size = data.draw(st.integers(1, 16), label="batch_size")
    shuffled = [docs[i] for i in order]
    chunks = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(docs)], strict=True)]
    with fresh_collection(mongo_client) as whole, fresh_collection(mongo_client) as pieces:
        export_signals(docs, whole, now=NOW)
        stored = sum(export_signals(c, pieces, now=NOW, batch_size=batch_size).inserted
                     for c in chunks if c)
        assert stored == len(docs)
        assert state(pieces) == state(whole)


@SETTINGS
@given(versions=st.dictionaries(keys, st.lists(st.tuples(st.integers(1, 9), contents),
                                               min_size=1, max_size=4,
                                               unique_by=lambda vc: vc[0]),
                                min_size=1, max_size=6),
       data=st.data())
def test_final_state_is_the_highest_version_per_key_whatever_the_order(mongo_client, versions,
                                                                       data):
    docs = [row(k, c, v) for k, vcs in versions.items() for v, c in vcs]
    order = data.draw(st.permutations(range(len(docs))), label="order")
    group = data.draw(st.integers(1, 3), label="docs per export")
    shuffled = [docs[i] for i in order]
    with fresh_collection(mongo_client) as coll, fresh_collection(mongo_client) as expected:
        for i in range(0, len(shuffled), group):
            # one export must not carry two versions of a key (that is a duplicate key)
            chunk = {(d["strategy_id"], d["pair"], d["ts"]): d for d in shuffled[i:i + group]}
            for d in shuffled[i:i + group]:
                if chunk[(d["strategy_id"], d["pair"], d["ts"])] is not d:
                    export_signals([d], coll, now=NOW)
            export_signals(list(chunk.values()), coll, now=NOW)
        best = [max((row(k, c, v) for v, c in vcs), key=lambda d: d["version"])
                for k, vcs in versions.items()]
        export_signals(best, expected, now=NOW)
        assert state(coll) == state(expected)
