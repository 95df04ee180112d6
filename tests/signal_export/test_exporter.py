"""The exporter's promises, through real pymongo: idempotency, versions, duplicates, audit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from signal_export.contract import (
    CONTENT_HASH_FIELD,
    CREATED_AT_FIELD,
    RUN_ID_FIELD,
    UPDATED_AT_FIELD,
    document_from_stored,
)
from signal_export.demo import run_demo
from signal_export.exporter import content_hash, export_signals
from signal_export.settings import Settings
from signal_export.store import ensure_runs_indexes, ensure_signal_indexes

T0 = datetime(2026, 3, 2, tzinfo=UTC)
PAIRS = ["BTC/USDT", "ETH/USDT", "ETH/BTC", "1000PEPE/USDT"]


def frame(n_bars: int = 5, strategy_id: str = "s1", **cols) -> pd.DataFrame:
    rows = [{"ts": T0 + timedelta(hours=h), "timeframe": "1h", "pair": p,
             "strategy_id": strategy_id, "score": float(h), "weight": 0.5}
            for h in range(n_bars) for p in PAIRS]
    out = pd.DataFrame(rows)
    for name, value in cols.items():
        out[name] = value
    return out


@pytest.fixture
def coll(mongo_db):
    c = mongo_db["crypto_signals"]
    ensure_signal_indexes(c)
    return c


@pytest.fixture
def runs(mongo_db):
    r = mongo_db["export_runs"]
    ensure_runs_indexes(r)
    return r


def stored(coll, pair="BTC/USDT", ts=T0, strategy_id="s1"):
    return coll.find_one({"strategy_id": strategy_id, "pair": pair, "timeframe": "1h", "ts": ts})


def test_first_export_inserts_everything(coll):
    result = export_signals(frame(), coll, batch_size=7)
    assert (result.inserted, result.updated, result.unchanged, result.rejected) == (20, 0, 0, 0)
    assert result.batches == 3 and result.status == "ok"
    assert coll.count_documents({}) == 20
    doc = stored(coll, "ETH/BTC", T0 + timedelta(hours=2))
    assert doc["symbol"] == "BINANCE:ETHBTC" and doc["score"] == 2.0
    assert doc["ts"] == T0 + timedelta(hours=2) and doc["ts"].tzinfo is not None
    assert doc[RUN_ID_FIELD] == result.run_id and "action" not in doc  # unset: not stored


def test_re_exporting_the_same_frame_changes_nothing(coll):
    export_signals(frame(), coll)
    before = {d["_id"]: d for d in coll.find()}
    again = export_signals(frame(), coll)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 20)
    after = {d["_id"]: d for d in coll.find()}
    assert after == before  # not even updated_at / run_id moved


def test_changed_content_updates_only_those_documents(coll):
    first = export_signals(frame(), coll)
    original = stored(coll)
    changed = frame()
    changed.loc[0, "score"] = 42.0  # BTC/USDT at T0
    result = export_signals(changed, coll)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 19)
    doc = stored(coll)
    assert doc["score"] == 42.0 and doc[RUN_ID_FIELD] == result.run_id
    assert doc[CREATED_AT_FIELD] == original[CREATED_AT_FIELD]
    assert doc[UPDATED_AT_FIELD] >= original[UPDATED_AT_FIELD]
    assert doc[CONTENT_HASH_FIELD] != original[CONTENT_HASH_FIELD]
    untouched = stored(coll, "ETH/USDT")
    assert untouched[RUN_ID_FIELD] == first.run_id


def test_lower_version_never_overwrites_higher(coll):
    export_signals(frame(1, version=3, note="v3"), coll)
    result = export_signals(frame(1, version=2, note="v2"), coll)
    assert (result.stale_version, result.updated, result.inserted) == (4, 0, 0)
    assert stored(coll)["note"] == "v3" and stored(coll)["version"] == 3


def test_equal_version_with_new_content_overwrites_last_writer_wins(coll):
    export_signals(frame(1, version=2, note="first"), coll)
    result = export_signals(frame(1, version=2, note="second"), coll)
    assert result.updated == 4
    assert stored(coll)["note"] == "second"


def test_higher_version_overwrites_and_can_clear_optional_fields(coll):
    export_signals(frame(1, version=1, note="has a note"), coll)
    result = export_signals(frame(1, version=2), coll)
    assert result.updated == 4
    doc = stored(coll)
    assert doc["version"] == 2 and "note" not in doc  # cleared: removed, as never stored
    assert coll.count_documents({"note": None}) == 4  # and MongoDB's null query still finds it


def test_same_content_with_a_higher_version_is_an_update(coll):
    export_signals(frame(1), coll)
    assert export_signals(frame(1, version=2), coll).updated == 4


def test_duplicate_keys_inside_one_batch_are_rejected_and_the_rest_stored(coll):
    data = frame(2)
    dup = data.iloc[[0]].assign(score=99.0)
    result = export_signals(pd.concat([data, dup], ignore_index=True), coll)
    assert result.rejected == 2 and result.inserted == 7
    assert {e.field for e in result.errors} == {"key"}
    assert {e.index for e in result.errors} == {0, 8}
    assert stored(coll) is None  # neither copy of the contested key was stored


def test_bad_rows_are_reported_and_good_rows_stored(coll):
    data = frame(2)
    data.loc[3, "weight"] = 7.0
    data.loc[5, "pair"] = "BTC/NOPE"
    result = export_signals(data, coll)
    assert result.status == "partial" and result.rejected == 2 and result.inserted == 6
    assert sorted((e.index, e.field) for e in result.errors) == [(3, "weight"), (5, "pair")]
    assert coll.count_documents({}) == 6


def test_off_grid_rows_are_rejected_or_moved_to_the_next_bar_on_request(coll):
    data = frame(1).assign(ts=T0 + timedelta(minutes=10))
    assert export_signals(data, coll).rejected == 4
    assert export_signals(data, coll, align="ceil").inserted == 4
    assert coll.count_documents({"ts": T0 + timedelta(hours=1)}) == 4


def test_a_list_of_dicts_exports_like_a_frame(coll):
    records = frame(2).to_dict(orient="records")
    assert export_signals(records, coll).inserted == 8
    assert export_signals(frame(2), coll).unchanged == 8


def test_a_retry_after_a_lost_acknowledgement_counts_exactly(coll):
    """The part a lost attempt stored (same run id) counts as inserted, not as unchanged."""
    data = frame(3)
    export_signals(data.iloc[:5], coll, run_id="run-1")  # what reached the server before the cut
    result = export_signals(data, coll, run_id="run-1")
    assert (result.inserted, result.unchanged) == (12, 0)
    assert coll.count_documents({}) == 12


def test_every_run_leaves_an_audit_record(coll, runs):
    data = frame(2, version=4)
    data.loc[1, "weight"] = -1.0
    result = export_signals(data, coll, runs_collection=runs, audit_extra={"job": "test"})
    rec = runs.find_one({"run_id": result.run_id})
    assert rec["status"] == "partial" and rec["strategy_ids"] == ["s1"] and rec["versions"] == [4]
    assert rec["counts"]["inserted"] == 7 and rec["counts"]["rejected"] == 1
    assert rec["errors"][0]["field"] == "weight" and rec["error_count"] == 1
    assert "@" in rec["exporter"] and rec["code_version"]
    assert rec["started_at"] <= rec["finished_at"] and rec["latency_ms"] >= 0
    assert rec["target"].endswith(".crypto_signals") and rec["extra"] == {"job": "test"}
    assert runs.count_documents({}) == 1


def test_stored_documents_read_back_as_valid_contract_documents(coll):
    export_signals(frame(1, note="n", action="enter_long"), coll)
    for raw in coll.find():
        doc = document_from_stored(raw)
        assert doc.action == "enter_long" and doc.note == "n" and doc.ts == T0
    broken = dict(coll.find_one(), weight=3.0)
    with pytest.raises(ValidationError, match="weight"):
        document_from_stored(broken)


def test_content_hash_ignores_nothing_that_matters():
    base = {"symbol": "BINANCE:BTCUSDT", "action": "enter_long", "score": 0.5, "weight": None,
            "valid_until": None, "note": None, "source": None, "version": 1, "extra": None}
    same = dict(base)
    assert content_hash(base) == content_hash(same)
    for field, value in [("score", 0.5000001), ("version", 2), ("note", "x"),
                         ("valid_until", T0), ("extra", {"sl": 1.0})]:
        assert content_hash({**base, field: value}) != content_hash(base), field
    assert content_hash({**base, "extra": {"a": 1, "b": 2}}) == content_hash(
        {**base, "extra": {"b": 2, "a": 1}})


def test_risk_fields_change_the_hash_only_when_set():
    base = {"symbol": "BINANCE:BTCUSDT", "action": "enter_long", "score": 0.5, "weight": None,
            "valid_until": None, "note": None, "source": None, "version": 1, "extra": None}
    # as hashed before leverage/stop_loss/take_profit existed: the nine fields in order
    before = hashlib.blake2b(repr(tuple(base.values())).encode(), digest_size=16).hexdigest()
    assert content_hash(base) == before
    assert content_hash({**base, "leverage": None, "stop_loss": None}) == before
    for field, value in [("leverage", 2.0), ("stop_loss", 0.05), ("take_profit", 0.1)]:
        assert content_hash({**base, field: value}) != before, field


def test_documents_stored_before_the_risk_fields_are_unchanged_by_a_re_export(coll):
    export_signals(frame(2), coll)
    for doc in coll.find():  # what an older exporter stored: no risk fields in its hash
        parts = tuple(doc.get(f) for f in ("symbol", "action", "score", "weight",
                                           "valid_until", "note", "source", "version", "extra"))
        legacy = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
        coll.update_one({"_id": doc["_id"]}, {"$set": {"content_hash": legacy}})
    res = export_signals(frame(2), coll)
    assert (res.inserted, res.updated, res.unchanged) == (0, 0, 2 * len(frame(1)))


def test_demo_exports_once_and_the_second_run_is_a_no_op(mongo_client, mongo_db, capsys):
    settings = Settings(db=mongo_db.name, market_db=mongo_db.name)
    first, again = run_demo(mongo_client, settings, now=datetime(2026, 3, 5, 12, 34, tzinfo=UTC))
    assert first.inserted == 4 * 48 and first.rejected == 0
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4 * 48)
    out = capsys.readouterr().out
    assert "same frame again" in out and "1000PEPE/USDT" in out
    assert mongo_db["crypto_signals"].find_one(
        {"pair": "ETH/BTC", "ts": datetime(2026, 3, 5, 11, tzinfo=UTC)}) is not None


class CompetingWriter:
    """A real collection, with a second real writer striking between the exporter's read
    and its write (the race the write guards exist for)."""

    def __init__(self, coll, strike):
        self._coll, self._strike, self.struck = coll, strike, False

    def __getattr__(self, name):
        return getattr(self._coll, name)

    def _first_write(self):
        if not self.struck:
            self.struck = True
            self._strike()

    def insert_many(self, docs, **kwargs):
        self._first_write()
        return self._coll.insert_many(docs, **kwargs)

    def bulk_write(self, ops, **kwargs):
        self._first_write()
        return self._coll.bulk_write(ops, **kwargs)


def test_a_newer_version_written_during_the_export_is_kept(coll):
    export_signals(frame(1).iloc[[0]], coll)  # BTC/USDT @ T0, version 1
    key = {"strategy_id": "s1", "pair": "BTC/USDT", "timeframe": "1h", "ts": T0}

    def newer_writer():
        coll.update_one(key, {"$set": {"version": 3, "note": "v3", CONTENT_HASH_FIELD: "v3"}})

    racing = CompetingWriter(coll, newer_writer)
    result = export_signals(frame(1, version=2, note="v2").iloc[[0]], racing)
    assert racing.struck and (result.updated, result.stale_version, result.failed) == (0, 1, 0)
    assert stored(coll)["note"] == "v3"


def test_a_key_inserted_by_someone_else_during_the_export_is_updated_not_duplicated(coll):
    key = {"strategy_id": "s1", "pair": "BTC/USDT", "timeframe": "1h", "ts": T0}

    def other_inserter():
        coll.insert_one({**key, "version": 1, "note": "theirs", CONTENT_HASH_FIELD: "theirs"})

    racing = CompetingWriter(coll, other_inserter)
    result = export_signals(frame(1, note="ours").iloc[[0]], racing)
    assert racing.struck and (result.inserted, result.updated, result.failed) == (0, 1, 0)
    assert coll.count_documents(key) == 1 and stored(coll)["note"] == "ours"
