"""The idempotent signal exporter: validate -> map -> align -> bulk upsert -> audit record.

How a batch is written (why re-exporting changes nothing, and why retries are safe):

1. Every valid document gets a ``content_hash`` over its content fields
   (everything but the key, ``version`` included; an unset optional field
   counts as ``None``). Unset optional fields are not stored at all (readers
   treat a missing field as unset, MongoDB's ``{field: null}`` matches it; and
   measured, null elements cost a third of BSON encode/decode time); a newer
   export that clears a field ``$unset``s it.
2. One indexed range read per batch fetches ``version``/``content_hash``/
   ``run_id`` of the stored documents with the batch's keys (skipped when one
   probe at the start found nothing stored in the export's key ranges). Each
   document is then *unchanged* (same hash: no write at all), *stale_version*
   (stored version is higher: no write), or written.
3. Writes are two kinds, each one unordered request per batch. A key not
   stored yet is a plain insert (``insert_many``; all fields, ``created_at =
   updated_at``, BSON encoded by us, ``_id`` assigned by the server): if
   another writer stored the key in between, the unique index answers E11000
   and nothing is overwritten. A stored key with other content gets
   ``UpdateOne({key, version: {$lte: v}, content_hash: {$ne: h}},
   {$set: content + hash + updated_at + run_id})`` (no upsert, ``bulk_write``):
   the guards keep a concurrent newer or identical write intact. Any op that
   did not do what the read predicted (E11000, a guard that no longer matches)
   is re-classified by step 2 (a few rounds), never counted as a success it
   was not. ``updated_at``/``run_id`` change only with the content, so a re-run
   reports 0 inserted / 0 modified and leaves every document untouched.
4. Batches are time windows across pairs, and two are in flight at once: one
   is hashed, classified and encoded while the other is at the server (one
   request at the server at a time). See :func:`_write_batches`.

Version rule: a lower ``version`` never overwrites a higher stored one
(``stale_version``); an equal version with different content overwrites (last
writer wins, by export time); a higher version overwrites.

Retries: a batch that fails with a transient error (connection lost, timeout,
server restart, no server selectable) is retried with exponential backoff.
Each attempt starts with step 2, which also recognises documents this run
already stored before the acknowledgement was lost (``run_id`` = this run), so
only the not-yet-stored part is written again and counts stay exact: no
duplicates (unique key), no silent loss. After ``max_retries`` the export
raises :class:`ExportError` carrying the counts of what was stored.

Every run leaves an audit record in the export-runs collection.
"""

from __future__ import annotations

import gc
import getpass
import hashlib
import json
import logging
import operator
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from bson import decode_all
from bson import encode as _encode
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, ConnectionFailure, PyMongoError

from signal_export.contract import (
    CONTENT_HASH_FIELD,
    CREATED_AT_FIELD,
    CREATED_RUN_ID_FIELD,
    DEFAULT_EXCHANGE,
    DEFAULT_QUOTES,
    RUN_ID_FIELD,
    SIGNAL_CONTENT_FIELDS,
    SIGNAL_KEY,
    UPDATED_AT_FIELD,
    Align,
    timeframe_delta,
)
from signal_export.validate import SignalError, ValidatedBatch, record_key, validate_batch

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
MAX_ERRORS_IN_AUDIT = 20


class ExportError(RuntimeError):
    """The export could not finish (e.g. Mongo unreachable after all retries).

    ``result`` holds the counts of what was stored before it gave up.
    """

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class ExportResult:
    """Counts of one export run. ``inserted + updated`` documents were written."""

    run_id: str
    submitted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale_version: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    batches: int = 0
    errors: list[SignalError] = field(default_factory=list)
    status: str = "running"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    latency_ms: float | None = None

    @property
    def stored(self) -> int:
        return self.inserted + self.updated

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("submitted", "inserted", "updated", "unchanged",
                                              "stale_version", "rejected", "failed", "retries",
                                              "batches")}

    def summary(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.counts().items())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base_s * 2**attempt``, capped at ``max_s``, ``max_retries`` times."""

    max_retries: int = 6
    base_s: float = 0.25
    max_s: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * (2 ** attempt))


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: connection lost/timeouts/no server, or labelled retryable."""
    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NetworkTimeout, ServerSelection...
        return True
    return isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError")


