"""The one retry helper and the one transient-error rule per backend, driven by one table.

Both users of :func:`signal_export.retry.call_with_retries` (the exporter with
MongoDB's errors, the ccxt import with ccxt's) are checked against the same
cases: a transient error is retried with the policy's backoff and counted, a
permanent one propagates at once, the last transient one propagates after
``max_retries``.
"""

from __future__ import annotations

import ccxt
import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from research.data.ccxt_import import is_transient_ccxt
from signal_export.errors import BridgeError
from signal_export.exporter import ExportError, export_signals
from signal_export.retry import RetryPolicy, call_with_retries, is_transient_mongo
from signal_export.store import ensure_runs_indexes, ensure_signal_indexes


def _labelled(exc: OperationFailure, label: str) -> OperationFailure:
    exc._error_labels = {label}
    return exc


CASES = [  # (rule, error, transient?)
    (is_transient_mongo, AutoReconnect("connection reset"), True),
    (is_transient_mongo, NetworkTimeout("timed out"), True),
    (is_transient_mongo, ServerSelectionTimeoutError("no server"), True),
    (is_transient_mongo, _labelled(OperationFailure("primary stepped down", code=189),
                                   "RetryableWriteError"), True),
    (is_transient_mongo, WriteConcernError("waiting for replication timed out", 64, {}), False),
    (is_transient_mongo, OperationFailure("bad query", code=2), False),
    (is_transient_mongo, DuplicateKeyError("E11000", code=11000), False),
    (is_transient_mongo, ValueError("not a database error"), False),
    (is_transient_ccxt, ccxt.RateLimitExceeded("429"), True),
    (is_transient_ccxt, ccxt.NetworkError("reset"), True),
    (is_transient_ccxt, ccxt.RequestTimeout("slow"), True),
    (is_transient_ccxt, ccxt.BadSymbol("no such market"), False),
    (is_transient_ccxt, ccxt.AuthenticationError("bad key"), False),
]


@pytest.mark.parametrize(("rule", "error", "transient"), CASES,
                         ids=[f"{r.__name__}-{type(e).__name__}" for r, e, _ in CASES])
def test_one_helper_retries_exactly_the_transient_errors(rule, error, transient):
    assert rule(error) is transient
    calls, slept, counted = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise error
        return "done"

    policy = RetryPolicy(max_retries=5, base_s=0.5, max_s=1.0)
    if transient:
        assert call_with_retries(flaky, policy, transient=rule, what="t", sleep=slept.append,
                                 on_retry=lambda a, d: counted.append((a, d))) == "done"
        assert slept == [0.5, 1.0] and counted == [(1, 0.5), (2, 1.0)] and len(calls) == 3
        calls.clear()
        with pytest.raises(type(error)):  # gives up after max_retries, with the last error
            call_with_retries(flaky, RetryPolicy(max_retries=1, base_s=0.0), transient=rule,
                              what="t", sleep=slept.append)
        assert len(calls) == 2
    else:
        with pytest.raises(type(error)):
            call_with_retries(flaky, policy, transient=rule, what="t", sleep=slept.append)
        assert len(calls) == 1 and slept == []


def test_retry_policy_backs_off_exponentially_up_to_a_cap():
    policy = RetryPolicy(max_retries=6, base_s=0.25, max_s=2.0)
    assert [policy.delay(a) for a in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]


class _ConcernAfterWrite:
    """A real collection whose ``bulk_write`` applies the writes, then reports a write-concern
    error as the driver does (``BulkWriteError`` with ``writeConcernErrors``)."""

    def __init__(self, coll, labels=()):
        self._coll, self._labels, self.calls = coll, list(labels), 0

    def __getattr__(self, name):
        return getattr(self._coll, name)

    def bulk_write(self, ops, ordered=True):
        self.calls += 1
        reply = self._coll.bulk_write(ops, ordered=ordered).bulk_api_result
        if self.calls == 1:
            reply["writeConcernErrors"] = [{"code": 64, "errmsg": "waiting for replication "
                                            "timed out", "errorLabels": self._labels}]
            raise BulkWriteError(reply)
        return type("Reply", (), {"bulk_api_result": reply})()


def _frame(n=10):
    import pandas as pd

    ts = pd.date_range("2026-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"ts": ts, "pair": "BTC/USDT", "timeframe": "1h",
                         "strategy_id": "wc", "score": range(n)})


def test_a_write_concern_error_fails_the_export_and_is_not_called_a_connection_error(mongo_db):
    coll, runs = mongo_db["crypto_signals"], mongo_db["export_runs"]
    ensure_signal_indexes(coll)
    ensure_runs_indexes(runs)
    with pytest.raises(ExportError) as info:
        export_signals(_frame(), _ConcernAfterWrite(coll), runs_collection=runs,
                       retry=RetryPolicy(max_retries=3, base_s=0.0))
    assert isinstance(info.value, BridgeError)
    cause = info.value.__cause__
    assert isinstance(cause, WriteConcernError) and not isinstance(cause, ConnectionFailure)
    result = info.value.result
    assert result.retries == 0 and result.inserted == 10 == coll.count_documents({})
    record = runs.find_one({"run_id": result.run_id})
    assert record["status"] == "failed" and record["counts"]["inserted"] == 10


def test_a_retryable_write_concern_error_is_retried_and_counts_stay_exact(mongo_db):
    coll = mongo_db["crypto_signals"]
    ensure_signal_indexes(coll)
    flaky = _ConcernAfterWrite(coll, labels=["RetryableWriteError"])
    result = export_signals(_frame(), flaky, retry=RetryPolicy(max_retries=3, base_s=0.0))
    assert result.retries == 1 and result.inserted == 10 and result.unchanged == 0
    assert coll.count_documents({}) == 10
