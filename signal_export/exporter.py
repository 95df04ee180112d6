"""The idempotent signal exporter: validate -> map -> align -> bulk write -> audit record.

How a batch is written (why re-exporting changes nothing, and why retries are safe):

1. Every valid document gets a ``content_hash`` over its content fields
   (everything but the key, ``version`` included; an unset optional field
   counts as ``None``). Unset optional fields are not stored (readers treat a
   missing field as unset); a newer export that clears a field ``$unset``s it.
2. One indexed read per batch fetches ``version``/``content_hash``/``run_id``
   of the stored documents with the batch's keys. Each document is then
   *unchanged* (same hash: no write), *stale_version* (stored version is
   higher: no write), a new key, or a change.
3. One unordered ``bulk_write`` per batch. New keys: an upsert whose filter
   never matches a stored document (``{key, _id: {$exists: false}}`` with
   ``$setOnInsert`` of the document): it inserts, or answers E11000 from the
   unique index if another writer stored the key in between, like
   ``InsertOne`` - which cannot take the server's clock. Changes:
   ``UpdateOne({key, content_hash: <the hash read>}, {$set: …})`` without
   upsert: it replaces exactly the version that was read and archived (a
   concurrent newer or identical write stays intact). Both set
   ``available_at`` with ``$currentDate`` (the MongoDB server's clock: when
   the version became visible; content hashes exclude it, so a re-export of
   identical content writes nothing and keeps it). An op that did not do what
   the read predicted (E11000, a guard that no longer matches) is classified
   again by step 2 (a few rounds), never counted as a success it was not.
   ``updated_at``/``run_id`` change only with the content, so a re-run reports
   0 inserted / 0 updated and touches nothing.
4. Before that write, only when a batch changes stored documents: one read
   of the whole stored documents and one unordered ``bulk_write`` that
   appends them to the history collection (``<collection>_history``) with
   ``superseded_at`` from the server clock. History first, replace second: a
   crash in between leaves an extra history copy of the still-current
   version (harmless, see :mod:`signal_export.point_in_time`), never a lost
   version; a retry's duplicate entry hits the history's unique index (key,
   version, content hash) and adds nothing.

Batches are time windows across pairs (the newest bar of every pair in one
batch and one read; a long history in consecutive windows), written one after
the other.

Version rule: a lower ``version`` never overwrites a higher stored one
(``stale_version``); an equal version with different content overwrites (last
writer wins, by export time); a higher version overwrites.

Retries: a batch that fails with a transient error (connection lost, timeout,
server restart, no server selectable, a write error labelled retryable) is
retried with exponential backoff (:mod:`signal_export.retry`). Each attempt
starts with step 2, which also recognises documents this run already stored
before the acknowledgement was lost (``run_id`` = this run), so counts stay
exact: no duplicates (unique key), no silent loss. A write-concern error that
is not retryable fails the export (it is not a connection problem). After
``max_retries`` the export raises :class:`ExportError` with the counts of what
was acknowledged as stored (a batch whose acknowledgement was lost with the server
may be stored too: re-running with the same ``run_id`` recognises and counts it).

Every run leaves an audit record in the export-runs collection: written when
the run ends, and also when it starts (status ``running``) if the run spans
more than one batch, so a long run that dies is visible while a one-batch run
(a live bar, an ingest request) pays one audit write, not two.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import operator
import socket
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from bson.codec_options import CodecOptions
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError, WriteConcernError

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
from signal_export.errors import BridgeError
from signal_export.point_in_time import (
    AVAILABLE_AT_FIELD,
    SUPERSEDED_AT_FIELD,
    history_collection_name,
)
from signal_export.retry import RetryPolicy, call_with_retries, is_transient_mongo
from signal_export.validate import SignalError, record_key, validate_batch

__all__ = ["ExportCounts", "ExportError", "ExportResult", "RetryPolicy", "content_hash",
           "export_signals", "is_transient", "result_as_dict"]

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
MAX_ERRORS_IN_AUDIT = 20
#: Rounds of re-classification when concurrent writers keep changing the same keys.
MAX_ROUNDS = 5

is_transient = is_transient_mongo


@dataclass
class ExportCounts:
    """What happened to each submitted signal: the one counts type of exporter, pipeline
    (dry runs included) and ingest API. ``inserted + updated`` documents were written."""

    submitted: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale_version: int = 0
    rejected: int = 0
    failed: int = 0

    @property
    def stored(self) -> int:
        return self.inserted + self.updated

    def add(self, other: ExportCounts) -> None:
        for f in fields(ExportCounts):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def count_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(ExportCounts)}


@dataclass
class ExportResult(ExportCounts):
    """One export run: its counts, retries, batches, errors, status and timing."""

    run_id: str = ""
    retries: int = 0
    batches: int = 0
    errors: list[SignalError] = field(default_factory=list)
    status: str = "running"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    latency_ms: float | None = None

    def counts(self) -> dict[str, int]:
        return {**self.count_dict(), "retries": self.retries, "batches": self.batches}

    def merge(self, part: ExportResult) -> None:
        """Take over a batch's counts, retries and errors."""
        self.add(part)
        self.retries += part.retries
        self.errors.extend(part.errors)

    def retried(self, action: Callable[[], Any], policy: RetryPolicy, what: str,
                sleep: Callable[[float], None]) -> Any:
        """``action()`` under ``policy`` for transient MongoDB errors, each retry counted here."""
        def count(_attempt: int, _delay: float) -> None:
            self.retries += 1

        return call_with_retries(action, policy, transient=is_transient, what=what,
                                 on_retry=count, sleep=sleep, log_extra={"run_id": self.run_id})

    def summary(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.counts().items())