# --- identity of a run ----------------------------------------------------


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of this checkout (``+dirty`` if modified), else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=2, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=2).stdout.strip()
        if commit:
            return f"{commit}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"freqtrade-signal-bridge {version('freqtrade-signal-bridge')}"
    except Exception:
        return "unknown"


def exporter_identity() -> str:
    """``user@host`` of the exporting process."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# --- documents -> write operations ----------------------------------------


class _Prepared:
    """One valid normalised record ready to write.

    ``ident`` = its key values in :data:`SIGNAL_KEY` order; ``record`` holds the
    key and content fields and nothing else.
    """

    __slots__ = ("index", "ident", "record", "content_hash", "version")

    def __init__(self, index: Any, ident: tuple, record: Mapping[str, Any], content_hash: str,
                 version: int) -> None:
        self.index = index
        self.ident = ident
        self.record = record
        self.content_hash = content_hash
        self.version = version

    @property
    def key(self) -> dict[str, Any]:
        return dict(zip(SIGNAL_KEY, self.ident, strict=True))

    @property
    def content(self) -> dict[str, Any]:
        return {name: self.record.get(name) for name in SIGNAL_CONTENT_FIELDS}


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def content_hash(content: Mapping[str, Any]) -> str:
    """A stable hash of the content fields of a normalised record.

    Field order is fixed by :data:`SIGNAL_CONTENT_FIELDS`; datetimes count as
    UTC ISO strings, floats by ``repr`` (exact), ``extra`` with sorted keys.
    """
    return _hash_parts(tuple([content.get(name) for name in SIGNAL_CONTENT_FIELDS]))


def _hash_parts(parts: tuple) -> str:
    """:func:`content_hash` of the content values in :data:`SIGNAL_CONTENT_FIELDS` order."""
    # only valid_until (datetime) and extra (dict) need a canonical text form
    if parts[_VALID_UNTIL] is not None or parts[_EXTRA] is not None:
        parts = tuple(
            _canonical(v) if isinstance(v, datetime)
            else json.dumps(v, sort_keys=True, default=_canonical) if isinstance(v, dict)
            else v
            for v in parts)
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


_VALID_UNTIL = SIGNAL_CONTENT_FIELDS.index("valid_until")
_EXTRA = SIGNAL_CONTENT_FIELDS.index("extra")
_VERSION = SIGNAL_CONTENT_FIELDS.index("version")


_content_of = operator.itemgetter(*SIGNAL_CONTENT_FIELDS)


def _prepare(record: Mapping[str, Any], index: Any) -> _Prepared:
    """Key, content hash and version of a normalised record (key + content fields, all set)."""
    content = _content_of(record)
    return _Prepared(index, record_key(record), record, _hash_parts(content),
                     int(content[_VERSION]))


_batch_order = operator.itemgetter("strategy_id", "timeframe", "ts", "pair")


def _in_batch_order(records: Sequence[Mapping[str, Any]],
                    indices: Sequence[Any]) -> list[tuple[Mapping[str, Any], Any]]:
    """(record, input index) pairs per strategy and timeframe, time first, then pair.

    So a batch is a time window across pairs: the newest bar of every pair in
    one batch (one read), a long history in consecutive windows. (Keys made by
    one C-level ``map`` and positions sorted by them: ~40 % less than a Python key.)
    """
    keys = list(map(_batch_order, records))
    return [(records[i], indices[i]) for i in sorted(range(len(keys)), key=keys.__getitem__)]


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many short-lived dicts and records.

    Measured: about a third of the client-side time per document otherwise
    (collections triggered by allocation counts, not by garbage). Whatever
    garbage is made meanwhile is collected after it is switched back on.
    Nested and concurrent pauses (batch writer threads) switch it back on
    only when the last one ends.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _insert_docs(batch: Sequence[_Prepared], run_id: str, now: datetime) -> list[RawBSONDocument]:
    """For keys not stored yet: each whole document, for a plain insert.

    If another writer stored the key in between, the unique index answers
    E11000 and the document is re-classified; nothing is overwritten.
    Documents go as BSON encoded here, without ``_id`` (the server assigns one,
    as mongod does): measured, pymongo's per-document insert bookkeeping (type
    checks, a client-side ObjectId, encoding at send time) cost about three
    times a single C ``encode``. The bookkeeping fields, the same for the whole
    batch, are encoded once and appended to each document's bytes, and the
    hash element is assembled directly (together a third of the encoding time).
    """
    tail = _encode({CREATED_AT_FIELD: now, UPDATED_AT_FIELD: now, RUN_ID_FIELD: run_id,
                    CREATED_RUN_ID_FIELD: run_id})[4:-1] + b"\x00"
    # body without its closing NUL + hash element (name, int32 length, 32 hex + NUL) + tail
    extra = -1 + len(_HASH_ELEMENT) + 4 + 33 + len(tail)
    docs = []
    for p in batch:
        body = _encode({name: value for name, value in p.record.items() if value is not None})
        docs.append(RawBSONDocument(b"".join((
            _INT32(len(body) + extra), body[4:-1], _HASH_ELEMENT, _HASH_LENGTH,
            p.content_hash.encode(), b"\x00", tail))))
    return docs


_HASH_ELEMENT = b"\x02" + CONTENT_HASH_FIELD.encode() + b"\x00"  # type string, name
_HASH_LENGTH = (33).to_bytes(4, "little")  # content_hash: 32 hex characters (16 bytes) + NUL
_INT32 = struct.Struct("<i").pack


def _change_op(p: _Prepared, run_id: str, now: datetime) -> UpdateOne:
    """For a stored key with other content: an update guarded by version and hash (no upsert).

    Content fields now unset are removed (``$unset``), as an insert would not store them.
    """
    flt = {**p.key, "version": {"$lte": p.version}, CONTENT_HASH_FIELD: {"$ne": p.content_hash}}
    content = p.content
    fields = {name: value for name, value in content.items() if value is not None}
    fields.update({CONTENT_HASH_FIELD: p.content_hash, UPDATED_AT_FIELD: now,
                   RUN_ID_FIELD: run_id})
    update: dict[str, Any] = {"$set": fields}
    cleared = {name: "" for name, value in content.items() if value is None}
    if cleared:
        update["$unset"] = cleared
    return UpdateOne(flt, update)


# --- one batch --------------------------------------------------------------


_STORED_PROJECTION = {"_id": 0, "pair": 1, "ts": 1, "version": 1, CONTENT_HASH_FIELD: 1,
                      RUN_ID_FIELD: 1, CREATED_RUN_ID_FIELD: 1}
_AWARE_UTC = CodecOptions(tz_aware=True, tzinfo=UTC)


def _read_stored(coll: Collection, batch: Sequence[_Prepared],
                 turn: AbstractContextManager) -> dict[tuple, dict[str, Any]]:
    """Stored version/hash/run ids for the batch's keys, by ``ident``.

    One indexed read per (strategy_id, timeframe) in the batch, usually one per
    batch: equality / ``$in`` over the batch's pairs on the unique index's
    prefix, then the batch's ``ts`` range, which servers answer from that index
    as one key range per pair. Batches are time windows across pairs (see
    :func:`_in_batch_order`), so the ranges are tight both for the newest bar of
    many pairs and for a long history. ``ts`` is read tz-aware so it compares
    equal to (and hashes like) the batch's own ``ts``. Only the read happens
    during our ``turn`` at the server; decoding (one C call per raw batch, a
    third of the per-document cursor cost) happens after it.
    """
    ranges = _key_ranges([p.ident for p in batch])
    fetched: list[tuple[tuple[str, str], bytes]] = []
    with turn:
        for strategy_id, timeframe, pairs, first, last, count in ranges:
            flt = _range_filter(strategy_id, timeframe, pairs, first, last)
            cursor = coll.find_raw_batches(flt, _STORED_PROJECTION, batch_size=count + 1)
            fetched.extend(((strategy_id, timeframe), raw) for raw in cursor)
    out: dict[tuple, dict[str, Any]] = {}
    for (strategy_id, timeframe), raw in fetched:
        for doc in decode_all(raw, _AWARE_UTC):
            out[(strategy_id, doc["pair"], timeframe, doc["ts"])] = doc
    return out


@dataclass
class _BatchState:
    """Documents of a batch not yet accounted for; survives a retried attempt.

    ``known_new``: none of the keys was stored when the export started (see
    :func:`_nothing_stored`), so the first round skips the read. Cleared before
    the first write, so a retried attempt reads as usual.
    """

    pending: list[_Prepared]
    known_new: bool = False


def _nothing_stored(coll: Collection, ordered: Sequence[tuple[Mapping[str, Any], Any]],
                    turn: AbstractContextManager) -> bool:
    """True if no stored document lies in the export's key ranges (one ``find_one`` each).

    For a first export of new bars this saves every batch's read. Keys stored
    by someone else after this check are still caught: inserts never overwrite
    (E11000), and such documents are classified again.
    """
    ranges = _key_ranges([record_key(record) for record, _index in ordered])
    with turn:
        return all(coll.find_one(_range_filter(strategy_id, timeframe, pairs, first, last),
                                 {"_id": 1}) is None
                   for strategy_id, timeframe, pairs, first, last, _count in ranges)


_STRATEGY_TIMEFRAME = operator.itemgetter(0, 2)
_PAIR = operator.itemgetter(1)
_TS = operator.itemgetter(3)


def _key_ranges(idents: Sequence[tuple]) -> list[tuple[str, str, set[str], datetime, datetime,
                                                        int]]:
    """``(strategy_id, timeframe, pairs, first ts, last ts, count)`` per strategy and timeframe.

    ``idents`` in :data:`SIGNAL_KEY` order. One strategy and timeframe (the usual case) is
    done with C-level ``map``/``min``/``max``; only mixed batches loop in Python.
    """
    if not idents:
        return []
    groups = set(map(_STRATEGY_TIMEFRAME, idents))
    if len(groups) > 1:
        by_group: dict[tuple[str, str], list[tuple]] = {}
        for ident in idents:
            by_group.setdefault(_STRATEGY_TIMEFRAME(ident), []).append(ident)
        return [rng for part in by_group.values() for rng in _key_ranges(part)]
    (strategy_id, timeframe), = groups
    stamps = list(map(_TS, idents))
    return [(strategy_id, timeframe, set(map(_PAIR, idents)), min(stamps), max(stamps),
             len(idents))]


def _range_filter(strategy_id: str, timeframe: str, pairs: set[str], first: datetime,
                  last: datetime) -> dict[str, Any]:
    """Equality / ``$in`` on the unique index's prefix, then a ``ts`` range."""
    return {"strategy_id": strategy_id,
            "pair": next(iter(pairs)) if len(pairs) == 1 else {"$in": sorted(pairs)},
            "timeframe": timeframe, "ts": {"$gte": first, "$lte": last}}


