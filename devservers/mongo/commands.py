"""MongoDB database commands of the local dev server, with mongod's reply shapes.

Each ``cmd_<name>`` method takes the database name and the decoded command
document and returns the reply document (``ok`` included) or raises
:class:`MongoError`. Writes run in one SQLite transaction per command and are
committed before the reply. Upserts whose filter is an equality on every field
of a unique index take a direct indexed lookup (the bulk-export fast path).
Every ``cmd_*`` handler first refuses server-side code (``$where``,
``$function``, ``$accumulator``) anywhere in its command (:mod:`safety`).
Authentication, authorization and the wire protocol live elsewhere
(:mod:`auth`, :mod:`server`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import bson
from bson import ObjectId
from bson.raw_bson import RawBSONDocument

from devservers.mongo import keys, queries, safety, updates
from devservers.mongo.errors import MongoError
from devservers.mongo.storage import DECODE_OPTS, CollectionMeta, Storage

MAX_BSON_SIZE = 16 * 1024 * 1024
BATCH_BYTES = 16 * 1024 * 1024 - 64 * 1024
SERVER_VERSION = "7.0.0"
CURSOR_TIMEOUT_S = 600.0
_UNSET = object()


@dataclass
class Cursor:
    """Results of a find/aggregate not yet returned to the client."""

    ns: str
    docs: list
    pos: int = 0
    created: float = field(default_factory=time.monotonic)


def _decode(raw: bytes) -> dict:
    return bson.decode(raw, DECODE_OPTS)


def _decode_rows(rows: list[tuple[int, bytes, dict | None]]) -> list[dict]:
    """Decoded documents of ``rows``; the undecoded ones in one ``decode_all`` call."""
    if all(doc is None for _, _, doc in rows):
        return bson.decode_all(b"".join([raw for _, raw, _ in rows]), DECODE_OPTS)
    return [doc if doc is not None else _decode(raw) for _, raw, doc in rows]


class _ObjectIdBlock:
    """ObjectIds for a whole insert at once (a quarter of the cost of ``ObjectId()`` each).

    Same layout as ``ObjectId()``: 4-byte seconds, 5 random bytes, 3-byte counter.
    The random part is this server's own, so ids never collide with those bson
    makes in this process; the counter is shared by all connections.
    """

    def __init__(self) -> None:
        self._random = os.urandom(5)
        self._counter = int.from_bytes(os.urandom(3), "big")
        self._lock = threading.Lock()

    def __call__(self, n: int) -> list[ObjectId]:
        if n == 0:
            return []
        with self._lock:
            start = self._counter
            self._counter = (start + n) & 0xFFFFFF
        prefix = _UINT32_BE(int(time.time()) & 0xFFFFFFFF) + self._random
        return [ObjectId(prefix + ((start + i) & 0xFFFFFF).to_bytes(3, "big")) for i in range(n)]


_UINT32_BE = struct.Struct(">I").pack
_new_object_ids = _ObjectIdBlock()


def _with_id(raw: bytes | None, oid: ObjectId) -> bytes | None:
    """``raw`` (one BSON document) with ``_id: oid`` as its first field."""
    if raw is None:
        return None
    return _INT32_PACK(len(raw) + _ID_ELEMENT_SIZE) + b"\x07_id\x00" + oid.binary + raw[4:]


_INT32_PACK = struct.Struct("<i").pack
_ID_ELEMENT_SIZE = 1 + 4 + 12  # type byte, "_id\0", ObjectId


def _doc_size(doc: Any) -> int:
    if isinstance(doc, RawBSONDocument):
        return len(doc.raw)
    return len(bson.encode(doc))


class CommandHandler:
    """Runs database commands against one :class:`Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.cursors: dict[int, Cursor] = {}
        self._cursor_ids = itertools.count(int(time.time()) % 100000 * 1000000 + 1)
        self._cursor_lock = threading.Lock()
        self._started = time.monotonic()

    # ------------------------------------------------------------------ dispatch
    def command_for(self, name: str) -> Callable[[str, dict], dict] | None:
        return getattr(self, "cmd_" + name.lower(), None)

    # ------------------------------------------------------------------ basics
    def cmd_ping(self, db: str, cmd: dict) -> dict:
        return {"ok": 1.0}

    def cmd_buildinfo(self, db: str, cmd: dict) -> dict:
        return {
            "version": SERVER_VERSION,
            "gitVersion": "local-mongod-devserver",
            "versionArray": [7, 0, 0, 0],
            "bits": 64,
            "debug": False,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "storageEngines": ["sqlite-devserver"],
            "modules": [],
            "ok": 1.0,
        }

    def cmd_endsessions(self, db: str, cmd: dict) -> dict:
        return {"ok": 1.0}

    def cmd_killallsessions(self, db: str, cmd: dict) -> dict:
        return {"ok": 1.0}

    def cmd_serverstatus(self, db: str, cmd: dict) -> dict:
        import os
        from datetime import UTC
        from datetime import datetime as dt

        return {"host": "local-mongod", "version": SERVER_VERSION, "process": "local-mongod",
                "pid": bson.Int64(os.getpid()), "uptime": time.monotonic() - self._started,
                "localTime": dt.now(UTC), "storageEngine": {"name": "sqlite-devserver"},
                "metrics": {"cursor": {"open": {"total": len(self.cursors)}},
                            "queryExecutor": self._query_metrics(),
                            "operation": self._operation_metrics()},
                "globalLock": self._lock_metrics(), "ok": 1.0}

    def _lock_metrics(self) -> dict:
        """Running / queued operations in mongod's ``globalLock`` shape."""
        act = self.storage.activity()
        return {"activeClients": {"total": act["readers"] + act["writers"],
                                  "readers": act["readers"], "writers": act["writers"]},
                "currentQueue": {"total": act["queued_writers"], "readers": 0,
                                 "writers": act["queued_writers"]}}

    def _operation_metrics(self) -> dict:
        stats = self.storage.stats
        return {"killedDueToMaxTimeMSExpired": bson.Int64(stats["killed_max_time"]),
                "killedDueToClientDisconnect": bson.Int64(stats["killed_client_disconnect"]),
                "killedAtShutdown": bson.Int64(stats["killed_shutdown"])}

    def _query_metrics(self) -> dict:
        """mongod's ``metrics.queryExecutor.collectionScans`` plus this server's counters."""
        stats = self.storage.stats
        return {"collectionScans": {"total": bson.Int64(stats["collection_scans"]),
                                    "nonTailable": bson.Int64(stats["collection_scans"])},
                "scannedObjects": bson.Int64(stats["docs_examined"]),
                "indexReads": bson.Int64(stats["index_reads"]),
                "rangeJoins": bson.Int64(stats["range_joins"]),
                "interrupted": bson.Int64(stats["interrupted"])}

    def cmd_getparameter(self, db: str, cmd: dict) -> dict:
        return {"featureCompatibilityVersion": {"version": "7.0"}, "ok": 1.0}

    def cmd_getcmdlineopts(self, db: str, cmd: dict) -> dict:
        return {"argv": ["local-mongod"], "parsed": {}, "ok": 1.0}

    # ------------------------------------------------------------------ helpers
    def _coll_name(self, cmd: dict, name: str) -> str:
        value = cmd.get(name)
        if not isinstance(value, str) or not value:
            raise MongoError(73, "InvalidNamespace", f"collection name has invalid type "
                             f"{type(value).__name__}")
        return value

    def _coll(self, db: str, cmd: dict, key: str) -> CollectionMeta | None:
        return self.storage.get(db, self._coll_name(cmd, key))

    def _new_cursor(self, ns: str, docs: list, first_batch_size: int | None,
                    single_batch: bool = False) -> dict:
        batch, rest = _take_batch(docs, 0, 101 if first_batch_size is None else first_batch_size)
        cursor_id = 0
        if rest < len(docs) and not single_batch:
            with self._cursor_lock:
                self._expire_cursors()
                cursor_id = next(self._cursor_ids)
                self.cursors[cursor_id] = Cursor(ns, docs, rest)
        return {"cursor": {"firstBatch": batch, "id": bson.Int64(cursor_id), "ns": ns},
                "ok": 1.0}

    def _expire_cursors(self) -> None:
        """Drop cursors idle longer than mongod's default cursorTimeoutMillis (10 min)."""
        cutoff = time.monotonic() - CURSOR_TIMEOUT_S
        for cid in [cid for cid, c in self.cursors.items() if c.created < cutoff]:
            del self.cursors[cid]

    def _select(self, meta: CollectionMeta, query: Mapping, sort=None, skip: int = 0,
                limit: int = 0) -> list[tuple[int, bytes, dict | None]]:
        """Matching rows as (rid, raw, decoded-or-None), sorted, skipped and limited."""
        sort = sort or []
        want = skip + limit if limit else None
        # One read snapshot; the scan checks the operation's maxTimeMS / client between
        # chunks of rows and is closed before the snapshot ends.
        with self.storage.read():
            plan = self.storage.plan(meta, query, sort)
            presorted = bool(plan.order_by) or not sort
            sql_limit = want if (plan.exact and presorted and want) else None
            out: list[tuple[int, bytes, dict | None]] = []
            with contextlib.closing(self.storage.scan(meta, plan, sql_limit)) as rows:
                for rid, raw in rows:
                    if plan.exact:
                        out.append((rid, raw, None))
                    else:
                        doc = _decode(raw)
                        if queries.matches(query, doc):
                            out.append((rid, raw, doc))
                    if presorted and want is not None and len(out) >= want:
                        break
        if not presorted:
            self.storage.check()
            out = queries.sort_docs(
                out, sort, decode=lambda r: r[2] if r[2] is not None else _decode(r[1])
            )
        if skip:
            out = out[skip:]
        if limit:
            out = out[:limit]
        return out

    # ------------------------------------------------------------------ writes
    def cmd_insert(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "insert")
        docs = cmd.get("documents") or []
        ordered = cmd.get("ordered", True)
        n = 0
        errors: list[dict] = []
        chunk = 1000
        with self.storage.transaction():
            meta, _ = self.storage.create_collection(db, name)
            # The client's bytes of each document (see server.py); where the server adds the
            # _id (first field, as mongod does), it is spliced into those bytes.
            sent = getattr(docs, "raws", None) or [None] * len(docs)
            raws = list(sent)
            docs = list(docs)
            missing = [i for i, doc in enumerate(docs) if "_id" not in doc]
            for i, oid in zip(missing, _new_object_ids(len(missing)), strict=True):
                if raws[i] is None:
                    docs[i] = {"_id": oid, **docs[i]}
                else:  # the bytes are what is stored; the dict only gives the index keys
                    docs[i]["_id"] = oid
                    raws[i] = _with_id(raws[i], oid)
            for start in range(0, len(docs), chunk):
                part = docs[start:start + chunk]
                if len(part) > 1 and self.storage.insert_many_fast(
                        meta, part, raws[start:start + chunk]):
                    n += len(part)
                    continue
                stop = False
                for i, doc in enumerate(part, start):
                    try:
                        self.storage.insert_doc(meta, doc, raw=raws[i])
                        n += 1
                    except MongoError as exc:
                        errors.append(exc.to_write_error(i))
                        if ordered:
                            stop = True
                            break
                if stop:
                    break
        reply: dict[str, Any] = {"n": n}
        if errors:
            reply["writeErrors"] = errors
        reply["ok"] = 1.0
        return reply

    def cmd_update(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "update")
        statements = cmd.get("updates") or []
        ordered = cmd.get("ordered", True)
        n = n_modified = 0
        upserted: list[dict] = []
        errors: list[dict] = []
        with self.storage.transaction():
            meta = self.storage.get(db, name)
            for i, stmt in enumerate(statements):
                try:
                    matched, modified, upserted_id = self._update_one_statement(
                        db, name, meta, stmt)
                except MongoError as exc:
                    errors.append(exc.to_write_error(i))
                    if ordered:
                        break
                    continue
                if upserted_id is not keys.MISSING:
                    upserted.append({"index": i, "_id": upserted_id})
                    n += 1
                    meta = self.storage.get(db, name)
                else:
                    n += matched
                    n_modified += modified
        reply: dict[str, Any] = {"n": n, "nModified": n_modified}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        reply["ok"] = 1.0
        return reply

    def _update_one_statement(self, db: str, name: str, meta: CollectionMeta | None,
                              stmt: Mapping) -> tuple[int, int, Any]:
        query = stmt.get("q") or {}
        update = stmt.get("u")
        multi = bool(stmt.get("multi"))
        upsert = bool(stmt.get("upsert"))
        updates.validate_update(update)
        if multi and not updates.is_operator_update(update):
            raise MongoError(9, "FailedToParse", "multi update is not supported for "
                             "replacement-style update")
        matched = modified = 0
        point = None
        rest = _without_absent_id(query)
        if rest is not None:  # matches no stored document: an insert unless the key exists
            query = rest
            if meta is not None and not stmt.get("sort"):
                point = _unique_point(meta, query)
        elif meta is not None:
            point = _unique_point(meta, query) if not stmt.get("sort") else None
            rows = self._matching_rows(meta, query, multi, stmt.get("sort"), point)
            for rid, raw, doc in rows:
                matched += 1
                old = doc if doc is not None else _decode(raw)
                if updates.is_noop_set(old, update):
                    continue
                new = updates.apply_update(old, update, is_insert=False, in_place=True)
                new_raw = bson.encode(new)
                if new_raw != raw:
                    if len(new_raw) > MAX_BSON_SIZE:
                        raise MongoError(17419, "Location17419", "Resulting document after "
                                         f"update is larger than {MAX_BSON_SIZE}")
                    self.storage.replace_row(meta, rid, new, new_raw)
                    modified += 1
        if matched or not upsert:
            return matched, modified, keys.MISSING
        seed = updates.upsert_seed(query)
        new = updates.apply_update(seed, update, is_insert=True, in_place=True)
        if "_id" not in new:
            new = {"_id": ObjectId(), **new}
        if meta is None:
            meta, _ = self.storage.create_collection(db, name)
        known = None
        if point is not None and updates.is_operator_update(update):
            touched = {path.split(".", 1)[0] for spec in update.values() for path in spec}
            if touched.isdisjoint(point[0].fields):
                known = (point[0].column, point[1])  # the seed's key fields are the filter's
        self.storage.insert_doc(meta, new, known)
        return 0, 0, new["_id"]

    def _matching_rows(self, meta: CollectionMeta, query: Mapping, multi: bool, sort=None,
                       point: Any = _UNSET):
        """Rows an update/delete applies to; a point lookup when the filter is a unique key."""
        fast = _unique_point(meta, query) if point is _UNSET else point
        if fast is not None and not sort:
            index, key = fast
            row = self.storage.lookup_unique(meta, index, key)
            if row is not None:
                yield row[0], row[1], None
            return
        rows = self._select(meta, query, queries.parse_sort(sort), limit=0 if multi else 1)
        yield from rows

    def cmd_delete(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "delete")
        statements = cmd.get("deletes") or []
        n = 0
        with self.storage.transaction():
            meta = self.storage.get(db, name)
            if meta is not None:
                for stmt in statements:
                    limit = int(stmt.get("limit", 0))
                    rows = list(self._matching_rows(meta, stmt.get("q") or {}, limit != 1))
                    n += self.storage.delete_rows(meta, [r[0] for r in rows])
        return {"n": n, "ok": 1.0}

    def cmd_findandmodify(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "findAndModify")
        query = cmd.get("query") or {}
        remove = bool(cmd.get("remove"))
        update = cmd.get("update")
        if not remove:
            updates.validate_update(update)
        with self.storage.transaction():
            meta = self.storage.get(db, name)
            rows = []
            if meta is not None:
                rows = list(self._matching_rows(meta, query, False, cmd.get("sort")))
            last: dict[str, Any] = {"n": 0}
            value = None
            if rows:
                rid, raw, doc = rows[0]
                old = doc if doc is not None else _decode(raw)
                last["n"] = 1
                if remove:
                    self.storage.delete_rows(meta, [rid])
                    value = old
                else:
                    new = updates.apply_update(_decode(raw), update, is_insert=False)
                    new_raw = bson.encode(new)
                    if new_raw != raw:
                        self.storage.replace_row(meta, rid, new, new_raw)
                    last["updatedExisting"] = True
                    value = new if cmd.get("new") else old
            elif cmd.get("upsert") and not remove:
                new = updates.apply_update(updates.upsert_seed(query), update, is_insert=True)
                if "_id" not in new:
                    new = {"_id": ObjectId(), **new}
                if meta is None:
                    meta, _ = self.storage.create_collection(db, name)
                self.storage.insert_doc(meta, new)
                last = {"n": 1, "updatedExisting": False, "upserted": new["_id"]}
                value = new if cmd.get("new") else None
            elif not remove:
                last["updatedExisting"] = False
        if value is not None and cmd.get("fields"):
            value = queries.project(value, cmd["fields"])
        return {"lastErrorObject": last, "value": value, "ok": 1.0}

    # ------------------------------------------------------------------ reads
    def cmd_find(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "find")
        ns = f"{db}.{name}"
        meta = self.storage.get(db, name)
        limit = int(cmd.get("limit") or 0)
        skip = int(cmd.get("skip") or 0)
        if limit < 0 or skip < 0:
            raise MongoError(51024 if limit < 0 else 51024, "Location51024",
                             "BSON field 'limit' value must be >= 0, actual value "
                             f"'{limit}'" if limit < 0 else
                             f"BSON field 'skip' value must be >= 0, actual value '{skip}'")
        if meta is None:
            return self._new_cursor(ns, [], cmd.get("batchSize"))
        sort = queries.parse_sort(cmd.get("sort"))
        rows = self._select(meta, cmd.get("filter") or {}, sort, skip, limit)
        projection = cmd.get("projection")
        if projection:
            apply = queries.projector(projection)
            # Encoded once here: batching reads their size, the reply copies the bytes.
            encode = bson.encode
            docs = [RawBSONDocument(encode(apply(doc))) for doc in _decode_rows(rows)]
        else:
            docs = [RawBSONDocument(raw) for _, raw, _ in rows]
        return self._new_cursor(ns, docs, cmd.get("batchSize"), bool(cmd.get("singleBatch")))

    def cmd_getmore(self, db: str, cmd: dict) -> dict:
        cursor_id = int(cmd.get("getMore"))
        with self._cursor_lock:
            cursor = self.cursors.get(cursor_id)
        if cursor is None:
            raise MongoError(43, "CursorNotFound", f"cursor id {cursor_id} not found")
        batch, pos = _take_batch(cursor.docs, cursor.pos, cmd.get("batchSize"))
        cursor.pos = pos
        cursor.created = time.monotonic()
        if pos >= len(cursor.docs):
            with self._cursor_lock:
                self.cursors.pop(cursor_id, None)
            cursor_id = 0
        return {"cursor": {"nextBatch": batch, "id": bson.Int64(cursor_id), "ns": cursor.ns},
                "ok": 1.0}

    def cmd_killcursors(self, db: str, cmd: dict) -> dict:
        killed, not_found = [], []
        with self._cursor_lock:
            for cid in cmd.get("cursors") or []:
                if self.cursors.pop(int(cid), None) is not None:
                    killed.append(bson.Int64(cid))
                else:
                    not_found.append(bson.Int64(cid))
        return {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [],
                "cursorsUnknown": [], "ok": 1.0}

    def cmd_count(self, db: str, cmd: dict) -> dict:
        meta = self._coll(db, cmd, "count")
        if meta is None:
            return {"n": 0, "ok": 1.0}
        query = cmd.get("query") or {}
        skip = int(cmd.get("skip") or 0)
        limit = abs(int(cmd.get("limit") or 0))
        with self.storage.lock:
            plan = self.storage.plan(meta, query)
            if plan.exact:
                n = self.storage.count_plan(meta, plan)
            else:
                n = len(self._select(meta, query))
        n = max(0, n - skip)
        if limit:
            n = min(n, limit)
        return {"n": n, "ok": 1.0}

    def cmd_distinct(self, db: str, cmd: dict) -> dict:
        meta = self._coll(db, cmd, "distinct")
        key = cmd.get("key")
        if not isinstance(key, str):
            raise MongoError(14, "TypeMismatch", "BSON field 'distinct.key' is the wrong type, "
                             "expected type 'string'")
        if meta is None:
            return {"values": [], "ok": 1.0}
        rows = self._select(meta, cmd.get("query") or {})
        docs = (doc if doc is not None else _decode(raw) for _, raw, doc in rows)
        return {"values": queries.distinct_values(docs, key), "ok": 1.0}

    def cmd_aggregate(self, db: str, cmd: dict) -> dict:
        from mongomock_ng import aggregate as mm_aggregate

        target = cmd.get("aggregate")
        pipeline = list(cmd.get("pipeline") or [])
        cursor_opts = cmd.get("cursor")
        if not isinstance(cursor_opts, Mapping):
            raise MongoError(9, "FailedToParse", "The 'cursor' option is required, except for "
                             "aggregate with the explain argument")
        if target == 1 or not isinstance(target, str):
            raise MongoError(73, "InvalidNamespace", "collection-less aggregate is not "
                             "supported by the local dev server")
        ns = f"{db}.{target}"
        meta = self.storage.get(db, target)
        for stage in pipeline:
            if not isinstance(stage, Mapping) or len(stage) != 1:
                raise MongoError(40323, "Location40323", "A pipeline stage specification "
                                 "object must contain exactly one field.")
            stage_name = next(iter(stage))
            if stage_name in ("$out", "$merge"):
                raise MongoError(9, "FailedToParse", f"{stage_name} is not supported by the "
                                 "local dev server")
        batch_size = cursor_opts.get("batchSize")
        if meta is None:
            return self._new_cursor(ns, [], batch_size)
        query: Mapping = {}
        if pipeline and "$match" in pipeline[0]:
            query = pipeline.pop(0)["$match"]
        sort_spec = None
        if pipeline and "$sort" in pipeline[0]:
            sort_spec = queries.parse_sort(pipeline[0]["$sort"])
        count_only = _count_group(pipeline)
        if count_only is not None:
            with self.storage.lock:
                plan = self.storage.plan(meta, query)
                n = (self.storage.count_plan(meta, plan) if plan.exact
                     else len(self._select(meta, query)))
            docs = [] if n == 0 else [{"_id": count_only[0], count_only[1]: n}]
            return self._new_cursor(ns, docs, batch_size)
        limit = 0
        if sort_spec is not None:
            pipeline.pop(0)
            if pipeline and "$limit" in pipeline[0]:
                limit = int(pipeline.pop(0)["$limit"])
        rows = self._select(meta, query, sort_spec, 0, limit)
        docs = [doc if doc is not None else _decode(raw) for _, raw, doc in rows]
        if pipeline:
            database = _AggDatabase(self, db)
            try:
                result = docs
                for stage in pipeline:  # one stage at a time: maxTimeMS is checked between
                    self.storage.check()
                    result = list(mm_aggregate.process_pipeline(result, database, [stage],
                                                                None))
            except MongoError:
                raise
            except NotImplementedError as exc:
                raise MongoError(9, "FailedToParse", str(exc)) from None
            except Exception as exc:
                code = getattr(exc, "code", None) or 2
                raise MongoError(int(code), "BadValue", str(exc)) from None
            docs = [_id_first(d) for d in result]
        return self._new_cursor(ns, docs, batch_size)

    # ------------------------------------------------------------------ catalog
    def cmd_create(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "create")
        options = {k: v for k, v in cmd.items() if k not in ("create", "$db", "lsid",
                                                               "$readPreference",
                                                               "$clusterTime")}
        with self.storage.transaction():
            self.storage.create_collection(db, name, options, must_not_exist=True)
        return {"ok": 1.0}

    def cmd_createindexes(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "createIndexes")
        specs = cmd.get("indexes")
        if not isinstance(specs, list) or not specs:
            raise MongoError(2, "BadValue", "Must specify at least one index to create")
        for spec in specs:
            if not isinstance(spec, Mapping) or not isinstance(spec.get("key"), Mapping) or \
                    not spec.get("key"):
                raise MongoError(9, "FailedToParse", "The 'key' field is a required property "
                                 "of an index specification")
            if not isinstance(spec.get("name"), str):
                raise MongoError(9, "FailedToParse", "The 'name' field is a required property "
                                 "of an index specification")
            for f, d in spec["key"].items():
                if d not in (1, -1, 1.0, -1.0):
                    raise MongoError(67, "CannotCreateIndex", f"Values in the index key pattern "
                                     f"can contain only 1 or -1 in the local dev server: "
                                     f"{{{f}: {d!r}}}")
            ttl = spec.get("expireAfterSeconds")
            if ttl is not None and (not isinstance(ttl, int | float) or isinstance(ttl, bool)
                                    or ttl < 0):
                raise MongoError(2, "BadValue", "TTL index 'expireAfterSeconds' option must be "
                                 f"numeric and >= 0, but received: {ttl!r}")
        with self.storage.transaction():
            meta, created_coll = self.storage.create_collection(db, name)
            before = len(meta.indexes)
            for spec in specs:
                self.storage.create_index(meta, spec)
            after = len(meta.indexes)
        reply: dict[str, Any] = {"numIndexesBefore": before, "numIndexesAfter": after,
                                 "createdCollectionAutomatically": created_coll}
        if before == after:
            reply["note"] = "all indexes already exist"
        reply["ok"] = 1.0
        return reply

    def cmd_listindexes(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "listIndexes")
        meta = self.storage.get(db, name)
        if meta is None:
            raise MongoError(26, "NamespaceNotFound", f"ns does not exist: {db}.{name}")
        docs = [ix.spec() for ix in meta.indexes]
        return self._new_cursor(f"{db}.{name}", docs, (cmd.get("cursor") or {}).get("batchSize"))

    def cmd_dropindexes(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "dropIndexes")
        target = cmd.get("index")
        with self.storage.transaction():
            meta = self.storage.get(db, name)
            if meta is None:
                raise MongoError(26, "NamespaceNotFound", f"ns not found {db}.{name}")
            was = len(meta.indexes)
            if target == "*":
                drop = [ix for ix in meta.indexes if ix.name != "_id_"]
            else:
                wanted = target if isinstance(target, list) else [target]
                drop = []
                for item in wanted:
                    if isinstance(item, Mapping):
                        found = [ix for ix in meta.indexes if ix.key == list(item.items())]
                        if not found:
                            raise MongoError(27, "IndexNotFound", "can't find index with key: "
                                             f"{dict(item)}")
                    else:
                        found = [ix for ix in meta.indexes if ix.name == item]
                        if not found:
                            raise MongoError(27, "IndexNotFound", "index not found with name "
                                             f"[{item}]")
                    if found[0].name == "_id_":
                        raise MongoError(72, "InvalidOptions", "cannot drop _id index")
                    drop.extend(found)
            for ix in drop:
                self.storage.drop_index(meta, ix)
        return {"nIndexesWas": was, "ok": 1.0}

    def cmd_deleteindexes(self, db: str, cmd: dict) -> dict:
        return self.cmd_dropindexes(db, {**cmd, "dropIndexes": cmd.get("deleteIndexes")})

    def cmd_listcollections(self, db: str, cmd: dict) -> dict:
        flt = cmd.get("filter") or {}
        docs = []
        with self.storage.lock:
            for name in self.storage.collection_names(db):
                meta = self.storage.get(db, name)
                info = {
                    "name": name,
                    "type": "collection",
                    "options": dict(meta.options) if meta else {},
                    "info": {"readOnly": False,
                             "uuid": bson.Binary(uuid.uuid5(uuid.NAMESPACE_URL, meta.ns).bytes, 4)
                             if meta else None},
                    "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
                }
                if queries.matches(flt, info):
                    docs.append({"name": name, "type": "collection"} if cmd.get("nameOnly")
                                else info)
        batch = (cmd.get("cursor") or {}).get("batchSize")
        return self._new_cursor(f"{db}.$cmd.listCollections", docs, batch)

    def cmd_listdatabases(self, db: str, cmd: dict, allowed: set[str] | None = None) -> dict:
        out = []
        total = 0
        with self.storage.lock:
            for name in self.storage.database_names():
                if allowed is not None and name not in allowed:
                    continue
                size = sum(self.storage.table_size(self.storage.get(name, c))[1]
                           for c in self.storage.collection_names(name))
                total += size
                entry = {"name": name, "sizeOnDisk": size, "empty": size == 0}
                if cmd.get("filter") and not queries.matches(cmd["filter"], entry):
                    continue
                out.append({"name": name} if cmd.get("nameOnly") else entry)
        reply: dict[str, Any] = {"databases": out}
        if not cmd.get("nameOnly"):
            reply["totalSize"] = total
            reply["totalSizeMb"] = total // (1024 * 1024)
        reply["ok"] = 1.0
        return reply

    def cmd_drop(self, db: str, cmd: dict) -> dict:
        name = self._coll_name(cmd, "drop")
        with self.storage.transaction():
            was = self.storage.drop_collection(db, name)
        if was is None:
            return {"ok": 1.0}
        return {"nIndexesWas": was, "ns": f"{db}.{name}", "ok": 1.0}

    def cmd_dropdatabase(self, db: str, cmd: dict) -> dict:
        with self.storage.transaction():
            self.storage.drop_database(db)
        return {"ok": 1.0}

    def cmd_dbstats(self, db: str, cmd: dict) -> dict:
        with self.storage.lock:
            names = self.storage.collection_names(db)
            objects = size = indexes = 0
            for name in names:
                meta = self.storage.get(db, name)
                n, s = self.storage.table_size(meta)
                objects += n
                size += s
                indexes += len(meta.indexes)
        return {"db": db, "collections": len(names), "views": 0, "objects": objects,
                "dataSize": float(size), "storageSize": float(size), "indexes": indexes,
                "ok": 1.0}

    def cmd_collstats(self, db: str, cmd: dict) -> dict:
        meta = self._coll(db, cmd, "collStats")
        if meta is None:
            raise MongoError(26, "NamespaceNotFound", f"Collection [{db}.{cmd['collStats']}] "
                             "not found.")
        with self.storage.lock:
            n, size = self.storage.table_size(meta)
        return {"ns": meta.ns, "count": n, "size": size, "nindexes": len(meta.indexes),
                "ok": 1.0}


def _refusing_server_side_code(name: str, method: Callable) -> Callable:
    """``method`` (a ``cmd_<name>`` handler) preceded by :func:`safety.check_command`."""

    @functools.wraps(method)
    def checked(self: CommandHandler, db: str, cmd: dict, *args: Any, **kwargs: Any) -> dict:
        safety.check_command(name, cmd)
        return method(self, db, cmd, *args, **kwargs)

    return checked


# The one place every filter, pipeline and update enters the engine: each command handler
# refuses server-side code ($where, $function, $accumulator, ...) anywhere in its command
# before it reads or writes anything (see safety.py for the error shapes).
for _name, _method in list(vars(CommandHandler).items()):
    if _name.startswith("cmd_") and callable(_method):
        setattr(CommandHandler, _name, _refusing_server_side_code(_name[4:], _method))


class _AggDatabase:
    """What mongomock's ``$lookup``/``$unionWith`` need: ``name`` and ``get_collection``."""

    def __init__(self, handler: CommandHandler, name: str) -> None:
        self.name = name
        self._handler = handler

    def get_collection(self, coll: str) -> SimpleNamespace:
        def find(query: Mapping | None = None) -> list[dict]:
            meta = self._handler.storage.get(self.name, coll)
            if meta is None:
                return []
            rows = self._handler._select(meta, query or {})
            return [doc if doc is not None else _decode(raw) for _, raw, doc in rows]

        return SimpleNamespace(name=coll, find=find)


def _take_batch(docs: list, start: int, size: int | None) -> tuple[list, int]:
    """Next batch from ``start``: at most ``size`` docs (0/None = no count limit), <=16 MiB."""
    end = len(docs) if not size else min(len(docs), start + int(size))
    batch = []
    total = 0
    pos = start
    while pos < end:
        doc = docs[pos]
        sz = _doc_size(doc)
        if batch and total + sz > BATCH_BYTES:
            break
        batch.append(doc)
        total += sz
        pos += 1
    return batch, pos


def _without_absent_id(query: Mapping) -> dict | None:
    """``query`` without a top-level ``_id: {$exists: false}``, when it has one, else None.

    Every stored document has an ``_id``, so such a filter matches nothing: an upsert with it
    inserts (the seed comes from the other equality fields, as in mongod) or fails with
    E11000 on a unique index - the standard insert-only upsert that can still use update
    operators such as ``$currentDate``.
    """
    clause = query.get("_id", _UNSET)
    if type(clause) is not dict or len(clause) != 1 or clause.get("$exists", True) not in (
            False, 0):
        return None
    return {k: v for k, v in query.items() if k != "_id"}


def _unique_point(meta: CollectionMeta, query: Mapping):
    """(index, key) when ``query`` is an equality on exactly all fields of a unique index."""
    if not query:
        return None
    cache_key = ("point", tuple(query))
    ix = meta.sql_cache.get(cache_key, _UNSET)
    if ix is _UNSET:
        wanted = set(query)
        ix = next((i for i in meta.indexes if i.unique and not i.multikey and not i.sparse
                   and len(i.fields) == len(wanted) and set(i.fields) == wanted), None)
        meta.sql_cache[cache_key] = ix
    if ix is None:
        return None
    parts = []
    for f in ix.fields:
        value = query[f]
        if type(value) is dict:
            if len(value) != 1 or "$eq" not in value:
                return None
            value = value["$eq"]
        encoder = keys.FAST_ENCODERS.get(type(value))
        if encoder is not None:
            parts.append(encoder(value))
        elif value is None or type(value) is bool:
            parts.append(keys.encode_value(value))
        else:
            return None
    return ix, b"".join(parts)


def _count_group(pipeline: list) -> tuple[Any, str] | None:
    """(group _id, field) when the pipeline is countDocuments' ``$group: {n: {$sum: 1}}``."""
    if len(pipeline) != 1 or "$group" not in pipeline[0]:
        return None
    group = pipeline[0]["$group"]
    if len(group) != 2 or "_id" not in group:
        return None
    gid = group["_id"]
    if isinstance(gid, str | Mapping | list):
        return None
    (field_name, acc), = [(k, v) for k, v in group.items() if k != "_id"]
    if isinstance(acc, Mapping) and list(acc.items()) == [("$sum", 1)]:
        return gid, field_name
    return None


def _id_first(doc: Any) -> Any:
    if isinstance(doc, dict) and "_id" in doc and next(iter(doc)) != "_id":
        return {"_id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}
    return doc

