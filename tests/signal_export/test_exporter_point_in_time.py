"""Knowledge time and history, through real pymongo: ``available_at`` from the server's clock,
replaced versions kept append-only, retries adding nothing, producers unable to set it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pymongo.errors import AutoReconnect, BulkWriteError

import signal_export.exporter as exporter_module
from signal_export.contract import CONTENT_HASH_FIELD, CREATED_AT_FIELD, ContractError
from signal_export.exporter import RetryPolicy, export_signals
from signal_export.point_in_time import AVAILABLE_AT_FIELD, SUPERSEDED_AT_FIELD, as_known
from signal_export.store import ensure_signal_indexes, signal_versions

T0 = datetime(2026, 3, 2, tzinfo=UTC)
KEY = {"strategy_id": "s1", "pair": "BTC/USDT", "timeframe": "1h", "ts": T0}


def rows(version: int = 1, note: str = "n", pairs=("BTC/USDT", "ETH/USDT")) -> pd.DataFrame:
    return pd.DataFrame([{**KEY, "pair": p, "score": 0.5, "version": version, "note": note}
                         for p in pairs])


@pytest.fixture
def coll(mongo_db):
    c = mongo_db["crypto_signals"]
    ensure_signal_indexes(c)
    return c


@pytest.fixture
def history(mongo_db, coll):
    return mongo_db["crypto_signals_history"]


def stored(coll, pair="BTC/USDT"):
    return coll.find_one({**KEY, "pair": pair})


class _SkewedClock(datetime):
    """The exporter's own clock, a year ahead: ``available_at`` must not come from it."""

    @classmethod
    def now(cls, tz=None):
        return datetime(2027, 6, 1, tzinfo=UTC)


def test_available_at_is_the_servers_clock_on_insert_and_on_a_new_version(coll, monkeypatch):
    monkeypatch.setattr(exporter_module, "datetime", _SkewedClock)
    before = datetime.now(UTC) - timedelta(seconds=5)
    export_signals(rows(), coll)
    first = stored(coll)
    assert first[CREATED_AT_FIELD] == datetime(2027, 6, 1, tzinfo=UTC)  # the exporter's clock
    assert before <= first[AVAILABLE_AT_FIELD] <= datetime.now(UTC) + timedelta(seconds=5)
    assert export_signals(rows(version=2), coll).updated == 2
    second = stored(coll)
    assert first[AVAILABLE_AT_FIELD] <= second[AVAILABLE_AT_FIELD] <= datetime.now(UTC)


def test_an_identical_re_export_keeps_available_at_and_adds_no_history(coll, history):
    export_signals(rows(), coll)
    before = stored(coll)[AVAILABLE_AT_FIELD]
    again = export_signals(rows(), coll)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert stored(coll)[AVAILABLE_AT_FIELD] == before
    assert history.count_documents({}) == 0


def test_a_replaced_version_goes_to_history_with_its_available_at(coll, history):
    export_signals(rows(version=1, note="v1"), coll)
    v1 = stored(coll)
    export_signals(rows(version=2, note="v2"), coll)
    export_signals(rows(version=2, note="v2 fixed"), coll)  # same version, new content
    assert export_signals(rows(version=1, note="late v1"), coll).stale_version == 2
    entries = list(history.find({"pair": "BTC/USDT"}).sort(SUPERSEDED_AT_FIELD, 1))
    assert [(e["version"], e["note"]) for e in entries] == [(1, "v1"), (2, "v2")]
    assert entries[0][AVAILABLE_AT_FIELD] == v1[AVAILABLE_AT_FIELD]
    assert entries[0][CONTENT_HASH_FIELD] == v1[CONTENT_HASH_FIELD]
    assert entries[0]["run_id"] == v1["run_id"]  # which run wrote the replaced version
    current = stored(coll)
    assert current["note"] == "v2 fixed"
    for e in entries:  # superseded when (or just before) the next version became visible
        assert e[AVAILABLE_AT_FIELD] <= e[SUPERSEDED_AT_FIELD] <= current[AVAILABLE_AT_FIELD]
    assert history.count_documents({}) == 4  # both pairs, two replacements each