def _write_batch(coll: Collection, state: _BatchState, run_id: str,
                 result: ExportResult, turn: AbstractContextManager) -> None:
    """Classify against what is stored, write what changed, count; loops on write races.

    Counting and shrinking ``state.pending`` happen together with no I/O in
    between, so a retry after a transient error never counts a document twice.
    """
    for _round in range(5):
        if not state.pending:
            return
        if state.known_new:
            stored: dict[tuple, dict[str, Any]] = {}
            state.known_new = False
        else:
            stored = _read_stored(coll, state.pending, turn)
        inserts: list[_Prepared] = []
        changes: list[_Prepared] = []
        for p in state.pending:
            s = stored.get(p.ident)
            if s is None:
                inserts.append(p)
            elif s.get(CONTENT_HASH_FIELD) == p.content_hash:
                if s.get(RUN_ID_FIELD) == run_id:  # stored by this run; the ack was lost
                    if s.get(CREATED_RUN_ID_FIELD) == run_id:
                        result.inserted += 1
                    else:
                        result.updated += 1
                else:
                    result.unchanged += 1
            elif int(s.get("version") or 1) > p.version:
                result.stale_version += 1
            else:
                changes.append(p)
        to_write = inserts + changes
        state.pending = to_write
        if not to_write:
            return
        now = datetime.now(UTC)
        with _gc_paused():
            insert_docs = _insert_docs(inserts, run_id, now)
            change_ops = [_change_op(p, run_id, now) for p in changes]
        with turn:
            inserted = _send(coll.insert_many, insert_docs)
            changed = _send(coll.bulk_write, change_ops)
        # write errors by position in to_write (inserts first, then changes)
        errors = {err["index"]: err for err in inserted.get("writeErrors", [])}
        errors.update((len(inserts) + err["index"], err)
                      for err in changed.get("writeErrors", []))
        again: list[_Prepared] = []
        result.inserted += len(inserts) - len(inserted.get("writeErrors", []))
        n_changed = int(changed.get("nModified", 0))
        change_errors = changed.get("writeErrors", [])
        if n_changed == len(changes) - len(change_errors):
            result.updated += n_changed
        else:  # some guarded updates did not match: re-read them (ours are recognised)
            again.extend(p for i, p in enumerate(changes, start=len(inserts))
                         if i not in errors)
        for i, err in sorted(errors.items()):
            p = to_write[i]
            if err.get("code") == DUPLICATE_KEY:
                again.append(p)  # someone stored the key in between: classify again
            else:
                result.failed += 1
                result.errors.append(SignalError(p.index, _describe(p), "write",
                                                 f"{err.get('code')}: {err.get('errmsg')}"))
        state.pending = again
        concern = inserted.get("writeConcernErrors") or changed.get("writeConcernErrors")
        if concern:
            raise ConnectionFailure(f"write concern error: {concern[0]}")
    for p in state.pending:
        result.failed += 1
        result.errors.append(SignalError(p.index, _describe(p), "write",
                                         "kept conflicting with concurrent writers; not stored"))
    state.pending = []