class ExportError(BridgeError):
    """The export could not finish (e.g. MongoDB unreachable after all retries).

    ``result`` holds the counts of what was acknowledged as stored before it gave up. A
    batch in flight when the server went away may be stored without its acknowledgement:
    running the export again with ``run_id=result.run_id`` recognises it (no duplicates).
    """

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result


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


@lru_cache(maxsize=1)
def exporter_identity() -> str:
    """``user@host`` of the exporting process."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# --- documents -------------------------------------------------------------

_content_of = operator.itemgetter(*SIGNAL_CONTENT_FIELDS)
_VALID_UNTIL = SIGNAL_CONTENT_FIELDS.index("valid_until")
_EXTRA = SIGNAL_CONTENT_FIELDS.index("extra")
_VERSION = SIGNAL_CONTENT_FIELDS.index("version")
_STRATEGY, _PAIR, _TIMEFRAME, _TS = (SIGNAL_KEY.index(name)
                                     for name in ("strategy_id", "pair", "timeframe", "ts"))


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


#: Content fields hashed before the per-signal risk fields (leverage, stop_loss, take_profit)
#: existed: without them a document hashes as it always did, so an upgrade rewrites nothing.
_RISK_FIELDS_FROM = SIGNAL_CONTENT_FIELDS.index("leverage")


def _hash_parts(parts: tuple) -> str:
    """:func:`content_hash` of the content values in :data:`SIGNAL_CONTENT_FIELDS` order."""
    if all(v is None for v in parts[_RISK_FIELDS_FROM:]):
        parts = parts[:_RISK_FIELDS_FROM]
    if parts[_VALID_UNTIL] is not None or parts[_EXTRA] is not None:
        parts = tuple(
            _canonical(v) if isinstance(v, datetime)
            else json.dumps(v, sort_keys=True, default=_canonical) if isinstance(v, dict)
            else v
            for v in parts)
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def content_hash(content: Mapping[str, Any]) -> str:
    """A stable hash of the content fields of a normalised record.

    Field order is fixed by :data:`SIGNAL_CONTENT_FIELDS`; datetimes count as
    UTC ISO strings, floats by ``repr`` (exact), ``extra`` with sorted keys.
    """
    return _hash_parts(tuple(content.get(name) for name in SIGNAL_CONTENT_FIELDS))


@dataclass(slots=True)
class _Doc:
    """One valid normalised record on its way to the store."""

    index: Any  # position in the caller's input
    ident: tuple  # key values in SIGNAL_KEY order
    record: Mapping[str, Any]  # key + content fields
    content_hash: str
    version: int

    @classmethod
    def of(cls, record: Mapping[str, Any], index: Any) -> _Doc:
        content = _content_of(record)
        return cls(index, record_key(record), record, _hash_parts(content), int(content[_VERSION]))

    def key(self) -> dict[str, Any]:
        return dict(zip(SIGNAL_KEY, self.ident, strict=True))

    def describe(self) -> str:
        k = self.key()
        return (f"strategy_id={k['strategy_id']!r} pair={k['pair']!r} "
                f"timeframe={k['timeframe']!r} ts={k['ts'].isoformat()}")

    def insert(self, run_id: str, now: datetime) -> UpdateOne:
        """The whole document for a key not stored yet, ``available_at`` from the server clock.

        An upsert whose filter can never match a stored document (every document has an
        ``_id``): it inserts, or answers E11000 from the unique key index if another writer
        stored the key in between - like ``InsertOne``, which cannot take the server clock.
        """
        doc = {name: value for name, value in self.record.items() if value is not None}
        doc.update({CONTENT_HASH_FIELD: self.content_hash, CREATED_AT_FIELD: now,
                    UPDATED_AT_FIELD: now, RUN_ID_FIELD: run_id, CREATED_RUN_ID_FIELD: run_id})
        return UpdateOne({**self.key(), "_id": {"$exists": False}},
                         {"$setOnInsert": doc, "$currentDate": _AVAILABLE_NOW}, upsert=True)

    def update(self, run_id: str, now: datetime, stored_hash: str | None) -> UpdateOne:
        """New content for a stored key, only if it still holds the version read (and archived)
        as ``stored_hash``; cleared fields unset; ``available_at`` from the server clock."""
        flt = {**self.key(), CONTENT_HASH_FIELD: stored_hash}
        content = {name: self.record.get(name) for name in SIGNAL_CONTENT_FIELDS}
        new = {name: value for name, value in content.items() if value is not None}
        new.update({CONTENT_HASH_FIELD: self.content_hash, UPDATED_AT_FIELD: now,
                    RUN_ID_FIELD: run_id})
        update: dict[str, Any] = {"$set": new, "$currentDate": _AVAILABLE_NOW}
        cleared = {name: "" for name, value in content.items() if value is None}
        if cleared:
            update["$unset"] = cleared
        return UpdateOne(flt, update)


#: ``$currentDate`` of the knowledge time: the server's clock, never the producer's.
_AVAILABLE_NOW = {AVAILABLE_AT_FIELD: True}


def _archive(stored: Mapping[str, Any]) -> UpdateOne:
    """Append ``stored`` (a version about to be replaced) to the history collection.

    Same key, version and content hash plus ``superseded_at`` from the server clock. The
    filter never matches an entry (each has ``superseded_at``), so this inserts, or answers
    E11000 from the history's unique index when the entry exists (a retry): append-only.
    """
    entry = {name: value for name, value in stored.items() if name != "_id"}
    flt = {**{name: stored.get(name) for name in SIGNAL_KEY},
           "version": stored.get("version"), CONTENT_HASH_FIELD: stored.get(CONTENT_HASH_FIELD),
           SUPERSEDED_AT_FIELD: {"$exists": False}}
    return UpdateOne(flt, {"$setOnInsert": entry, "$currentDate": {SUPERSEDED_AT_FIELD: True}},
                     upsert=True)


_batch_order = operator.itemgetter("strategy_id", "timeframe", "ts", "pair")


def _in_batch_order(records: Sequence[Mapping[str, Any]]) -> list[int]:
    """Positions of ``records`` per strategy and timeframe, time first, then pair.

    So a batch is a time window across pairs: the newest bar of every pair in
    one batch (one read), a long history in consecutive windows.
    """
    keys = list(map(_batch_order, records))
    return sorted(range(len(keys)), key=keys.__getitem__)


# --- the stored state -------------------------------------------------------

#: The key fields that vary inside one read (strategy_id and timeframe are the read's own),
#: version and hash: all a batch's first read needs (nothing of this run is stored yet).
_STORED_PROJECTION = {"_id": 0, "pair": 1, "ts": 1, "version": 1, CONTENT_HASH_FIELD: 1}
#: Re-reads (a retried attempt, a write race) also tell this run's own writes apart.
_RESTORED_PROJECTION = {**_STORED_PROJECTION, RUN_ID_FIELD: 1, CREATED_RUN_ID_FIELD: 1}
_AWARE_UTC = CodecOptions(tz_aware=True, tzinfo=UTC)


def _read_stored(coll: Collection, batch: Sequence[_Doc],
                 projection: Mapping[str, int] = _RESTORED_PROJECTION
                 ) -> dict[tuple, dict[str, Any]]:
    """Stored version/hash (and run ids) for the batch's keys, by ``ident``.

    One indexed read per (strategy_id, timeframe) in the batch, usually one:
    equality / ``$in`` over the batch's pairs on the unique index's prefix,
    then the batch's ``ts`` range (one key range per pair in the index, tight
    because a batch is a time window). ``ts`` is read tz-aware so it compares
    equal to the batch's own ``ts``.
    """
    groups: dict[tuple[str, str], list[tuple]] = {}
    for d in batch:
        groups.setdefault((d.ident[_STRATEGY], d.ident[_TIMEFRAME]), []).append(d.ident)
    coll = coll.with_options(codec_options=_AWARE_UTC)
    out: dict[tuple, dict[str, Any]] = {}
    for (strategy_id, timeframe), idents in groups.items():
        pairs = sorted({ident[_PAIR] for ident in idents})
        stamps = [ident[_TS] for ident in idents]
        flt = {"strategy_id": strategy_id,
               "pair": pairs[0] if len(pairs) == 1 else {"$in": pairs},
               "timeframe": timeframe, "ts": {"$gte": min(stamps), "$lte": max(stamps)}}
        for doc in coll.find(flt, projection, batch_size=len(idents) + 1):
            doc["strategy_id"], doc["timeframe"] = strategy_id, timeframe
            out[record_key(doc)] = doc
    return out


# --- one batch --------------------------------------------------------------


def _archive_superseded(coll: Collection, history: Collection, changes: list[_Doc],
                        counts: ExportResult) -> tuple[list[_Doc], dict[tuple, Any], list[_Doc]]:
    """Copy the stored versions ``changes`` will replace into ``history``, before the replace.

    Reads the whole stored documents (one read per batch, only when something changes)
    and writes them with :func:`_archive` (one unordered ``bulk_write``; an entry that is
    already there - a retry - answers E11000 and counts as archived). Returns
    ``(ready, stored_hashes, again)``: the changes whose stored version is archived, with
    the content hash each replace must still find, and those whose stored document moved
    since the batch's first read (classified again). A change whose archive write failed
    otherwise is counted failed and not replaced: a version is never lost.
    """
    full = _read_stored(coll, changes, {"_id": 0})
    ready: list[_Doc] = []
    again: list[_Doc] = []
    for d in changes:
        s = full.get(d.ident)
        if (s is None or s.get(CONTENT_HASH_FIELD) == d.content_hash
                or int(s.get("version") or 1) > d.version):
            again.append(d)
        else:
            ready.append(d)
    if not ready:
        return ready, {}, again
    try:
        reply = history.bulk_write([_archive(full[d.ident]) for d in ready],
                                   ordered=False).bulk_api_result
    except BulkWriteError as exc:
        reply = exc.details
    concern = reply.get("writeConcernErrors")
    if concern:  # before counting: the retry archives (and counts) these changes again
        first = concern[0]
        raise WriteConcernError(first.get("errmsg", "write concern error"), first.get("code"),
                                first)
    failed = {err["index"]: err for err in reply.get("writeErrors", [])
              if err.get("code") != DUPLICATE_KEY}
    for i, err in sorted(failed.items()):
        d = ready[i]
        counts.failed += 1
        counts.errors.append(SignalError(d.index, d.describe(), "write",
                                         f"history {err.get('code')}: {err.get('errmsg')}"))
    ready = [d for i, d in enumerate(ready) if i not in failed]
    return ready, {d.ident: full[d.ident].get(CONTENT_HASH_FIELD) for d in ready}, again


def _write_batch(coll: Collection, pending: list[_Doc], run_id: str,
                 counts: ExportResult, first_attempt: bool = False,
                 history: Collection | None = None) -> None:
    """Classify ``pending`` against what is stored, archive what a change replaces, write
    what changed, count.

    ``pending`` shrinks in place as documents are accounted for, with no I/O
    between counting and shrinking: a retry after a transient error never
    counts a document twice. Only a new run's first attempt skips the run ids
    in its first read (none of its writes can be stored before its first write);
    a run id given by the caller may resume a run that stored some already.
    ``history``: where replaced versions go (default: :func:`history_collection_name`
    of ``coll`` in its database).
    """
    if history is None:
        history = coll.database[history_collection_name(coll.name)]
    for round_ in range(MAX_ROUNDS):
        if not pending:
            return
        stored = _read_stored(coll, pending, _STORED_PROJECTION if first_attempt and round_ == 0
                              else _RESTORED_PROJECTION)
        inserts: list[_Doc] = []
        changes: list[_Doc] = []
        for d in pending:
            s = stored.get(d.ident)
            if s is None:
                inserts.append(d)
            elif s.get(CONTENT_HASH_FIELD) == d.content_hash:
                if s.get(RUN_ID_FIELD) == run_id:  # stored by this run; the ack was lost
                    if s.get(CREATED_RUN_ID_FIELD) == run_id:
                        counts.inserted += 1
                    else:
                        counts.updated += 1
                else:
                    counts.unchanged += 1
            elif int(s.get("version") or 1) > d.version:
                counts.stale_version += 1
            else:
                changes.append(d)
        pending[:] = inserts + changes
        if not pending:
            return
        moved: list[_Doc] = []
        hashes: dict[tuple, Any] = {}
        if changes:  # the history entry first: a crash before the replace loses nothing
            changes, hashes, moved = _archive_superseded(coll, history, changes, counts)
            pending[:] = inserts + changes + moved
        to_write = inserts + changes
        if not to_write:
            continue
        now = datetime.now(UTC)
        ops = ([d.insert(run_id, now) for d in inserts]
               + [d.update(run_id, now, hashes[d.ident]) for d in changes])
        try:
            reply = coll.bulk_write(ops, ordered=False).bulk_api_result
        except BulkWriteError as exc:
            reply = exc.details
        errors = {err["index"]: err for err in reply.get("writeErrors", [])}
        n_inserts = len(inserts)
        counts.inserted += n_inserts - sum(1 for i in errors if i < n_inserts)
        again: list[_Doc] = list(moved)
        n_modified = int(reply.get("nModified", 0))
        if n_modified == len(changes) - sum(1 for i in errors if i >= n_inserts):
            counts.updated += n_modified
        else:  # some guarded updates did not match: read them again (ours are recognised)
            again.extend(d for i, d in enumerate(changes, start=n_inserts) if i not in errors)
        for i, err in sorted(errors.items()):
            d = to_write[i]
            if err.get("code") == DUPLICATE_KEY:
                again.append(d)  # someone stored the key in between: classify again
            else:
                counts.failed += 1
                counts.errors.append(SignalError(d.index, d.describe(), "write",
                                                 f"{err.get('code')}: {err.get('errmsg')}"))
        pending[:] = again
        concern = reply.get("writeConcernErrors")
        if concern:  # written on the primary, but not acknowledged as asked
            first = concern[0]
            raise WriteConcernError(first.get("errmsg", "write concern error"),
                                    first.get("code"), first)
    for d in pending:
        counts.failed += 1
        counts.errors.append(SignalError(d.index, d.describe(), "write",
                                         "kept conflicting with concurrent writers; not stored"))
    pending.clear()


# --- the audit record -------------------------------------------------------


@dataclass(frozen=True)
class _RunScope:
    """What an export run covers, for its audit record (computed once per run)."""

    strategy_ids: list[str]
    versions: list[int]
    timeframes: list[str]
    latest: Mapping[str, Any] | None
    first_ts: datetime | None

    @classmethod
    def of(cls, docs: Sequence[Mapping[str, Any]]) -> _RunScope:
        def values(name: str) -> list:
            return sorted(set(map(operator.itemgetter(name), docs)))

        stamps = values("ts")
        return cls(values("strategy_id"), values("version"), values("timeframe"),
                   max(docs, key=operator.itemgetter("ts")) if docs else None,
                   stamps[0] if stamps else None)

    def written_by(self, coll: Collection, run_id: str) -> tuple[int, int]:
        """(inserted, updated) documents of this scope that ``run_id`` wrote, as stored.

        The truth after an interruption, when a reply may have been lost between
        the server applying a write and this process counting it.
        """
        if self.latest is None:
            return 0, 0
        flt = {"strategy_id": {"$in": self.strategy_ids}, "timeframe": {"$in": self.timeframes},
               "ts": {"$gte": self.first_ts, "$lte": self.latest["ts"]}, RUN_ID_FIELD: run_id}
        mine = coll.count_documents(flt, maxTimeMS=30_000)
        inserted = coll.count_documents({**flt, CREATED_RUN_ID_FIELD: run_id}, maxTimeMS=30_000)
        return inserted, mine - inserted


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


# --- the run ----------------------------------------------------------------


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
    history_collection: Collection | None = None,
) -> ExportResult:
    """Validate and store signals: good rows stored, rejected ones reported in ``result.errors``.

    ``align="ceil"`` moves an off-grid ``ts`` up to the next bar open (the candle
    the strategy acts on anyway) instead of rejecting it. ``on_batch(n, result)``
    is called after each stored batch, in batch order (progress, tests). Up to
    ``writers`` batches are in flight at once (see :func:`_write_batches`). Raises
    :class:`ExportError` if MongoDB stays unreachable. ``history_collection``: where the
    versions a change replaces are kept (default ``<collection>_history`` next to it).
    """
    if batch_size <= 0 or writers <= 0:
        raise ValueError(f"batch_size and writers must be > 0, got {batch_size}, {writers}")
    result = ExportResult(run_id=run_id or str(uuid.uuid4()), started_at=datetime.now(UTC))
    new_run = run_id is None  # a given run id may resume a run that already stored some
    t0 = time.perf_counter()
    validated = validate_batch(data, align=align, now=now, exchange=exchange, quotes=quotes)
    records, indices = validated.records, validated.indices
    order = _in_batch_order(records)
    scope = _RunScope.of(records)
    result.rejected = len(validated.rejected_indices)
    result.submitted = len(records) + result.rejected
    result.errors.extend(validated.errors)

    started = runs_collection is not None and len(order) > batch_size

    def write_record(record: dict[str, Any]) -> None:
        if not started:
            try:  # the usual one-batch run: its only audit write
                runs_collection.insert_one(dict(record))  # (insert_one adds an _id)
                return
            except DuplicateKeyError:  # a retry after a lost acknowledgement, or a reused id
                pass
        runs_collection.update_one({"run_id": result.run_id}, {"$set": record}, upsert=True)

    def audit() -> None:
        if runs_collection is None:
            return
        record = _audit_record(result, scope, collection, align, audit_extra)
        try:
            result.retried(lambda: write_record(record),
                           RetryPolicy(max_retries=2, base_s=retry.base_s), "audit record", sleep)
        except PyMongoError as exc:
            log.error("could not write the audit record of export %s: %s", result.run_id, exc,
                      extra={"run_id": result.run_id})

    try:
        if started:  # a long run is visible as "running" until it ends
            start = _audit_record(result, scope, collection, align, audit_extra)
            result.retried(lambda: runs_collection.update_one(
                {"run_id": result.run_id}, {"$setOnInsert": start}, upsert=True), retry,
                "audit start", sleep)
        batches = [order[first:first + batch_size] for first in range(0, len(order), batch_size)]

        def write(number: int, positions: list[int]) -> tuple[ExportResult, Exception | None]:
            part = ExportResult(run_id=result.run_id)
            pending = [_Doc.of(records[i], indices[i]) for i in positions]
            try:
                part.retried(lambda: _write_batch(collection, pending, result.run_id, part,
                                                  first_attempt=new_run and part.retries == 0,
                                                  history=history_collection),
                             retry, f"batch {number}", sleep)
            except PyMongoError as exc:
                return part, exc
            return part, None

        _write_batches(batches, write, result, writers, on_batch)
    except PyMongoError as exc:
        _finish(result, t0, "failed")
        audit()
        raise ExportError(
            f"export {result.run_id} failed after {result.retries} retries "
            f"({type(exc).__name__}: {exc}); stored so far: {result.summary()}", result
        ) from exc
    except BaseException:  # Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the CLI
        try:
            result.inserted, result.updated = scope.written_by(collection, result.run_id)
        except PyMongoError as exc:
            log.error("export %s interrupted; could not recount what it stored: %s",
                      result.run_id, exc, extra={"run_id": result.run_id})
        _finish(result, t0, "interrupted")
        audit()
        log.warning("export %s interrupted: %s", result.run_id, result.summary(),
                    extra={"run_id": result.run_id, **result.counts()})
        raise
    _finish(result, t0, "ok" if not result.errors else "partial")
    audit()
    log.info("export %s %s: %s", result.run_id, result.status, result.summary(),
             extra={"run_id": result.run_id, **result.counts()})
    return result


def _write_batches(batches: list[list[int]],
                   write: Callable[[int, list[int]], tuple[ExportResult, Exception | None]],
                   result: ExportResult, writers: int,
                   on_batch: Callable[[int, ExportResult], None] | None) -> None:
    """Run ``write`` for every batch, up to ``writers`` at once, and merge in batch order.

    Why more than one at once: while one batch waits for the server, the next is
    hashed, classified and encoded, so client and server work overlap instead of
    taking turns (batches hold disjoint keys, so they cannot race each other).
    A run of one batch (a live bar, an ingest request) runs inline. After a
    failed batch no new one starts; those in flight finish and are counted, then
    the first error is raised.
    """
    pool = ThreadPoolExecutor(writers, "signal-export") if len(batches) > 1 < writers else None
    in_flight: deque[Future] = deque()
    todo = iter(enumerate(batches, start=1))
    failure: Exception | None = None
    try:
        while True:
            while failure is None and len(in_flight) < writers:
                job = next(todo, None)
                if job is None:
                    break
                if pool is None:
                    in_flight.append(Future())
                    in_flight[-1].set_result(write(*job))
                else:
                    in_flight.append(pool.submit(write, *job))
            if not in_flight:
                break
            part, error = in_flight.popleft().result()
            result.merge(part)
            if error is not None:
                failure = failure or error
                continue
            result.batches += 1
            if on_batch is not None and failure is None:
                on_batch(result.batches, result)
    except BaseException:  # interrupted: let the batches at the server finish, count them
        for future in in_flight:
            result.merge(future.result()[0])
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    if failure is not None:
        raise failure


def _finish(result: ExportResult, t0: float, status: str) -> None:
    result.status = status
    result.finished_at = datetime.now(UTC)
    result.latency_ms = round((time.perf_counter() - t0) * 1000, 3)


def result_as_dict(result: ExportResult) -> dict[str, Any]:
    """JSON-friendly form of a result (errors as dicts)."""
    out = asdict(result)
    out["errors"] = [e.as_dict() for e in result.errors]
    return out
