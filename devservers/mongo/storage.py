"""SQLite storage engine of the local MongoDB dev server.

One SQLite file (WAL mode) holds every database: a catalog of collections and
indexes, and one table per collection with the BSON-encoded documents. Each
MongoDB index is a BLOB column of order-preserving keys (:mod:`keys`) with a
real SQLite index (``UNIQUE`` for unique indexes), so equality, ``$in`` and range
filters on an index prefix are answered by the SQLite B-tree and duplicate keys
are rejected in O(log n). An ``$in`` becomes one key range per value (per
combination of values over several fields): a few ranges are read one after the
other, many are written to a temporary table and joined against the index in
one statement, so a 15,000-value ``$in`` costs about what 15,000 point reads
cost. Filters the indexes do not answer exactly are checked with mongomock's
matcher.

Concurrency: writes run in :meth:`Storage.transaction` on the one writer
connection, serialised by a writer lock and committed before the caller replies
(durable against ``kill -9``). Reads run in :meth:`Storage.read` on a pooled
reader connection, each a consistent WAL snapshot that neither waits for nor
blocks the writer (``with storage.lock:`` is the same read context). Catalog
changes (new collections and indexes) become visible to readers when their
transaction commits. Every operation may carry an :class:`Operation` (deadline
from ``maxTimeMS``, a client-disconnect probe); a watchdog thread interrupts the
SQLite statement of an operation that expired, lost its client, or runs while
the server shuts down, and row loops check the same conditions between chunks.
WAL checkpoints run in a background thread (PASSIVE), off the writer's path.
Not a production database: no journaling guarantees beyond SQLite's, no
replication.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import operator
import re
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions

from devservers.mongo import keys
from devservers.mongo.errors import DuplicateKeyError, MongoError

DECODE_OPTS = CodecOptions(document_class=dict)
_RANGE_OPS = {"$gt", "$gte", "$lt", "$lte"}
_UNSET = object()
MAX_PLAN_RANGES = 250_000
"""Most key prefixes one ``$in`` plan expands to; a larger product of ``$in`` lists uses the
index prefix before the field that would exceed it (still an index read, plus the matcher)."""
RANGE_JOIN_MIN = 32
"""From this many key ranges on, a plan joins a temporary table of ranges against the index."""
SCAN_CHUNK = 256
"""Rows fetched from SQLite at a time."""
CHECK_EVERY = 16
"""Rows handed to the caller between two checks of the operation's deadline / client /
shutdown (the caller's matcher may spend milliseconds per row)."""
MAX_READERS = 8
"""Reader connections (concurrent read snapshots); more concurrent reads wait for one."""
WATCHDOG_INTERVAL = 0.05
CHECKPOINT_INTERVAL = 0.25
"""Seconds between two background WAL checkpoints (while there are commits)."""
_UNIQUE_FAILED = re.compile(r"UNIQUE constraint failed: [^.]+\.(\w+)")
_SCHEMA_RACE = ("no such table", "no such column")
_POLL_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)


def max_time_expired() -> MongoError:
    return MongoError(50, "MaxTimeMSExpired", "operation exceeded time limit")


def shutting_down() -> MongoError:
    return MongoError(11600, "InterruptedAtShutdown", "interrupted at shutdown")


def client_disconnected() -> MongoError:
    return MongoError(279, "ClientDisconnect",
                      "operation was interrupted because a client disconnected")


def socket_open(sock: Any) -> bool:
    """False once the peer of ``sock`` closed or reset the connection (never blocks)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | _POLL_GONE)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return not any(ev & _POLL_GONE for _, ev in events)


class Operation:
    """Limits of one client operation: a deadline (``maxTimeMS``) and a liveness probe.

    :meth:`poll` returns the error that ends the operation (``MaxTimeMSExpired``,
    ``ClientDisconnect``, ``InterruptedAtShutdown``) or None; once set it sticks.
    """

    __slots__ = ("deadline", "alive", "error", "_next_probe")

    def __init__(self, deadline: float | None = None,
                 alive: Callable[[], bool] | None = None) -> None:
        self.deadline = deadline
        self.alive = alive
        self.error: MongoError | None = None
        self._next_probe = 0.0

    @classmethod
    def with_max_time(cls, max_time_ms: float | None,
                      alive: Callable[[], bool] | None = None) -> Operation:
        deadline = (time.monotonic() + max_time_ms / 1000.0) if max_time_ms else None
        return cls(deadline, alive)

    def poll(self, closing: bool = False) -> MongoError | None:
        if self.error is not None:
            return self.error
        if closing:
            self.error = shutting_down()
            return self.error
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self.error = max_time_expired()
        elif self.alive is not None and now >= self._next_probe:
            self._next_probe = now + WATCHDOG_INTERVAL
            if not self.alive():
                self.error = client_disconnected()
        return self.error


@dataclass
class IndexMeta:
    """One MongoDB index and the SQLite column that stores its keys."""

    name: str
    key: list[tuple[str, Any]]
    column: str
    unique: bool = False
    sparse: bool = False
    expire_after: float | None = None
    multikey: bool = False
    extra: dict = field(default_factory=dict)
    committed: bool = True
    """False while the transaction that creates it runs (readers do not plan with it)."""
    fields: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.fields = [f for f, _ in self.key]

    def spec(self) -> dict:
        doc: dict[str, Any] = {"v": 2, "key": dict(self.key), "name": self.name}
        if self.unique and self.name != "_id_":
            doc["unique"] = True
        if self.sparse:
            doc["sparse"] = True
        if self.expire_after is not None:
            doc["expireAfterSeconds"] = self.expire_after
        doc.update(self.extra)
        return doc

    def key_of(self, doc: Mapping) -> bytes | None:
        if self.sparse and all(keys.get_path(doc, f) is keys.MISSING for f in self.fields):
            return None
        return keys.encode_key(doc, self.fields)


@dataclass
class CollectionMeta:
    db: str
    name: str
    table: str
    indexes: list[IndexMeta]
    options: dict = field(default_factory=dict)
    sql_cache: dict = field(default_factory=dict)
    committed: bool = True
    """False while the transaction that creates it runs (other threads do not see it)."""

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.name}"

    def index_by_column(self, column: str) -> IndexMeta | None:
        return next((ix for ix in self.indexes if ix.column == column), None)


@dataclass
class Plan:
    """How to fetch candidate rows: a SQL WHERE on one index column."""

    where: str = ""
    params: list = field(default_factory=list)
    exact: bool = False
    order_by: str = ""
    index: IndexMeta | None = None
    ranges: list[tuple[bytes, bytes]] | None = None
    """Several key ranges (``where`` then has two placeholders), ascending, disjoint."""


class _ReadContext:
    """``with storage.lock:`` = one read snapshot (kept for callers of the old global lock)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._stack = threading.local()

    def __enter__(self) -> _ReadContext:
        cm = self._storage.read()
        cm.__enter__()
        stack = getattr(self._stack, "items", None)
        if stack is None:
            stack = self._stack.items = []
        stack.append(cm)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.items.pop().__exit__(*exc)