def _send(write: Callable[..., Any], ops: list) -> dict[str, Any]:
    """One unordered ``insert_many`` / ``bulk_write``; its write errors instead of raising.

    Returns ``{}`` for no ops or complete success (neither needs more).
    """
    if not ops:
        return {}
    try:
        reply = write(ops, ordered=False)
    except BulkWriteError as exc:
        return exc.details
    return getattr(reply, "bulk_api_result", {})


def _describe(p: _Prepared) -> str:
    k = p.key
    return (f"strategy_id={k['strategy_id']!r} pair={k['pair']!r} "
            f"timeframe={k['timeframe']!r} ts={k['ts'].isoformat()}")


def _with_retries(action: Callable[[], Any], policy: RetryPolicy, result: ExportResult,
                  what: str, sleep: Callable[[float], None] = time.sleep) -> Any:
    for attempt in range(policy.max_retries + 1):
        try:
            return action()
        except PyMongoError as exc:
            if not is_transient(exc) or attempt == policy.max_retries:
                raise
            delay = policy.delay(attempt)
            result.retries += 1
            log.warning("transient MongoDB error during %s (attempt %d/%d), retrying in %.2fs: %s",
                        what, attempt + 1, policy.max_retries, delay, type(exc).__name__,
                        extra={"run_id": result.run_id, "retry_delay_s": delay})
            sleep(delay)
    raise AssertionError("unreachable")