class FailingFirstWrite:
    """The signals collection, whose first ``bulk_write`` is lost after the history write:
    the replace never happened, the exporter retries the batch."""

    def __init__(self, coll):
        self._coll, self.failed = coll, False

    def __getattr__(self, name):
        return getattr(self._coll, name)

    def bulk_write(self, ops, **kwargs):
        if not self.failed:
            self.failed = True
            raise AutoReconnect("connection lost")
        return self._coll.bulk_write(ops, **kwargs)


def test_a_retried_export_archives_each_version_once(coll, history):
    export_signals(rows(version=1), coll)
    flaky = FailingFirstWrite(coll)
    result = export_signals(rows(version=2), flaky, retry=RetryPolicy(max_retries=2, base_s=0),
                            sleep=lambda _s: None)
    assert flaky.failed and result.retries == 1 and result.updated == 2
    assert history.count_documents({}) == 2  # the retry's second archive write added nothing
    assert {e["version"] for e in history.find()} == {1}


def test_an_archive_copy_of_a_version_never_replaced_is_harmless(coll, history):
    export_signals(rows(version=1), coll)
    flaky = FailingFirstWrite(coll)
    with pytest.raises(exporter_module.ExportError):
        export_signals(rows(version=2), flaky, retry=RetryPolicy(max_retries=0, base_s=0),
                       sleep=lambda _s: None)
    assert history.count_documents({}) == 2 and stored(coll)["version"] == 1  # crashed between
    versions = signal_versions(coll, history, T0, T0, strategy_ids="s1")
    assert len(versions) == 2  # the copy and the current document are one version
    q = pd.DataFrame([{**KEY, "decision_at": datetime.now(UTC)}])
    assert as_known(versions, q).loc[0, "version"] == 1


def test_as_known_over_the_stored_versions_sees_what_was_visible_then(coll, history):
    export_signals(rows(version=1, note="v1"), coll)
    between = datetime.now(UTC)
    while datetime.now(UTC) <= between + timedelta(milliseconds=5):
        pass  # the next version is known strictly later (BSON dates are milliseconds)
    export_signals(rows(version=2, note="v2"), coll)
    versions = signal_versions(coll, history, T0, T0 + timedelta(hours=1), strategy_ids="s1",
                               timeframe="1h")
    assert sorted(versions["version"]) == [1, 1, 2, 2]
    q = pd.DataFrame([{**KEY, "decision_at": t} for t in
                      (T0, between, datetime.now(UTC))])
    out = as_known(versions, q)
    assert pd.isna(out.loc[0, "note"])  # exported long after that bar: not known at T0
    assert list(out.loc[1:, "note"]) == ["v1", "v2"]


def test_a_producer_cannot_set_available_at(coll):
    record = {**KEY, "score": 0.5, AVAILABLE_AT_FIELD: T0}
    result = export_signals([record], coll)
    assert result.rejected == 1 and result.inserted == 0
    assert [e.field for e in result.errors] == [AVAILABLE_AT_FIELD]
    with pytest.raises(ContractError, match=AVAILABLE_AT_FIELD):
        export_signals(rows().assign(available_at=T0), coll)
    assert coll.count_documents({}) == 0


class RefusingFirstEntry:
    """The history collection, refusing its first entry of each write with a non-duplicate
    error (as a document validator would) and storing the others."""

    def __init__(self, coll):
        self._coll = coll

    def __getattr__(self, name):
        return getattr(self._coll, name)

    def bulk_write(self, ops, **kwargs):
        reply = self._coll.bulk_write(ops[1:], **kwargs).bulk_api_result
        raise BulkWriteError({**reply, "writeErrors": [
            {"index": 0, "code": 121, "errmsg": "Document failed validation"}]})


def test_a_version_whose_archive_write_fails_is_not_replaced(coll, history):
    export_signals(rows(version=1, note="v1"), coll)
    result = export_signals(rows(version=2, note="v2"), coll,
                            history_collection=RefusingFirstEntry(history))
    assert (result.updated, result.failed, result.status) == (1, 1, "partial")
    (error,) = result.errors
    assert error.field == "write" and "121" in error.message and "BTC/USDT" in error.key
    assert stored(coll, "BTC/USDT")["note"] == "v1"  # kept: its history entry is missing
    assert stored(coll, "ETH/USDT")["note"] == "v2"
    assert [e["pair"] for e in history.find()] == ["ETH/USDT"]