class Storage:
    """All databases of one server in one SQLite file."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock = open(self.data_dir / "local-mongod.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._dir_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._dir_lock.close()
            raise RuntimeError(f"data directory {self.data_dir} is in use by another "
                               "local-mongod process") from None
        self.path = self.data_dir / "local-mongod.sqlite3"
        self._tls = threading.local()
        self._write_lock = threading.Lock()
        self._writer: int | None = None
        self._hooks: tuple[list, list] | None = None
        self._pool: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._reader_slots = threading.BoundedSemaphore(MAX_READERS)
        self._active: dict[int, tuple[Operation | None, sqlite3.Connection]] = {}
        self._active_lock = threading.Lock()
        self._range_ids = itertools.count(1)
        self._closing = False
        self._closed = threading.Event()
        #: Counters in the spirit of mongod's ``serverStatus.metrics.queryExecutor``.
        self.stats = {"collection_scans": 0, "index_reads": 0, "range_joins": 0,
                      "docs_examined": 0,
                      "interrupted": 0, "killed_max_time": 0, "killed_client_disconnect": 0,
                      "killed_shutdown": 0}
        self._waiting_writers = 0
        self.lock = _ReadContext(self)
        self._wconn = self._connect(writer=True)
        conn = self._wconn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _collections (db TEXT, name TEXT, tbl TEXT, "
            "options BLOB, PRIMARY KEY (db, name))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _indexes (db TEXT, coll TEXT, name TEXT, spec BLOB, "
            "col TEXT, multikey INTEGER DEFAULT 0, PRIMARY KEY (db, coll, name))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _users (db TEXT, user TEXT, doc BLOB, "
            "PRIMARY KEY (db, user))"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS _dbs (db TEXT PRIMARY KEY)")
        conn.execute("CREATE TABLE IF NOT EXISTS _seq (n INTEGER)")
        self.collections: dict[tuple[str, str], CollectionMeta] = {}
        """Copy-on-write: replaced, never mutated, so readers iterate it safely."""
        self._load_catalog()
        self._watchdog = threading.Thread(target=self._watch, name="storage-watchdog",
                                          daemon=True)
        self._watchdog.start()
        # WAL checkpoints off the writer's path: a commit only appends to the WAL; this
        # thread copies committed pages into the database file (PASSIVE: it never waits
        # for, or blocks, a reader or the writer).
        self._wconn.execute("PRAGMA wal_autocheckpoint=0")
        self._wal_pending = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop,
                                              name="wal-checkpoint", daemon=True)
        self._checkpointer.start()

    def _connect(self, writer: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=30.0)
        if writer:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives a process crash (kill -9);
            # only an OS crash / power loss may lose the last transactions.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-131072")
        else:
            conn.execute("PRAGMA cache_size=-16384")
        # Memory-mapped reads: index range scans fetch rows without a read() per page.
        conn.execute("PRAGMA mmap_size=1073741824")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS _ranges (q INTEGER, lo BLOB, hi BLOB, "
                     "PRIMARY KEY (q, lo)) WITHOUT ROWID")
        return conn

    def close(self, timeout: float = 1.0) -> bool:
        """Interrupt what runs, close every connection; False if a writer did not stop in time.

        Committed transactions are in the WAL already; an interrupted one rolls back. When
        the writer does not stop within ``timeout`` its connection is left to the process
        exit (SQLite recovers from the WAL on the next start).
        """
        self.shutdown()
        deadline = time.monotonic() + timeout
        got = self._write_lock.acquire(timeout=timeout)
        with self._pool_lock:
            idle, self._pool = self._pool, []
        for conn in idle:
            conn.close()
        # wait (briefly) for checked-out readers: they are interrupted and hand back
        while self._active and time.monotonic() < deadline:
            self._interrupt_all()
            time.sleep(0.01)
        if got:
            self._wconn.close()
            self._write_lock.release()
        self._closed.set()
        self._dir_lock.close()
        return got

    def shutdown(self) -> None:
        """From now on every operation ends (InterruptedAtShutdown); running ones interrupted."""
        self._closing = True
        self._interrupt_all()

    @property
    def closing(self) -> bool:
        return self._closing

    # ------------------------------------------------------------------ connections
    @property
    def conn(self) -> sqlite3.Connection:
        """The connection of the calling thread: the writer's inside its transaction, else
        the reader of its :meth:`read` context."""
        if self._writer == threading.get_ident():
            return self._wconn
        conn = getattr(self._tls, "reader", None)
        if conn is None:
            raise RuntimeError("storage access outside read() / transaction()")
        return conn

    def activity(self) -> dict[str, int]:
        """Running and waiting operations, as mongod's ``serverStatus.globalLock`` counts them."""
        with self._active_lock:
            running = len(self._active)
        writers = 1 if self._writer is not None else 0
        return {"readers": running - writers, "writers": writers,
                "queued_writers": self._waiting_writers}

    def in_write(self) -> bool:
        return self._writer == threading.get_ident()

    @contextlib.contextmanager
    def operation(self, op: Operation | None) -> Iterator[Operation | None]:
        """Run the calling thread's storage work under ``op`` (deadline, liveness)."""
        previous = getattr(self._tls, "op", None)
        self._tls.op = op
        try:
            yield op
        finally:
            self._tls.op = previous

    def check(self) -> None:
        """Raise the error that ends the current operation (expired, client gone, shutdown)."""
        op = getattr(self._tls, "op", None)
        if op is not None:
            err = op.poll(self._closing)
            if err is not None:
                raise err
        elif self._closing:
            raise shutting_down()

    def interruption(self, exc: BaseException) -> MongoError | None:
        """The MongoError behind ``exc`` when it is SQLite's 'interrupted' from the watchdog."""
        if not isinstance(exc, sqlite3.OperationalError) or "interrupt" not in str(exc):
            return None
        self.stats["interrupted"] += 1
        op = getattr(self._tls, "op", None)
        err = op.poll(self._closing) if op is not None else None
        if err is None and self._closing:
            err = shutting_down()
        return err

    @staticmethod
    def schema_race(exc: BaseException) -> bool:
        """True for a read that planned on a table/column a concurrent commit just dropped."""
        return isinstance(exc, sqlite3.OperationalError) and any(
            m in str(exc) for m in _SCHEMA_RACE)

    def _register(self, conn: sqlite3.Connection) -> None:
        with self._active_lock:
            self._active[threading.get_ident()] = (getattr(self._tls, "op", None), conn)

    def _unregister(self) -> None:
        # Under the lock: once this returns, the watchdog cannot interrupt this connection.
        with self._active_lock:
            self._active.pop(threading.get_ident(), None)

    def _interrupt_all(self) -> None:
        with self._active_lock:
            for _op, conn in self._active.values():
                conn.interrupt()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            while not self._closed.is_set():
                if not self._wal_pending.wait(CHECKPOINT_INTERVAL):
                    continue
                self._wal_pending.clear()
                if self._closing:
                    break
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # busy or closing: the next commit asks again
                    time.sleep(CHECKPOINT_INTERVAL)
                self._closed.wait(CHECKPOINT_INTERVAL)
        finally:
            conn.close()

    def _watch(self) -> None:
        """Interrupt the statements of expired, abandoned or shut-down operations."""
        while not self._closed.wait(WATCHDOG_INTERVAL):
            with self._active_lock:
                for op, conn in list(self._active.values()):
                    if self._closing or (op is not None and op.poll() is not None):
                        conn.interrupt()

    def _checkout(self) -> sqlite3.Connection:
        while not self._reader_slots.acquire(timeout=WATCHDOG_INTERVAL):
            self.check()
        try:
            self.check()
            with self._pool_lock:
                conn = self._pool.pop() if self._pool else None
            return conn if conn is not None else self._connect(writer=False)
        except BaseException:
            self._reader_slots.release()
            raise

    def _checkin(self, conn: sqlite3.Connection | None) -> None:
        try:
            if conn is not None:
                if self._closing:
                    conn.close()
                else:
                    with self._pool_lock:
                        self._pool.append(conn)
        finally:
            self._reader_slots.release()

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """One consistent read snapshot for the calling thread (reentrant).

        Inside the thread's own write transaction this is that transaction (it sees its
        own uncommitted writes); otherwise a pooled reader connection in a deferred
        transaction, rolled back at the end (a reader writes only its temporary ranges).
        """
        tls = self._tls
        if self._writer == threading.get_ident() or getattr(tls, "reader", None) is not None:
            yield
            return
        conn: sqlite3.Connection | None = self._checkout()
        tls.reader = conn
        self._register(conn)
        try:
            conn.execute("BEGIN")
            yield
        finally:
            self._unregister()
            tls.reader = None
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                conn.close()  # unusable: do not hand it to the next reader
                conn = None
            self._checkin(conn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction, committed before the caller replies (reentrant: a nested
        call joins the outer transaction)."""
        me = threading.get_ident()
        if self._writer == me:
            yield
            return
        self._waiting_writers += 1
        try:
            while not self._write_lock.acquire(timeout=WATCHDOG_INTERVAL):
                if self._closing:
                    raise shutting_down()
        finally:
            self._waiting_writers -= 1
        conn = self._wconn
        on_commit: list[Callable[[], None]] = []
        on_rollback: list[Callable[[], None]] = []
        try:
            if self._closing:
                raise shutting_down()
            self._writer = me
            self._hooks = (on_commit, on_rollback)
            self._register(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._unregister()  # COMMIT is never interrupted
                conn.execute("COMMIT")
                self._wal_pending.set()
            except BaseException:
                self._unregister()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                for undo in reversed(on_rollback):
                    undo()
                raise
            for publish in on_commit:
                publish()
        finally:
            self._unregister()
            self._hooks = None
            self._writer = None
            self._write_lock.release()

    def _on_commit(self, publish: Callable[[], None], undo: Callable[[], None]) -> None:
        """Catalog change made in the current transaction: publish / undo when it ends."""
        if self._hooks is None:
            raise RuntimeError("catalog change outside a transaction")
        self._hooks[0].append(publish)
        self._hooks[1].append(undo)

    # ------------------------------------------------------------------ catalog
    def _load_catalog(self) -> None:
        collections: dict[tuple[str, str], CollectionMeta] = {}
        conn = self._wconn
        for db, name, tbl, options in conn.execute("SELECT * FROM _collections"):
            opts = bson.decode(options) if options else {}
            collections[(db, name)] = CollectionMeta(db, name, tbl, [], opts)
        for db, coll, _name, spec, col, multikey in conn.execute(
            "SELECT db, coll, name, spec, col, multikey FROM _indexes ORDER BY rowid"
        ):
            meta = collections.get((db, coll))
            if meta is not None:
                meta.indexes.append(_index_from_spec(bson.decode(spec), col, bool(multikey)))
        self.collections = collections

    def _next_id(self) -> int:
        row = self.conn.execute("SELECT n FROM _seq").fetchone()
        if row is None:
            self.conn.execute("INSERT INTO _seq VALUES (1)")
            return 1
        self.conn.execute("UPDATE _seq SET n = n + 1")
        return row[0] + 1

    def get(self, db: str, name: str) -> CollectionMeta | None:
        meta = self.collections.get((db, name))
        if meta is not None and not meta.committed and not self.in_write():
            return None  # created by a transaction that has not committed yet
        return meta

    def _visible(self) -> list[tuple[str, str]]:
        writer = self.in_write()
        return [k for k, m in self.collections.items() if m.committed or writer]

    def create_collection(self, db: str, name: str, options: dict | None = None,
                          must_not_exist: bool = False) -> tuple[CollectionMeta, bool]:
        """Create a collection (and its ``_id_`` index); inside a transaction."""
        existing = self.collections.get((db, name))
        if existing is not None:
            if must_not_exist:
                raise MongoError(48, "NamespaceExists", f"Collection {db}.{name} already exists.")
            return existing, False
        _validate_names(db, name)
        table = f"c{self._next_id()}"
        self.conn.execute(
            f'CREATE TABLE "{table}" (rid INTEGER PRIMARY KEY, idk BLOB NOT NULL UNIQUE, '
            "doc BLOB NOT NULL)"
        )
        self.conn.execute(
            "INSERT INTO _collections VALUES (?, ?, ?, ?)",
            (db, name, table, bson.encode(options or {})),
        )
        id_index = IndexMeta("_id_", [("_id", 1)], "idk", unique=True)
        self.conn.execute(
            "INSERT INTO _indexes (db, coll, name, spec, col) VALUES (?, ?, ?, ?, ?)",
            (db, name, "_id_", bson.encode(id_index.spec()), "idk"),
        )
        self.conn.execute("INSERT OR IGNORE INTO _dbs VALUES (?)", (db,))
        meta = CollectionMeta(db, name, table, [id_index], dict(options or {}), committed=False)
        key = (db, name)
        self.collections = {**self.collections, key: meta}

        def publish() -> None:
            meta.committed = True

        def undo() -> None:
            if self.collections.get(key) is meta:
                self.collections = {k: m for k, m in self.collections.items() if k != key}

        self._on_commit(publish, undo)
        return meta, True

    def drop_collection(self, db: str, name: str) -> int | None:
        key = (db, name)
        meta = self.collections.get(key)
        if meta is None:
            return None
        self.collections = {k: m for k, m in self.collections.items() if k != key}

        def undo() -> None:
            self.collections = {**self.collections, key: meta}

        self._on_commit(lambda: None, undo)
        self.conn.execute(f'DROP TABLE "{meta.table}"')
        self.conn.execute("DELETE FROM _collections WHERE db = ? AND name = ?", (db, name))
        self.conn.execute("DELETE FROM _indexes WHERE db = ? AND coll = ?", (db, name))
        return len(meta.indexes)

    def drop_database(self, db: str) -> None:
        for (d, name) in list(self.collections):  # a snapshot: drop_collection replaces it
            if d == db:
                self.drop_collection(d, name)
        self.conn.execute("DELETE FROM _dbs WHERE db = ?", (db,))

    def database_names(self) -> list[str]:
        names = {d for d, _ in self._visible()}
        return sorted(names)

    def collection_names(self, db: str) -> list[str]:
        return sorted(n for d, n in self._visible() if d == db)

    def table_size(self, meta: CollectionMeta) -> tuple[int, int]:
        with self.read():
            try:
                row = self.conn.execute(
                    f'SELECT COUNT(*), COALESCE(SUM(LENGTH(doc)), 0) FROM "{meta.table}"'
                ).fetchone()
            except sqlite3.OperationalError as exc:
                if self.schema_race(exc):  # dropped / not in this snapshot yet
                    return 0, 0
                raise
        return int(row[0]), int(row[1])

    # ------------------------------------------------------------------ indexes
    def create_index(self, meta: CollectionMeta, spec: Mapping) -> bool:
        """Add one index; False if an identical one exists. Inside a transaction."""
        key = list(spec["key"].items())
        name = spec["name"]
        for ix in meta.indexes:
            if ix.name == name:
                if ix.key == key and _same_options(ix, spec):
                    return False
                if ix.key != key:
                    raise MongoError(86, "IndexKeySpecsConflict", "An existing index has the "
                                     f"same name as the requested index. When index names are "
                                     f"not specified, they are auto generated and can cause "
                                     f"conflicts. Please refer to our documentation. Requested "
                                     f"index: {dict(spec)}, existing index: {ix.spec()}")
                raise MongoError(85, "IndexOptionsConflict", "An equivalent index already "
                                 f"exists with the same name but different options. Requested "
                                 f"index: {dict(spec)}, existing index: {ix.spec()}")
            if ix.key == key:
                if _same_options(ix, spec):
                    return False
                raise MongoError(85, "IndexOptionsConflict", "An equivalent index already "
                                 "exists with a different name and options. Requested index: "
                                 f"{dict(spec)}, existing index: {ix.spec()}")
        column = f"ix{self._next_id()}"
        index = _index_from_spec(dict(spec), column, False)
        index.committed = False
        self.conn.execute(f'ALTER TABLE "{meta.table}" ADD COLUMN "{column}" BLOB')
        rows = self.conn.execute(f'SELECT rid, doc FROM "{meta.table}"').fetchall()
        updates = []
        for rid, raw in rows:
            doc = bson.decode(raw, DECODE_OPTS)
            if any(keys.is_multikey_value(doc, f) for f in index.fields):
                index.multikey = True
            updates.append((index.key_of(doc), rid))
        self.conn.executemany(f'UPDATE "{meta.table}" SET "{column}" = ? WHERE rid = ?', updates)
        unique = "UNIQUE " if index.unique else ""
        try:
            self.conn.execute(
                f'CREATE {unique}INDEX "{meta.table}_{column}" ON "{meta.table}" ("{column}")'
            )
        except sqlite3.IntegrityError:
            dup = self.conn.execute(
                f'SELECT doc FROM "{meta.table}" WHERE "{column}" IN (SELECT "{column}" FROM '
                f'"{meta.table}" GROUP BY "{column}" HAVING COUNT(*) > 1) LIMIT 1'
            ).fetchone()
            doc = bson.decode(dup[0], DECODE_OPTS)
            err = self._dup_error(meta, index, doc)
            raise MongoError(11000, "DuplicateKey", f"Index build failed: {err.errmsg}") from None
        self.conn.execute(
            "INSERT INTO _indexes (db, coll, name, spec, col, multikey) VALUES (?, ?, ?, ?, ?, ?)",
            (meta.db, meta.name, name, bson.encode(index.spec()), column, int(index.multikey)),
        )
        meta.indexes = [*meta.indexes, index]
        meta.sql_cache.clear()

        def publish() -> None:
            index.committed = True

        def undo() -> None:
            meta.indexes = [ix for ix in meta.indexes if ix is not index]
            meta.sql_cache.clear()

        self._on_commit(publish, undo)
        return True

    def drop_index(self, meta: CollectionMeta, index: IndexMeta) -> None:
        self.conn.execute(f'DROP INDEX IF EXISTS "{meta.table}_{index.column}"')
        self.conn.execute(f'ALTER TABLE "{meta.table}" DROP COLUMN "{index.column}"')
        self.conn.execute(
            "DELETE FROM _indexes WHERE db = ? AND coll = ? AND name = ?",
            (meta.db, meta.name, index.name),
        )
        meta.indexes = [ix for ix in meta.indexes if ix is not index]
        meta.sql_cache.clear()

        def undo() -> None:
            meta.indexes = [*meta.indexes, index]
            meta.sql_cache.clear()

        self._on_commit(lambda: None, undo)

    def _check_multikey(self, meta: CollectionMeta, doc: Mapping) -> None:
        """Mark indexes multikey (unusable for planning) once an array appears in a key field."""
        for ix in meta.indexes:
            if ix.multikey:
                continue
            for f in ix.fields:
                value = doc.get(f) if "." not in f else None
                if type(value) is list or ("." in f and keys.is_multikey_value(doc, f)):
                    self._mark_multikey(meta, doc)
                    return

    def _mark_multikey(self, meta: CollectionMeta, doc: Mapping) -> None:
        meta.sql_cache.clear()
        for ix in meta.indexes:
            if not ix.multikey and any(keys.is_multikey_value(doc, f) for f in ix.fields):
                ix.multikey = True
                self.conn.execute(
                    "UPDATE _indexes SET multikey = 1 WHERE db = ? AND coll = ? AND name = ?",
                    (meta.db, meta.name, ix.name),
                )

    def _dup_error(self, meta: CollectionMeta, index: IndexMeta, doc: Mapping) -> DuplicateKeyError:
        key_value = {}
        for f in index.fields:
            v = keys.get_path(doc, f)
            key_value[f] = None if v is keys.MISSING else v
        return DuplicateKeyError(meta.ns, index.name, dict(index.key), key_value)

    def _dup_from_integrity(self, meta: CollectionMeta, exc: sqlite3.IntegrityError,
                            doc: Mapping) -> DuplicateKeyError:
        match = _UNIQUE_FAILED.search(str(exc))
        column = match.group(1) if match else "idk"
        index = meta.index_by_column(column) or meta.indexes[0]
        return self._dup_error(meta, index, doc)

    # ------------------------------------------------------------------ rows
    def _columns(self, meta: CollectionMeta) -> list[str]:
        return [ix.column for ix in meta.indexes if ix.column != "idk"]

    def _insert_sql(self, meta: CollectionMeta) -> str:
        cols = tuple(self._columns(meta))
        cached = meta.sql_cache.get(("insert", cols))
        if cached is None:
            col_sql = "".join(f', "{c}"' for c in cols)
            marks = ", ?" * len(cols)
            cached = f'INSERT INTO "{meta.table}" (idk, doc{col_sql}) VALUES (?, ?{marks})'
            meta.sql_cache[("insert", cols)] = cached
        return cached

    def insert_doc(self, meta: CollectionMeta, doc: dict, known: tuple | None = None,
                   raw: bytes | None = None) -> None:
        """Insert one document (``_id`` already set); raises DuplicateKeyError.

        ``known`` = (column, key) already encoded by the caller (the upsert's unique key);
        ``raw`` = the document's BSON where already known.
        """
        if raw is None:
            raw = bson.encode(doc)
        self._check_multikey(meta, doc)
        values = [keys.encode_value(doc["_id"]), raw]
        for ix in meta.indexes:
            if ix.column != "idk":
                values.append(known[1] if known and known[0] == ix.column else ix.key_of(doc))
        try:
            self.conn.execute(self._insert_sql(meta), values)
        except sqlite3.IntegrityError as exc:
            raise self._dup_from_integrity(meta, exc, doc) from None

    def insert_many_fast(self, meta: CollectionMeta, docs: list[dict],
                         raws: list[bytes | None] | None = None) -> bool:
        """Insert a chunk in one ``executemany``; False (nothing written) on any conflict.

        ``raws``: each document's BSON where already known (as the client sent it), else None.
        The caller then retries the chunk one document at a time to report exact write errors.
        """
        if raws is None:
            raws = [None] * len(docs)
        rows = [self._fast_row(meta, doc, raw) or self._row(meta, doc, raw)
                for doc, raw in zip(docs, raws, strict=True)]
        self.conn.execute("SAVEPOINT chunk")
        try:
            self.conn.executemany(self._insert_sql(meta), rows)
        except sqlite3.IntegrityError:
            self.conn.execute("ROLLBACK TO chunk")
            self.conn.execute("RELEASE chunk")
            return False
        self.conn.execute("RELEASE chunk")
        return True

    def _row(self, meta: CollectionMeta, doc: dict, raw: bytes | None = None) -> list:
        """The insert row of ``doc``: _id key, BSON, one key per other index (marks multikey)."""
        self._check_multikey(meta, doc)
        row = [keys.encode_value(doc["_id"]), raw if raw is not None else bson.encode(doc)]
        row.extend([ix.key_of(doc) for ix in meta.indexes if ix.column != "idk"])
        return row

    def _fast_row(self, meta: CollectionMeta, doc: dict, raw: bytes | None = None
                  ) -> list | None:
        """:meth:`_row` for the common case, or None (then :meth:`_row` decides).

        Applies when every indexed field is top-level, present, and holds a str, datetime,
        number or ObjectId: then no index can become multikey and each key is a join of
        fast encodings (``KeyError`` from a missing field or another type means "not fast").
        """
        getters = meta.sql_cache.get("fast_getters", _UNSET)
        if getters is _UNSET:
            others = [ix for ix in meta.indexes if ix.column != "idk"]
            simple = all(not ix.sparse and all("." not in f for f in ix.fields) for ix in others)
            # itemgetter of several fields gives a tuple, of one field the value itself
            getters = ([(operator.itemgetter(*ix.fields), len(ix.fields) > 1) for ix in others]
                       if simple else None)
            meta.sql_cache["fast_getters"] = getters
        if getters is None:
            return None
        fast = keys.FAST_ENCODERS
        try:
            doc_id = doc["_id"]
            row: list = [fast[type(doc_id)](doc_id), raw]
            for getter, several in getters:
                values = getter(doc)
                if several:
                    row.append(b"".join([fast[type(v)](v) for v in values]))
                else:
                    row.append(fast[type(values)](values))
        except KeyError:
            return None
        if raw is None:
            row[1] = bson.encode(doc)
        return row

    def replace_row(self, meta: CollectionMeta, rid: int, doc: dict, raw: bytes) -> None:
        """Rewrite one row with a new document version; raises DuplicateKeyError."""
        self._check_multikey(meta, doc)
        cols = self._columns(meta)
        sets = "".join(f', "{c}" = ?' for c in cols)
        values: list[Any] = [raw]
        values.extend(ix.key_of(doc) for ix in meta.indexes if ix.column != "idk")
        values.append(rid)
        try:
            self.conn.execute(f'UPDATE "{meta.table}" SET doc = ?{sets} WHERE rid = ?', values)
        except sqlite3.IntegrityError as exc:
            raise self._dup_from_integrity(meta, exc, doc) from None

    def delete_rows(self, meta: CollectionMeta, rids: Iterable[int]) -> int:
        rows = [(r,) for r in rids]
        self.conn.executemany(f'DELETE FROM "{meta.table}" WHERE rid = ?', rows)
        return len(rows)

    def lookup_unique(self, meta: CollectionMeta, index: IndexMeta,
                      key: bytes) -> tuple[int, bytes] | None:
        with self.read():
            return self.conn.execute(
                f'SELECT rid, doc FROM "{meta.table}" WHERE "{index.column}" = ?', (key,)
            ).fetchone()

    # ------------------------------------------------------------------ queries
    def plan(self, meta: CollectionMeta, query: Mapping,
             sort: list[tuple[str, int]] | None = None) -> Plan:
        """Pick the index that answers the longest prefix of ``query``."""
        conds, complete = _conditions(query)
        best: Plan | None = None
        best_score = 0.0
        usable = self._usable_indexes(meta)
        for ix in usable:
            plan, score = _plan_for_index(ix, conds, complete)
            if plan is not None and score > best_score:
                best, best_score = plan, score
        if best is None:
            best = Plan(exact=not query)
            if sort:
                # No filter index: an index whose fields match the sort still avoids sorting.
                for ix in usable:
                    order = _order_for_index(ix, 0, sort)
                    if order:
                        best.order_by = f'"{ix.column}" {order}'
                        best.index = ix
                        break
        elif sort and best.index is not None:
            used = _eq_prefix_len(best.index, conds)
            order = _order_for_index(best.index, used, sort)
            if order:
                best.order_by = f'"{best.index.column}" {order}'
        return best

    def _usable_indexes(self, meta: CollectionMeta) -> list[IndexMeta]:
        writer = self.in_write()
        return [ix for ix in meta.indexes
                if not ix.multikey and not ix.sparse and (ix.committed or writer)]

    def scan(self, meta: CollectionMeta, plan: Plan, limit: int | None = None
             ) -> Iterator[tuple[int, bytes]]:
        """Rows (rid, BSON) of ``plan``, lazily, in the plan's order.

        A generator: it reads in chunks inside one read snapshot and checks the current
        :class:`Operation` between chunks; close it (or exhaust it) before leaving the
        read context it was started in.
        """
        if not plan.where:
            self.stats["collection_scans"] += 1
        else:
            self.stats["index_reads"] += 1
        if plan.ranges is not None:
            return self._scan_ranges(meta, plan, limit)
        sql = f'SELECT rid, doc FROM "{meta.table}"'
        if plan.where:
            sql += f" WHERE {plan.where}"
        if plan.order_by:
            sql += f" ORDER BY {plan.order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._rows(sql, plan.params)

    def _rows(self, sql: str, params: Any) -> Iterator[tuple[int, bytes]]:
        with self.read():
            self.check()
            cur = self.conn.execute(sql, params)
            try:
                while True:
                    chunk = cur.fetchmany(SCAN_CHUNK)
                    if not chunk:
                        return
                    self.stats["docs_examined"] += len(chunk)
                    for start in range(0, len(chunk), CHECK_EVERY):
                        # the consumer's work per row (the matcher) runs between these checks
                        yield from chunk[start:start + CHECK_EVERY]
                        self.check()
            finally:
                cur.close()

    def _scan_ranges(self, meta: CollectionMeta, plan: Plan, limit: int | None
                     ) -> Iterator[tuple[int, bytes]]:
        """Rows in a union of disjoint key ranges, in the plan's order (ranges ascending).

        Up to ``RANGE_JOIN_MIN`` ranges: one indexed range read each. More: the ranges go
        into a temporary table joined against the index in one statement (one B-tree
        seek per range, no Python per range).
        """
        assert plan.ranges is not None and plan.index is not None
        ranges = plan.ranges
        col = f't."{plan.index.column}"'
        if not ranges:
            return
        descending = plan.order_by.endswith("DESC")
        direction = "DESC" if descending else "ASC"
        with self.read():
            if len(ranges) < RANGE_JOIN_MIN:
                sql = (f'SELECT rid, doc FROM "{meta.table}" AS t WHERE {col} >= ? AND '
                       f"{col} < ? ORDER BY {col} {direction}")
                produced = 0
                for low, high in (ranges[::-1] if descending else ranges):
                    for row in self._rows(sql, (low, high)):
                        yield row
                        produced += 1
                        if limit is not None and produced >= limit:
                            return
                return
            # Inside each range rows come in index order (a per-range sort of a few rows
            # when ordered; SQLite does not credit range seeks in a join with order).
            order = f"r.lo {direction}" + (f", {col} {direction}" if plan.order_by else "")
            sql = (f'SELECT t.rid, t.doc FROM temp._ranges AS r CROSS JOIN "{meta.table}" AS t '
                   f"WHERE r.q = ? AND {col} >= r.lo AND {col} < r.hi ORDER BY {order}")
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            with self._range_table(ranges) as qid:
                yield from self._rows(sql, (qid,))

    @contextlib.contextmanager
    def _range_table(self, ranges: list[tuple[bytes, bytes]]) -> Iterator[int]:
        """The ranges in ``temp._ranges`` under a fresh id, for one statement; removed after."""
        self.stats["range_joins"] += 1
        qid = next(self._range_ids)
        conn = self.conn
        conn.executemany("INSERT INTO temp._ranges VALUES (?, ?, ?)",
                         [(qid, lo, hi) for lo, hi in ranges])
        try:
            yield qid
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("DELETE FROM temp._ranges WHERE q = ?", (qid,))

    def count_plan(self, meta: CollectionMeta, plan: Plan) -> int:
        if not plan.where:
            self.stats["collection_scans"] += 1
        else:
            self.stats["index_reads"] += 1
        with self.read():
            self.check()
            if plan.ranges is not None and plan.index is not None:
                if not plan.ranges:
                    return 0
                col = f't."{plan.index.column}"'
                with self._range_table(plan.ranges) as qid:
                    return int(self.conn.execute(
                        f'SELECT COUNT(*) FROM temp._ranges AS r CROSS JOIN "{meta.table}" '
                        f"AS t WHERE r.q = ? AND {col} >= r.lo AND {col} < r.hi", (qid,)
                    ).fetchone()[0])
            sql = f'SELECT COUNT(*) FROM "{meta.table}"'
            if plan.where:
                sql += f" WHERE {plan.where}"
            return int(self.conn.execute(sql, plan.params).fetchone()[0])

    # ------------------------------------------------------------------ users
    def get_user(self, db: str, user: str) -> dict | None:
        with self.read():
            row = self.conn.execute(
                "SELECT doc FROM _users WHERE db = ? AND user = ?", (db, user)
            ).fetchone()
        return bson.decode(row[0], DECODE_OPTS) if row else None

    def put_user(self, db: str, user: str, doc: dict) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO _users VALUES (?, ?, ?)", (db, user, bson.encode(doc))
        )

    def delete_user(self, db: str, user: str) -> bool:
        cur = self.conn.execute("DELETE FROM _users WHERE db = ? AND user = ?", (db, user))
        return cur.rowcount > 0

    def users(self, db: str | None = None) -> list[dict]:
        with self.read():
            if db is None:
                rows = self.conn.execute("SELECT doc FROM _users ORDER BY db, user").fetchall()
            else:
                rows = self.conn.execute("SELECT doc FROM _users WHERE db = ? ORDER BY user",
                                         (db,)).fetchall()
        return [bson.decode(r[0], DECODE_OPTS) for r in rows]

    # ------------------------------------------------------------------ TTL
    def expire_ttl(self, now: datetime | None = None) -> int:
        """Delete documents whose TTL-indexed date is older than expireAfterSeconds."""
        now = now or datetime.now(UTC)
        removed = 0
        with self.transaction():
            for meta in list(self.collections.values()):
                for ix in meta.indexes:
                    if ix.expire_after is None or len(ix.fields) != 1:
                        continue
                    cutoff = now.timestamp() - float(ix.expire_after)
                    cutoff_ms = int(cutoff * 1000)
                    low = bytes((keys.TAG_DATE,))
                    high = low + keys._ordered_int64(cutoff_ms)
                    if ix.multikey:
                        rids = self._ttl_multikey(meta, ix, cutoff_ms)
                        removed += self.delete_rows(meta, rids)
                        continue
                    cur = self.conn.execute(
                        f'DELETE FROM "{meta.table}" WHERE "{ix.column}" >= ? AND '
                        f'"{ix.column}" < ?',
                        (low, high),
                    )
                    removed += cur.rowcount
        return removed

    def _ttl_multikey(self, meta: CollectionMeta, ix: IndexMeta, cutoff_ms: int) -> list[int]:
        rids = []
        for rid, raw in self.conn.execute(f'SELECT rid, doc FROM "{meta.table}"').fetchall():
            value = keys.get_path(bson.decode(raw, DECODE_OPTS), ix.fields[0])
            values = value if isinstance(value, list) else [value]
            dates = [v for v in values if isinstance(v, datetime)]
            if dates and min(keys._datetime_millis(d) for d in dates) < cutoff_ms:
                rids.append(rid)
        return rids


# ---------------------------------------------------------------------- helpers
def _validate_names(db: str, name: str) -> None:
    if not db or any(c in db for c in '/\\. "$\x00'):
        raise MongoError(73, "InvalidNamespace", f"Invalid database name: '{db}'")
    if not name or "$" in name or "\x00" in name or name.startswith("."):
        raise MongoError(73, "InvalidNamespace", f"Invalid collection name: {name}")


def _index_from_spec(spec: dict, column: str, multikey: bool) -> IndexMeta:
    known = {"v", "key", "name", "unique", "sparse", "expireAfterSeconds", "background", "ns"}
    extra = {k: v for k, v in spec.items() if k not in known}
    expire = spec.get("expireAfterSeconds")
    return IndexMeta(
        name=spec["name"],
        key=list(spec["key"].items()),
        column=column,
        unique=bool(spec.get("unique")) or spec["name"] == "_id_",
        sparse=bool(spec.get("sparse")),
        expire_after=expire,
        multikey=multikey,
        extra=extra,
    )


def _same_options(ix: IndexMeta, spec: Mapping) -> bool:
    return (
        bool(spec.get("unique")) == (ix.unique and ix.name != "_id_")
        and bool(spec.get("sparse")) == ix.sparse
        and spec.get("expireAfterSeconds") == ix.expire_after
    )


def _is_operator_doc(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and next(iter(value)).startswith("$")


def _conditions(query: Mapping) -> tuple[dict[str, tuple[str, Any]], bool]:
    """Field -> ('eq', v) | ('range', {op: v}) | ('in', [v...]) for index-usable terms.

    Terms that indexes cannot answer are left out and the flag (``complete``) is False:
    a plan is exact only when every term of the query became a condition.
    """
    conds: dict[str, tuple[str, Any]] = {}
    items: list[tuple[str, Any]] = []
    complete = True
    for key, value in query.items():
        if key == "$and" and isinstance(value, list):
            for sub in value:
                if isinstance(sub, Mapping):
                    items.extend(sub.items())
                else:
                    complete = False
        else:
            items.append((key, value))
    for key, value in items:
        if key.startswith("$") or key in conds:
            complete = False
            continue
        before = len(conds)
        if _is_operator_doc(value):
            ops = set(value)
            if ops == {"$eq"} and _indexable(value["$eq"]):
                conds[key] = ("eq", value["$eq"])
            elif ops <= _RANGE_OPS and all(_rangeable(v) for v in value.values()):
                tags = {keys.type_tag(v) for v in value.values()}
                if len(tags) == 1:
                    conds[key] = ("range", dict(value))
            elif ops == {"$in"} and isinstance(value["$in"], list) and value["$in"] and all(
                _indexable(v) for v in value["$in"]
            ):
                conds[key] = ("in", list(value["$in"]))
        elif _indexable(value):
            conds[key] = ("eq", value)
        if len(conds) == before:
            complete = False
    return conds, complete


def _indexable(value: Any) -> bool:
    return not isinstance(value, list | tuple | Mapping | re.Pattern | bson.Regex | float) or (
        isinstance(value, float) and value == value
    )


def _rangeable(value: Any) -> bool:
    return value is not None and _indexable(value) and not isinstance(value, bool)


def _eq_prefix_len(ix: IndexMeta, conds: Mapping) -> int:
    n = 0
    for f in ix.fields:
        c = conds.get(f)
        if c is None or c[0] != "eq":
            break
        n += 1
    return n


def _plan_for_index(ix: IndexMeta, conds: dict, complete: bool) -> tuple[Plan | None, float]:
    """Plan over one index: equality / ``$in`` on a prefix of its fields, then a range.

    Each ``$in`` multiplies the key prefixes (a union of point lookups / prefix ranges);
    the result is one byte range per prefix, in key order, read from the index however
    many there are (:meth:`Storage._scan_ranges`). Only a product of ``$in`` lists above
    ``MAX_PLAN_RANGES`` stops at the field before (a shorter prefix, still an index read).
    """
    if not conds:
        return None, 0.0
    fields = ix.fields
    prefixes = [b""]
    used: set[str] = set()
    for f in fields:
        c = conds.get(f)
        if c is None or c[0] == "range":
            break
        if c[0] == "eq":
            enc = keys.encode_value(c[1])
            prefixes = [p + enc for p in prefixes]
        else:
            encs = sorted({keys.encode_value(v) for v in c[1]})
            if len(prefixes) * len(encs) > MAX_PLAN_RANGES:
                break
            prefixes = [p + e for p in prefixes for e in encs]
        used.add(f)
    nxt = fields[len(used)] if len(used) < len(fields) else None
    col = f'"{ix.column}"'
    plan = Plan(index=ix)
    score = float(len(used))
    cond = conds.get(nxt) if nxt else None
    ranges: list[tuple[bytes, bytes]] = []
    if cond is not None and cond[0] == "range":
        ops = cond[1]
        tag = next(keys.type_tag(v) for v in ops.values())
        bounds = [(op, keys.encode_value(v)) for op, v in ops.items()]
        for prefix in prefixes:
            low = prefix + bytes((tag,))
            high = keys.bracket_upper_bound(prefix, tag)
            for op, value in bounds:
                enc = prefix + value
                if op == "$gte":
                    low = max(low, enc)
                elif op == "$gt":
                    low = max(low, enc + b"\xff")
                elif op == "$lte":
                    high = min(high, enc + b"\xff")
                elif op == "$lt":
                    high = min(high, enc)
            if low < high:
                ranges.append((low, high))
        used.add(nxt)
        score += 0.5
    elif used:
        ranges = [(p, keys.prefix_upper_bound(p)) for p in prefixes]
    else:
        return None, 0.0
    if len(prefixes) == 1 and len(used) == len(fields) and cond is None:
        plan.where = f"{col} = ?"
        plan.params = [prefixes[0]]
    elif len(ranges) == 1:
        plan.where = f"{col} >= ? AND {col} < ?"
        plan.params = list(ranges[0])
    else:
        plan.where = f"{col} >= ? AND {col} < ?"
        plan.ranges = ranges  # may be empty: nothing can match
    if ix.unique and len(used) == len(fields) and all(conds[f][0] == "eq" for f in used):
        score += 100  # a point lookup beats everything
    plan.exact = complete and used == set(conds)
    return plan, score


def _order_for_index(ix: IndexMeta, eq_used: int, sort: list[tuple[str, int]]) -> str | None:
    """'ASC'/'DESC' when rows in this index's byte order already follow ``sort``."""
    fields = ix.fields
    remaining = [(f, d) for f, d in sort if f not in fields[:eq_used]]
    if not remaining:
        return "ASC"
    directions = {d for _, d in remaining}
    if len(directions) != 1:
        return None
    wanted = [f for f, _ in remaining]
    if fields[eq_used:eq_used + len(wanted)] != wanted:
        return None
    return "ASC" if directions == {1} else "DESC"