# --- the run --------------------------------------------------------------


@dataclass(frozen=True)
class _RunScope:
    """What an export run covers, for its audit record (computed once per run)."""

    strategy_ids: list[str]
    versions: list[int]
    timeframes: list[str]
    latest: Mapping[str, Any] | None

    @classmethod
    def of(cls, docs: Sequence[Mapping[str, Any]]) -> _RunScope:
        def values(name: str) -> list:
            return sorted(set(map(operator.itemgetter(name), docs)))

        return cls(values("strategy_id"), values("version"), values("timeframe"),
                   max(docs, key=operator.itemgetter("ts")) if docs else None)


def _audit_record(result: ExportResult, scope: _RunScope, collection: Collection,
                  align: str, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "run_id": result.run_id,
        "status": result.status,
        "strategy_ids": scope.strategy_ids,
        "versions": scope.versions,
        "timeframes": scope.timeframes,
        "code_version": code_version(),
        "exporter": exporter_identity(),
        "target": f"{collection.database.name}.{collection.name}",
        "align": align,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "latency_ms": result.latency_ms,
        "counts": result.counts(),
        "error_count": len(result.errors),
        "errors": [e.as_dict() for e in result.errors[:MAX_ERRORS_IN_AUDIT]],
    }
    latest = scope.latest
    if latest is not None:
        record["max_ts"] = latest["ts"]
        if result.finished_at is not None:
            bar_close = latest["ts"] + timeframe_delta(latest["timeframe"])
            record["bar_close_lag_ms"] = (result.finished_at - bar_close).total_seconds() * 1000
    if extra:
        record["extra"] = dict(extra)
    return record


