"""The as_known rule (signal_export.point_in_time), checked against a brute-force reading of
its definition on random revision histories (versions and knowledge times shuffled)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from signal_export.contract import CONTENT_HASH_FIELD, UPDATED_AT_FIELD
from signal_export.point_in_time import (
    AVAILABLE_AT_FIELD,
    KNOWN_AT,
    as_known,
    first_known,
    history_collection_name,
    versions_frame,
    visible_at,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)
KEY = ["strategy_id", "pair", "timeframe", "ts"]


def _random_versions(rng: random.Random, n_keys: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current, history): each key has 1-5 versions, revised at shuffled times; sometimes
    an equal version is rewritten, sometimes a history row has no available_at (legacy)."""
    current, history = [], []
    for k in range(n_keys):
        key = {"strategy_id": rng.choice(["a", "b"]), "pair": f"P{k % 7}/USDT",
               "timeframe": "1h", "ts": T0 + timedelta(hours=k)}
        n = rng.randint(1, 5)
        versions = sorted(rng.sample(range(1, 9), n))
        if rng.random() < 0.3:
            versions.append(versions[-1])  # same version, new content (last writer wins)
        times = [T0 + timedelta(minutes=rng.randint(0, 5000)) for _ in versions]
        rows = [{**key, "version": v, "score": rng.random(), AVAILABLE_AT_FIELD: t,
                 CONTENT_HASH_FIELD: f"h{k}-{i}"} for i, (v, t) in
                enumerate(zip(versions, times, strict=True))]
        rng.shuffle(rows)
        if rng.random() < 0.2:  # an old document from before available_at existed
            rows[0][UPDATED_AT_FIELD] = rows[0].pop(AVAILABLE_AT_FIELD)
        current.append(rows[0])
        history.extend(rows[1:])
    return pd.DataFrame(current), pd.DataFrame(history)


def _brute_force(rows: list[dict], key: tuple, t: pd.Timestamp) -> dict | None:
    """The definition, read literally."""
    known = [r for r in rows if tuple(r[c] for c in KEY) == key
             and pd.Timestamp(r.get(AVAILABLE_AT_FIELD) or r.get(UPDATED_AT_FIELD)) <= t]
    if not known:
        return None
    return max(known, key=lambda r: (r["version"], pd.Timestamp(
        r.get(AVAILABLE_AT_FIELD) or r.get(UPDATED_AT_FIELD))))


def _clean(row: dict) -> dict:
    return {k: v for k, v in row.items() if not (isinstance(v, float) and pd.isna(v))
            and v is not pd.NaT}


@pytest.mark.parametrize("seed", range(25))
def test_as_known_matches_the_brute_force_definition(seed):
    rng = random.Random(seed)
    current, history = _random_versions(rng, n_keys=rng.randint(1, 30))
    versions = versions_frame(current, history)
    rows = [_clean(r) for r in pd.concat([current, history]).to_dict("records")]
    keys = current[KEY].to_dict("records")
    queries = pd.DataFrame([{**k, "decision_at": T0 + timedelta(minutes=rng.randint(-10, 5100))}
                            for k in keys for _ in range(4)])
    queries.index = [f"q{i}" for i in range(len(queries))][::-1]  # any index, kept
    out = as_known(versions, queries)
    assert list(out.index) == list(queries.index)
    assert len(out) == len(queries)
    for label, q in queries.iterrows():
        want = _brute_force(rows, tuple(q[c] for c in KEY), pd.Timestamp(q["decision_at"]))
        got = out.loc[label]
        if want is None:
            assert pd.isna(got["version"]) and pd.isna(got[KNOWN_AT]), label
        else:
            assert got["version"] == want["version"], label
            assert got[CONTENT_HASH_FIELD] == want[CONTENT_HASH_FIELD], label
            assert got["score"] == want["score"], label


@pytest.mark.parametrize("seed", range(10))
def test_visible_at_one_moment_is_as_known_for_every_key(seed):
    rng = random.Random(1000 + seed)
    current, history = _random_versions(rng, n_keys=20)
    versions = versions_frame(current, history)
    rows = [_clean(r) for r in pd.concat([current, history]).to_dict("records")]
    when = T0 + timedelta(minutes=rng.randint(0, 5000))
    got = visible_at(versions, when).set_index(KEY)
    for k in current[KEY].itertuples(index=False):
        want = _brute_force(rows, tuple(k), pd.Timestamp(when))
        if want is None:
            assert tuple(k) not in got.index
        else:
            assert got.loc[tuple(k), CONTENT_HASH_FIELD] == want[CONTENT_HASH_FIELD]


def test_a_late_signal_is_invisible_before_it_arrived_and_a_revision_before_its_time():
    key = {"strategy_id": "s", "pair": "BTC/USDT", "timeframe": "1h", "ts": T0}
    close = T0 + timedelta(hours=1)
    history = pd.DataFrame([{**key, "version": 1, "score": 0.1,
                             AVAILABLE_AT_FIELD: close + timedelta(minutes=20)}])
    current = pd.DataFrame([{**key, "version": 2, "score": 0.9,
                             AVAILABLE_AT_FIELD: close + timedelta(days=30)}])
    versions = versions_frame(current, history)
    q = pd.DataFrame([{**key, "decision_at": t} for t in
                      (close, close + timedelta(minutes=30), close + timedelta(days=31))])
    out = as_known(versions, q)
    assert pd.isna(out.loc[0, "score"])  # arrived 20 min after the close: live never saw it
    assert out.loc[1, "score"] == 0.1 and out.loc[2, "score"] == 0.9


def test_duplicate_history_of_the_current_version_counts_once_and_empty_inputs_work():
    key = {"strategy_id": "s", "pair": "BTC/USDT", "timeframe": "1h", "ts": T0}
    row = {**key, "version": 1, CONTENT_HASH_FIELD: "h", AVAILABLE_AT_FIELD: T0}
    versions = versions_frame(pd.DataFrame([row]), pd.DataFrame([{**row, "superseded_at": T0}]))
    assert len(versions) == 1
    empty = versions_frame(pd.DataFrame(), None)
    q = pd.DataFrame([{**key, "decision_at": T0}])
    out = as_known(empty, q)  # the same columns as with versions, nothing visible
    assert out[list(q.columns)].equals(q) and out["version"].isna().all()
    assert first_known(versions).loc[0, KNOWN_AT] == pd.Timestamp(T0)
    assert history_collection_name("crypto_signals") == "crypto_signals_history"
