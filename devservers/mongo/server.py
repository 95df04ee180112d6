"""Wire-protocol front end of the local MongoDB dev server: a small threaded socket server.

Accepts TCP connections (one thread each, at most ``max_connections``; over
the cap a new connection is closed at once), reads MongoDB wire messages,
parses OP_MSG (kind-0 body and kind-1 document sequences, whose raw BSON is
kept for ``insert``) and OP_QUERY (the legacy handshake), answers the
handshake (``hello``/``isMaster`` with the fields pymongo 4.x requires), keeps
per-connection authentication state, checks authorization, dispatches every
command to :class:`~devservers.mongo.commands.CommandHandler` and turns
failures into mongod-shaped error replies. Requests of different connections
run concurrently: nothing here is locked across a request (writes serialise
in storage, reads run on their own snapshot).

Limits, all enforced before any memory is committed to a message: a declared
length outside [16, ``MAX_MESSAGE_SIZE``] closes the connection without
reading the body, a body is buffered as it arrives (never preallocated at its
declared size), a client that stops in the middle of a message for
``message_timeout`` seconds is dropped, an idle connection after
``idle_timeout`` (generous: drivers keep idle pooled connections). Read
commands honour ``maxTimeMS`` (code 50) and stop when their client hangs up.
It also runs the TTL sweeper thread. Not the storage or the query semantics.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import select
import socket
import struct
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
import bson.errors

from devservers.mongo.auth import AuthManager, ConnectionAuth
from devservers.mongo.commands import MAX_BSON_SIZE, CommandHandler
from devservers.mongo.errors import MongoError
from devservers.mongo.storage import DECODE_OPTS, Operation, Storage, socket_open

log = logging.getLogger("devservers.mongo")

MAX_MESSAGE_SIZE = 48_000_000
MAX_WRITE_BATCH = 100_000
MAX_WIRE_VERSION = 21
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_IDLE_TIMEOUT = 1800.0
"""Seconds a connection may sit between messages (drivers pool idle connections)."""
DEFAULT_MESSAGE_TIMEOUT = 30.0
"""Seconds without a byte in the middle of a message (or a reply not read) before dropping."""
STOP_GRACE = 1.2
"""Seconds ``stop()`` waits for interrupted requests to finish before closing storage."""

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
_CHECKSUM_PRESENT = 1
_MORE_TO_COME = 2
_EXHAUST_ALLOWED = 1 << 16
_KNOWN_MSG_FLAGS = _CHECKSUM_PRESENT | _MORE_TO_COME | _EXHAUST_ALLOWED
_QUERY_FAILURE = 2
_FIRST_BUFFER = 64 * 1024
_DECODE_CHUNK = 500
_HEADER = struct.Struct("<iiii")
_INT32 = struct.Struct("<i").unpack_from
_UINT32 = struct.Struct("<I").unpack_from
_OP_REPLY_FIELDS = struct.Struct("<iqii").pack
_HELLO_NAMES = {"hello", "ismaster"}
_NO_SUCH = "no such command: '{}'"
#: Reads that honour ``maxTimeMS`` and stop when their client disconnects.
_LIMITED_READS = {"find", "aggregate", "count", "distinct"}
_MAX_TIME_LIMIT = 2_147_483_647
_KILL_COUNTERS = {50: "killed_max_time", 279: "killed_client_disconnect",
                  11600: "killed_shutdown"}


class RawDocList(list):
    """An OP_MSG document sequence, decoded, plus each document's bytes as the client sent them.

    ``insert`` stores those bytes as they are instead of encoding the documents again.
    """

    raws: list[bytes]


class ProtocolError(Exception):
    """The client broke the wire protocol (or a limit): its connection is closed."""


def parse_op_msg(body: bytes) -> tuple[int, dict]:
    """(flags, command) of an OP_MSG body; kind-1 sections become :class:`RawDocList` fields."""
    if len(body) < 5:
        raise ProtocolError("OP_MSG too short")
    flags = _UINT32(body, 0)[0]
    if flags & ~_KNOWN_MSG_FLAGS:
        raise ProtocolError(f"OP_MSG flags have reserved bits set: 0x{flags:x}")
    end = len(body) - 4 if flags & _CHECKSUM_PRESENT else len(body)
    pos = 4
    cmd: dict | None = None
    sequences: list[tuple[str, list, list[bytes]]] = []
    try:
        while pos < end:
            kind = body[pos]
            pos += 1
            if pos + 4 > end:
                raise ProtocolError("OP_MSG section truncated")
            size = _INT32(body, pos)[0]
            if size < 5 or pos + size > end:
                raise ProtocolError("OP_MSG section size out of bounds")
            if kind == 0:
                if cmd is not None:
                    raise ProtocolError("OP_MSG with more than one body section")
                cmd = bson.decode(body[pos:pos + size], DECODE_OPTS)
            elif kind == 1:
                stop = pos + size
                name_end = body.find(b"\x00", pos + 4, stop)
                if name_end < 0:
                    raise ProtocolError("OP_MSG document sequence without identifier")
                identifier = body[pos + 4:name_end].decode("utf-8")
                raws = []
                docs: list = []
                doc_pos = chunk_start = name_end + 1
                view = memoryview(body)
                while doc_pos < stop:
                    doc_len = _INT32(body, doc_pos)[0] if doc_pos + 4 <= stop else -1
                    if doc_len < 5 or doc_pos + doc_len > stop:
                        raise ProtocolError("OP_MSG document sequence malformed")
                    raws.append(body[doc_pos:doc_pos + doc_len])
                    doc_pos += doc_len
                    if len(raws) % _DECODE_CHUNK == 0 or doc_pos >= stop:
                        # in chunks: one decode_all of a 48 MB batch would hold the GIL
                        # (and every other connection) for a second
                        docs.extend(bson.decode_all(view[chunk_start:doc_pos], DECODE_OPTS))
                        chunk_start = doc_pos
                sequences.append((identifier, docs, raws))
            else:
                raise ProtocolError(f"OP_MSG section kind {kind} unknown")
            pos += size
    except (bson.errors.InvalidBSON, UnicodeDecodeError, IndexError) as exc:
        raise ProtocolError(f"OP_MSG with invalid BSON: {exc}") from None
    if cmd is None:
        raise ProtocolError("OP_MSG without a body section")
    for identifier, docs, raws in sequences:
        wrapped = RawDocList(docs)
        wrapped.raws = raws
        cmd[identifier] = wrapped
    return flags, cmd


def parse_op_query(body: bytes) -> tuple[str, dict]:
    """(namespace, query document) of an OP_QUERY body."""
    try:
        name_end = body.index(b"\x00", 4)
        namespace = body[4:name_end].decode("utf-8")
        docs = bson.decode_all(body[name_end + 9:], DECODE_OPTS)
    except (ValueError, bson.errors.InvalidBSON, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed OP_QUERY: {exc}") from None
    if not docs:
        raise ProtocolError("OP_QUERY without a query document")
    return namespace, docs[0]


def _max_time_ms(cmd: dict) -> float | None:
    value = cmd.get("maxTimeMS")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise MongoError(2, "BadValue", f"maxTimeMS must be a number, not {value!r}")
    if value < 0 or value > _MAX_TIME_LIMIT:
        raise MongoError(2, "BadValue", f"{value} value for maxTimeMS is out of range "
                         f"[0, {_MAX_TIME_LIMIT}]")
    return float(value) or None


class LocalMongoServer:
    """One listening dev server: storage, command handler, auth, connections, TTL sweeper."""

    def __init__(self, data_dir: Path | str, host: str = "127.0.0.1", port: int = 27017,
                 auth: bool = False, ttl_interval: float = 60.0,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 message_timeout: float = DEFAULT_MESSAGE_TIMEOUT) -> None:
        self.storage = Storage(data_dir)
        self.handler = CommandHandler(self.storage)
        self.auth = AuthManager(self.storage, enabled=auth)
        self.ttl_interval = ttl_interval
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.message_timeout = message_timeout
        self.started = time.monotonic()
        self._address = (host, port)
        self._listener: socket.socket | None = None
        self._conn_ids = itertools.count(1)
        self._reply_ids = itertools.count(1)
        self._connections: dict[socket.socket, threading.Thread | None] = {}
        self._connections_lock = threading.Lock()
        self._refused = 0
        self._refused_logged = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def start(self) -> None:
        host, port = self._address
        try:  # IPv4 first (as before), IPv6 for an IPv6-only host such as ::1
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM, 0,
                                       socket.AI_PASSIVE)
        except socket.gaierror:
            infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                       socket.AI_PASSIVE)
        family, socktype, proto, _, sockaddr = infos[0]
        listener = socket.socket(family, socktype, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(sockaddr)
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._address = (host, listener.getsockname()[1])
        for target, name in ((self._accept_loop, "accept"), (self._ttl_loop, "ttl-sweeper")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop accepting, interrupt running requests, close connections and storage.

        Takes about ``STOP_GRACE`` seconds at most: a long scan is interrupted, an open
        write transaction rolls back (committed data stays in the WAL).
        """
        deadline = time.monotonic() + STOP_GRACE
        self._stop.set()
        self.storage.shutdown()
        if self._listener is not None:
            self._listener.close()
        with self._connections_lock:
            conns = list(self._connections.items())
        for sock, _thread in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # the accept and TTL threads are daemons that end at their next wake-up
        for thread in [t for _, t in conns if t is not None]:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.storage.close(timeout=max(0.05, deadline - time.monotonic()))

    # ------------------------------------------------------------------ TTL
    def _ttl_loop(self) -> None:
        while not self._stop.wait(self.ttl_interval):
            try:
                removed = self.storage.expire_ttl(datetime.now(UTC))
                if removed:
                    log.info("ttl sweep removed %d documents", removed)
            except Exception:  # keep sweeping; a broken sweep must not kill the server
                if not self._stop.is_set():
                    log.exception("ttl sweep failed")

    # ------------------------------------------------------------------ connections
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stop.is_set():
            try:
                if not select.select([listener], [], [], 0.25)[0]:
                    continue
                sock, peer = listener.accept()
            except (OSError, ValueError):
                if self._stop.is_set():
                    return
                time.sleep(0.05)  # e.g. EMFILE: do not spin
                continue
            with self._connections_lock:
                over = len(self._connections) >= self.max_connections
                if not over:
                    self._connections[sock] = None
            if over:
                self._refuse(sock, peer)
                continue
            thread = threading.Thread(target=self._serve, args=(sock, peer), daemon=True,
                                      name=f"conn-{peer[1] if len(peer) > 1 else '?'}")
            with self._connections_lock:
                self._connections[sock] = thread
            try:
                thread.start()
            except RuntimeError:  # cannot start a thread: out of resources
                log.error("cannot start a connection thread; closing %s", peer)
                self._forget(sock)

    def _refuse(self, sock: socket.socket, peer: Any) -> None:
        """Over the connection cap: close at once (as mongod does), log at most every 10 s."""
        sock.close()
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= 10.0:
            self._refused_logged = now
            log.warning("connection refused because too many open connections: %d "
                        "(--max-connections); %d refused so far, last from %s",
                        self.max_connections, self._refused, peer)

    def _forget(self, sock: socket.socket) -> None:
        with self._connections_lock:
            self._connections.pop(sock, None)
        with contextlib.suppress(OSError):
            sock.close()

    def _serve(self, sock: socket.socket, peer: Any) -> None:
        """One connection: read a message, answer it, until the client leaves or is dropped."""
        conn_id = next(self._conn_ids)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = ConnectionAuth.of_socket(conn_id, sock)
            alive = functools.partial(socket_open, sock)
            while not self._stop.is_set():
                message = self._receive(sock)
                if message is None:
                    break
                request_id, opcode, body = message
                reply = self._dispatch(request_id, opcode, body, state, alive)
                del body, message
                if reply is not None:
                    sock.settimeout(self.message_timeout)
                    sock.sendall(reply)
        except ProtocolError as exc:
            if not self._stop.is_set():
                log.warning("closing connection %d from %s: %s", conn_id, peer, exc)
        except OSError as exc:
            if not self._stop.is_set():
                log.debug("connection %d from %s ended: %s", conn_id, peer, exc)
        except Exception:  # a bug here must cost one connection, never the server
            log.exception("connection %d from %s failed", conn_id, peer)
        finally:
            self._forget(sock)

    def _receive(self, sock: socket.socket) -> tuple[int, int, bytes] | None:
        """(request id, opcode, body) of the next message; None when the client is gone/idle."""
        header = bytearray(16)
        view = memoryview(header)
        got = 0
        sock.settimeout(self.idle_timeout)
        while got < 16:
            try:
                n = sock.recv_into(view[got:])
            except TimeoutError:
                if got == 0:
                    log.info("closing connection idle for %.0f s", self.idle_timeout)
                    return None
                raise ProtocolError(f"no data for {self.message_timeout:g} s in the middle "
                                    "of a message header") from None
            if n == 0:
                if got == 0:
                    return None
                raise ProtocolError("client closed in the middle of a message")
            if got == 0:
                sock.settimeout(self.message_timeout)
            got += n
        length, request_id, _response_to, opcode = _HEADER.unpack(header)
        if length < 16 or length > MAX_MESSAGE_SIZE:
            # refused before reading (or allocating) the body, as mongod does
            raise ProtocolError(f"message length {length} outside [16, {MAX_MESSAGE_SIZE}]")
        return request_id, opcode, self._receive_body(sock, length - 16)

    def _receive_body(self, sock: socket.socket, length: int) -> bytes:
        """``length`` bytes, buffered as they arrive: memory follows the bytes received."""
        buf = bytearray(min(length, _FIRST_BUFFER))
        got = 0
        while got < length:
            if got == len(buf):
                bigger = bytearray(min(length, 2 * len(buf)))
                bigger[:got] = buf
                buf = bigger
            try:
                with memoryview(buf) as view:
                    n = sock.recv_into(view[got:])
            except TimeoutError:
                raise ProtocolError(f"no data for {self.message_timeout:g} s in the middle of "
                                    f"a message ({got} of {length} bytes)") from None
            if n == 0:
                raise ProtocolError("client closed in the middle of a message")
            got += n
        return bytes(buf)

    # ------------------------------------------------------------------ requests
    def _dispatch(self, request_id: int, opcode: int, body: bytes, state: ConnectionAuth,
                  alive: Any) -> bytes | None:
        """The reply message to one request (None for moreToCome)."""
        if opcode == OP_MSG:
            flags, cmd = parse_op_msg(body)
            db = cmd.get("$db", "admin")
            if not isinstance(db, str):
                reply = MongoError(73, "InvalidNamespace", "$db is not a string").to_reply()
            else:
                reply = self.execute(db, cmd, state, alive)
            if flags & _MORE_TO_COME:
                return None
            return self._op_msg(request_id, reply, cmd)
        if opcode == OP_QUERY:
            namespace, cmd = parse_op_query(body)
            if not namespace.endswith(".$cmd"):
                return self._op_reply(request_id, {
                    "$err": "legacy opcodes are not supported by the local dev server",
                    "code": 352, "ok": 0.0}, _QUERY_FAILURE)
            if "$query" in cmd:
                cmd = dict(cmd["$query"])
            reply = self.execute(namespace[:-5] or "admin", cmd, state, alive)
            return self._op_reply(request_id, reply, 0, cmd)
        raise ProtocolError(f"unsupported opcode {opcode} (OP_MSG and OP_QUERY only)")

    def _encode(self, reply: dict, cmd: dict | None) -> bytes:
        try:
            return bson.encode(reply)
        except (bson.errors.InvalidDocument, OverflowError, ValueError) as exc:
            name = next(iter(cmd), "?") if cmd else "?"
            log.exception("cannot encode the reply to %s", name)
            return bson.encode(MongoError(
                10334, "BSONObjectTooLarge" if isinstance(exc, OverflowError)
                else "InternalError", f"cannot encode reply: {exc}").to_reply())

    def _op_msg(self, request_id: int, reply: dict, cmd: dict | None) -> bytes:
        doc = self._encode(reply, cmd)
        header = _HEADER.pack(16 + 5 + len(doc), next(self._reply_ids) & 0x7FFFFFFF,
                              request_id, OP_MSG)
        return header + b"\x00\x00\x00\x00\x00" + doc  # flags 0, section kind 0

    def _op_reply(self, request_id: int, reply: dict, flags: int,
                  cmd: dict | None = None) -> bytes:
        doc = self._encode(reply, cmd)
        header = _HEADER.pack(16 + 20 + len(doc), next(self._reply_ids) & 0x7FFFFFFF,
                              request_id, OP_REPLY)
        return header + _OP_REPLY_FIELDS(flags, 0, 0, 1) + doc

    def execute(self, db: str, cmd: dict, state: ConnectionAuth, alive: Any = None) -> dict:
        """Run one command and return its reply; never raises.

        ``find``/``aggregate``/``count``/``distinct`` run under an :class:`Operation`:
        ``maxTimeMS`` (code 50 MaxTimeMSExpired) and ``alive`` (False once the client
        hung up: the read stops instead of finishing for nobody).
        """
        if not cmd:
            return MongoError(59, "CommandNotFound", "no such command: ''").to_reply()
        name = next(iter(cmd))
        lname = name.lower()
        started = time.perf_counter()
        try:
            if lname in _HELLO_NAMES:
                return self._hello(cmd, state, legacy=lname == "ismaster")
            auth_reply = self.auth.handle(lname, db, cmd, state)
            if auth_reply is not None:
                return auth_reply
            method = self.handler.command_for(lname)
            if method is None:
                raise MongoError(59, "CommandNotFound", _NO_SUCH.format(name))
            self.auth.authorize(lname, db, cmd, state)
            if lname == "listdatabases":
                return self.handler.cmd_listdatabases(db, cmd, self.auth.readable_dbs(state))
            if lname not in _LIMITED_READS:
                return method(db, cmd)
            op = Operation.with_max_time(_max_time_ms(cmd), alive)
            with self.storage.operation(op):
                for attempt in range(3):
                    try:
                        return method(db, cmd)
                    except Exception as exc:
                        # a collection/index dropped between planning and reading: plan again
                        if attempt == 2 or not self.storage.schema_race(exc):
                            raise
                raise AssertionError("unreachable")
        except MongoError as exc:
            self._count_kill(exc)
            return exc.to_reply()
        except Exception as exc:
            interrupted = self.storage.interruption(exc)
            if interrupted is not None:
                self._count_kill(interrupted)
                return interrupted.to_reply()
            log.exception("command %s failed", name)
            return MongoError(1, "InternalError", f"{type(exc).__name__}: {exc}").to_reply()
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            if log.isEnabledFor(logging.DEBUG):
                log.debug("cmd=%s db=%s ms=%.1f conn=%s", name, db, elapsed, state.conn_id)

    def _count_kill(self, exc: MongoError) -> None:
        key = _KILL_COUNTERS.get(exc.code)
        if key is not None:
            self.storage.stats[key] += 1

    def _hello(self, cmd: dict, state: ConnectionAuth, legacy: bool) -> dict:
        reply: dict[str, Any] = {
            "helloOk": True,
            "isWritablePrimary": True,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": MAX_WRITE_BATCH,
            "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": state.conn_id,
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
        }
        if legacy:
            reply["ismaster"] = True
        mechs = cmd.get("saslSupportedMechs")
        if isinstance(mechs, str):
            supported = self.auth.supported_mechs(mechs)
            if supported is not None:
                reply["saslSupportedMechs"] = supported
        spec = cmd.get("speculativeAuthenticate")
        if isinstance(spec, dict) and self.auth.enabled:
            spec_reply = self.auth.speculative(spec, state)
            if spec_reply is not None:
                reply["speculativeAuthenticate"] = spec_reply
        reply["ok"] = 1.0
        return reply