def export_signals(
    data: pd.DataFrame | Iterable[Mapping[str, Any]],
    collection: Collection,
    *,
    runs_collection: Collection | None = None,
    align: Align = "reject",
    now: datetime | None = None,
    exchange: str = DEFAULT_EXCHANGE,
    quotes: tuple[str, ...] = DEFAULT_QUOTES,
    batch_size: int = 5_000,
    retry: RetryPolicy = RetryPolicy(),
    run_id: str | None = None,
    on_batch: Callable[[int, ExportResult], None] | None = None,
    audit_extra: Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    writers: int = 2,
) -> ExportResult:
    """Validate and upsert signals: good rows stored, rejected ones reported in ``result.errors``.

    ``align="ceil"`` moves an off-grid ``ts`` up to the next bar open (the candle
    the strategy acts on anyway) instead of rejecting it. ``on_batch(n, result)``
    is called after each stored batch, in batch
    order (progress, tests). Up to ``writers`` batches are in flight at once
    (see :func:`_write_batches`). Raises :class:`ExportError` if MongoDB stays
    unreachable.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    result = ExportResult(run_id=run_id or str(uuid.uuid4()), started_at=datetime.now(UTC))
    t0 = time.perf_counter()
    with _gc_paused():
        validated: ValidatedBatch = validate_batch(data, align=align, now=now,
                                                   exchange=exchange, quotes=quotes)
        docs = validated.records
        ordered = _in_batch_order(docs, validated.indices)
        scope = _RunScope.of(docs)
    result.submitted = len(validated.records) + len(validated.rejected_indices)
    result.rejected = len(validated.rejected_indices)
    result.errors.extend(validated.errors)
    try:
        if runs_collection is not None:
            start_record = _audit_record(result, scope, collection, align, audit_extra)
            _with_retries(lambda: runs_collection.update_one(
                {"run_id": result.run_id}, {"$setOnInsert": start_record}, upsert=True),
                retry, result, "audit start", sleep)
        _write_batches(collection, ordered, result, batch_size, max(1, writers), retry,
                       on_batch, sleep)
    except PyMongoError as exc:
        _finish(result, t0, "failed")
        _try_audit(runs_collection, result, scope, collection, align, audit_extra, retry, sleep)
        raise ExportError(
            f"export {result.run_id} failed after {result.retries} retries "
            f"({type(exc).__name__}: {exc}); stored so far: {result.summary()}", result
        ) from exc
    _finish(result, t0, "ok" if not result.errors else "partial")
    _try_audit(runs_collection, result, scope, collection, align, audit_extra, retry, sleep)
    log.info("export %s %s: %s", result.run_id, result.status, result.summary(),
             extra={"run_id": result.run_id, **result.counts()})
    return result


def _write_batches(collection: Collection, ordered: Sequence[tuple[Mapping[str, Any], Any]],
                   result: ExportResult,
                   batch_size: int, writers: int, retry: RetryPolicy,
                   on_batch: Callable[[int, ExportResult], None] | None,
                   sleep: Callable[[float], None]) -> None:
    """Write the ``ordered`` (record, input index) pairs in batches, up to ``writers`` at once.

    Why in flight together: while one batch waits for the server, the next one
    is hashed, classified and encoded, so client and server work overlap
    instead of taking turns. Batches hold disjoint keys (duplicates were rejected), so they
    cannot race each other. Each batch counts into its own partial result
    (retries included), merged into ``result`` in batch order once it is done;
    after a failed batch no new one starts, the ones in flight finish, their
    counts are merged, and the first error is raised.
    """
    def run(items: Sequence[tuple[Mapping[str, Any], Any]], part: ExportResult,
            number: int) -> None:
        with _gc_paused():
            state = _BatchState([_prepare(record, index) for record, index in items], known_new)
        _with_retries(lambda: _write_batch(collection, state, result.run_id, part, turn),
                      retry, part, f"batch {number}", sleep)

    turn = threading.Lock()  # one request at the server at a time (see above)
    all_bounds = _batch_bounds(len(ordered), batch_size)
    several = len(all_bounds) > 1  # one batch (e.g. the newest bars): no probe, no threads
    known_new = several and _with_retries(lambda: _nothing_stored(collection, ordered, turn),
                                          retry, result, "read of stored keys", sleep)
    bounds = iter(all_bounds)
    in_flight: deque[tuple[Future, ExportResult]] = deque()
    failure: BaseException | None = None
    with ExitStack() as stack:
        submit = (stack.enter_context(ThreadPoolExecutor(
            max_workers=writers, thread_name_prefix="signal-export")).submit
            if several else _run_inline)
        while True:
            while failure is None and len(in_flight) < writers:
                bound = next(bounds, None)
                if bound is None:
                    break
                part = ExportResult(run_id=result.run_id)
                number = result.batches + len(in_flight) + 1
                items = ordered[bound[0]:bound[1]]
                in_flight.append((submit(run, items, part, number), part))
            if not in_flight:
                break
            future, part = in_flight.popleft()
            error = future.exception()
            _merge_counts(result, part)
            if error is not None:
                failure = failure or error
                continue
            result.batches += 1
            if on_batch is not None and failure is None:
                on_batch(result.batches, result)
    if failure is not None:
        raise failure


FIRST_BATCH_MAX = 1_000


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each batch: at most ``batch_size`` documents each.

    Sizes ramp up from :data:`FIRST_BATCH_MAX`, doubling: the server starts on a
    small batch right away and each next batch is prepared while the one before
    it, half its size, is being written (measured: a full-size first batch left
    the server idle for the whole of its preparation).
    """
    bounds: list[tuple[int, int]] = []
    size, start = min(batch_size, FIRST_BATCH_MAX), 0
    while start < n:
        bounds.append((start, min(start + size, n)))
        start += size
        size = min(batch_size, size * 2)
    return bounds


