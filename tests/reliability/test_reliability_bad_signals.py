"""Bad signal documents at export: each is rejected by name and field, the good ones are stored.

Every corpus entry goes through the real exporter into the session server in a
batch with good documents; the stored set must be exactly the good ones and the
audit record must list the rejection (nothing lost or half-written silently).
"""

from __future__ import annotations

import random
from datetime import UTC, timedelta, timezone

import pytest
from corpus import BAD_SIGNALS, NOW, STRATEGY, H, T, good_signal

from signal_export.exporter import export_signals


def good_batch() -> list[dict]:
    """Good documents whose keys never collide with the bad ones (pair SOL/USDT at T)."""
    plus2 = timezone(timedelta(hours=2))
    return [good_signal(pair="BTC/USDT"),
            good_signal(ts=(T - H).astimezone(plus2), pair="ETH/USDT", action=None, score=0.9),
            good_signal(pair="ETH/USDT", action="exit_long", weight=0.0)]


def stored_keys(coll) -> list[tuple]:
    return sorted((d["strategy_id"], d["pair"], d["timeframe"], d["ts"])
                  for d in coll.find({}, {"_id": 0}))


def expected_keys(docs: list[dict]) -> list[tuple]:
    return sorted((d["strategy_id"], d["pair"], d["timeframe"], d["ts"].astimezone(UTC))
                  for d in docs)


@pytest.mark.parametrize("case", BAD_SIGNALS, ids=[c.name for c in BAD_SIGNALS])
def test_bad_document_is_rejected_by_field_and_the_good_ones_are_stored(signals, case):
    good = good_batch()
    batch = good[:2] + [case.doc] + good[2:]
    result = export_signals(batch, signals.coll, runs_collection=signals.runs, now=NOW)

    assert (result.submitted, result.rejected, result.inserted) == (4, 1, 3)
    assert [(e.index, e.field) for e in result.errors] == [(2, case.field)]
    error = result.errors[0]
    assert error.message and str(error).startswith("document 2 (")
    assert stored_keys(signals.coll) == expected_keys(good)
    audit = signals.runs.find_one({"run_id": result.run_id})
    assert audit["status"] == "partial" and audit["counts"]["rejected"] == 1
    assert [(e["index"], e["field"]) for e in audit["errors"]] == [(2, case.field)]


def test_error_names_the_documents_key_when_it_has_one(signals):
    result = export_signals([good_signal(action="buy")], signals.coll, now=NOW)
    assert "strategy_id='rel'" in result.errors[0].key and "SOL/USDT" in result.errors[0].key


def test_duplicate_keys_in_one_batch_reject_every_copy_and_keep_the_rest(signals):
    good = good_batch()
    batch = [*good, good_signal(score=0.1), good_signal(score=0.9)]
    result = export_signals(batch, signals.coll, runs_collection=signals.runs, now=NOW)
    assert sorted((e.index, e.field) for e in result.errors) == [(3, "key"), (4, "key")]
    assert "also in document(s) 4" in result.errors[0].message
    assert stored_keys(signals.coll) == expected_keys(good)


def test_the_whole_corpus_in_one_shuffled_batch_stores_exactly_the_good_documents(signals):
    rng = random.Random(11)
    good = [good_signal(ts=T - k * H, pair=pair, strategy_id=sid)
            for k in range(4) for pair in ("BTC/USDT", "ETH/USDT")
            for sid in (STRATEGY, "rel2")]
    tagged = [(True, d) for d in good] + [(False, c.doc) for c in BAD_SIGNALS]
    rng.shuffle(tagged)
    batch = [d for _, d in tagged]
    bad_positions = {i for i, (ok, _) in enumerate(tagged) if not ok}

    result = export_signals(batch, signals.coll, runs_collection=signals.runs, now=NOW)
    assert result.rejected == len(BAD_SIGNALS) == len(bad_positions)
    assert {e.index for e in result.errors} == bad_positions
    assert result.inserted == len(good) and result.failed == 0
    assert stored_keys(signals.coll) == expected_keys(good)
    audit = signals.runs.find_one({"run_id": result.run_id})
    assert audit["error_count"] == len(result.errors) and audit["counts"]["inserted"] == len(good)

    again = export_signals(batch, signals.coll, now=NOW)  # nothing half-written: a no-op
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (
        0, 0, len(good), len(BAD_SIGNALS))
    assert stored_keys(signals.coll) == expected_keys(good)
