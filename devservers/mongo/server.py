"""Wire-protocol front end of the local MongoDB dev server (built on ``mockupdb``).

``mockupdb`` accepts connections (one thread each), parses OP_MSG / OP_QUERY
and sends replies; this module answers the handshake (``hello``/``isMaster``
with the fields pymongo 4.x requires), keeps per-connection authentication
state, checks authorization, dispatches every command to
:class:`~devservers.mongo.commands.CommandHandler` and turns failures into
mongod-shaped error replies. It also runs the TTL sweeper thread. Not the
storage or the query semantics.
"""

from __future__ import annotations

import errno
import logging
import struct
import threading
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bson
import bson.errors
import mockupdb
from bson.codec_options import CodecOptions

from devservers.mongo.auth import AuthManager, ConnectionAuth
from devservers.mongo.commands import MAX_BSON_SIZE, CommandHandler
from devservers.mongo.errors import MongoError
from devservers.mongo.storage import Storage

log = logging.getLogger("devservers.mongo")

MAX_MESSAGE_SIZE = 48_000_000
MAX_WRITE_BATCH = 100_000
MAX_WIRE_VERSION = 21
_MORE_TO_COME = 2
_HELLO_NAMES = {"hello", "ismaster"}
_NO_SUCH = "no such command: '{}'"


def _receive_exactly(sock: Any, length: int) -> bytes:
    """Faster drop-in for mockupdb's receive loop (no quadratic bytes concatenation)."""
    buf = bytearray(length)
    view = memoryview(buf)
    got = 0
    while got < length:
        n = sock.recv_into(view[got:], length - got)
        if n == 0:
            raise OSError(errno.ECONNRESET, "closed")
        got += n
    return bytes(buf)


def _cheap_repr(self: Any) -> str:
    return f"{type(self).__name__}(...)"


mockupdb.mock_server_receive = _receive_exactly
# Plain dicts decode ~30 % faster than mockupdb's OrderedDict and keep insertion order.
mockupdb.CODEC_OPTIONS = CodecOptions(document_class=dict)
# mockupdb formats every request and reply with repr() for its (disabled) verbose log even when
# not verbose; for a 100,000-document bulk that costs seconds, so keep repr() cheap.
for _cls in (mockupdb.Request, mockupdb.OpQuery, mockupdb.Reply, mockupdb.OpReply,
             mockupdb.OpMsgReply):
    _cls.__repr__ = _cheap_repr


_INT32 = struct.Struct("<i").unpack_from
_ORIGINAL_OP_MSG_UNPACK = mockupdb.OpMsg.unpack.__func__


class RawDocList(list):
    """An OP_MSG document sequence, decoded, plus each document's bytes as the client sent them.

    ``insert`` stores those bytes as they are instead of encoding the documents again.
    """

    raws: list[bytes]


def _document_sequences(msg: bytes) -> dict[str, list[bytes]]:
    """Kind-1 sections of an OP_MSG body: identifier -> the raw BSON of each document."""
    out: dict[str, list[bytes]] = {}
    pos, end = 4, len(msg)
    while pos < end - 4:
        kind = msg[pos]
        pos += 1
        size = _INT32(msg, pos)[0]
        if kind == 1:
            name_end = msg.index(b"\x00", pos + 4)
            identifier = msg[pos + 4:name_end].decode("utf-8")
            docs = []
            doc_pos = name_end + 1
            stop = pos + size
            while doc_pos < stop:
                doc_len = _INT32(msg, doc_pos)[0]
                docs.append(msg[doc_pos:doc_pos + doc_len])
                doc_pos += doc_len
            out[identifier] = docs
        elif kind != 0:
            break
        pos += size
    return out


def _unpack_op_msg(cls: Any, msg: bytes, client: Any, server: Any, request_id: int) -> Any:
    """mockupdb's OP_MSG parser, keeping the raw bytes of document sequences (insert docs)."""
    request = _ORIGINAL_OP_MSG_UNPACK(cls, msg, client, server, request_id)
    for identifier, raws in _document_sequences(msg).items():
        docs = request.doc.get(identifier)
        if isinstance(docs, list) and len(docs) == len(raws):
            wrapped = RawDocList(docs)
            wrapped.raws = raws
            request.doc[identifier] = wrapped
    return request