def _run_inline(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` run now, in this thread, as a finished future (an executor's ``submit``)."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _merge_counts(result: ExportResult, part: ExportResult) -> None:
    for name in ("inserted", "updated", "unchanged", "stale_version", "failed", "retries"):
        setattr(result, name, getattr(result, name) + getattr(part, name))
    result.errors.extend(part.errors)


def _finish(result: ExportResult, t0: float, status: str) -> None:
    result.status = status
    result.finished_at = datetime.now(UTC)
    result.latency_ms = round((time.perf_counter() - t0) * 1000, 3)


def _try_audit(runs: Collection | None, result: ExportResult, scope: _RunScope,
               collection: Collection, align: str, extra: Mapping[str, Any] | None,
               retry: RetryPolicy, sleep: Callable[[float], None]) -> None:
    if runs is None:
        return
    record = _audit_record(result, scope, collection, align, extra)
    try:
        _with_retries(lambda: runs.update_one({"run_id": result.run_id}, {"$set": record},
                                              upsert=True), RetryPolicy(max_retries=2,
                                                                        base_s=retry.base_s),
                      result, "audit record", sleep)
    except PyMongoError as exc:
        log.error("could not write the audit record of export %s: %s", result.run_id, exc,
                  extra={"run_id": result.run_id})


def result_as_dict(result: ExportResult) -> dict[str, Any]:
    """JSON-friendly form of a result (errors as dicts)."""
    out = asdict(result)
    out["errors"] = [e.as_dict() for e in result.errors]
    return out