mockupdb.OpMsg.unpack = classmethod(_unpack_op_msg)


class LocalMongoServer:
    """One listening dev server: storage, command handler, auth and TTL sweeper."""

    def __init__(self, data_dir: Path | str, host: str = "127.0.0.1", port: int = 27017,
                 auth: bool = False, ttl_interval: float = 60.0) -> None:
        self.storage = Storage(data_dir)
        self.handler = CommandHandler(self.storage)
        self.auth = AuthManager(self.storage, enabled=auth)
        self.ttl_interval = ttl_interval
        self.started = time.monotonic()
        self._conn_auth: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._conn_ids = iter(range(1, 1 << 62))
        self._mock = mockupdb.MockupDB(port=port, request_timeout=int(1e6))
        self._mock._address = (host, port)
        self._mock.autoresponds(self._respond)
        self._stop = threading.Event()
        self._ttl_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._mock.port

    @property
    def host(self) -> str:
        return self._mock.host

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def start(self) -> None:
        self._mock.run()
        self._ttl_thread = threading.Thread(target=self._ttl_loop, name="ttl-sweeper",
                                            daemon=True)
        self._ttl_thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self._mock.stop()
        finally:
            self.storage.close()

    # ------------------------------------------------------------------ TTL
    def _ttl_loop(self) -> None:
        while not self._stop.wait(self.ttl_interval):
            try:
                removed = self.storage.expire_ttl(datetime.now(UTC))
                if removed:
                    log.info("ttl sweep removed %d documents", removed)
            except Exception:  # keep sweeping; a broken sweep must not kill the server
                log.exception("ttl sweep failed")

    # ------------------------------------------------------------------ requests
    def _state(self, request: Any) -> ConnectionAuth:
        sock = request._client
        state = self._conn_auth.get(sock)
        if state is None:
            state = ConnectionAuth.of_socket(next(self._conn_ids), sock)
            self._conn_auth[sock] = state
        return state

    def _respond(self, request: Any) -> bool:
        """mockupdb autoresponder: answers every request (returns True)."""
        if isinstance(request, mockupdb.OpGetMore | mockupdb.OpKillCursors) or not getattr(
            request, "is_command", False
        ):
            if not (request.flags & _MORE_TO_COME if isinstance(request, mockupdb.OpMsg)
                    else False):
                request.fail("legacy opcodes are not supported by the local dev server")
            return True
        cmd = dict(request.doc)
        if isinstance(request, mockupdb.OpMsg):
            db = cmd.get("$db", "admin")
        else:
            db = (request.namespace or "admin.$cmd").split(".", 1)[0]
            if "$query" in cmd:
                cmd = dict(cmd["$query"])
        reply = self.execute(db, cmd, self._state(request))
        no_reply = isinstance(request, mockupdb.OpMsg) and request.flags & _MORE_TO_COME
        if not no_reply:
            try:
                request.replies(reply)
            except (bson.errors.InvalidDocument, OverflowError, ValueError) as exc:
                log.exception("cannot encode the reply to %s", next(iter(cmd), "?"))
                request.replies(MongoError(10334, "BSONObjectTooLarge" if isinstance(
                    exc, OverflowError) else "InternalError",
                    f"cannot encode reply: {exc}").to_reply())
        return True

    def execute(self, db: str, cmd: dict, state: ConnectionAuth) -> dict:
        """Run one command and return its reply; never raises."""
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
            return method(db, cmd)
        except MongoError as exc:
            return exc.to_reply()
        except Exception as exc:
            log.exception("command %s failed", name)
            return MongoError(1, "InternalError", f"{type(exc).__name__}: {exc}").to_reply()
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            if log.isEnabledFor(logging.DEBUG):
                log.debug("cmd=%s db=%s ms=%.1f conn=%s", name, db, elapsed, state.conn_id)

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



