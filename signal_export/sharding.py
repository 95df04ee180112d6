"""Sharding plan for a MongoDB sharded cluster: which collection is sharded on which key, why.

Pure functions build the plan (:func:`plan_sharding`: the ``enableSharding`` and
``shardCollection`` commands, the index each shard key needs, whether the existing
unique indexes allow the key) and size it (:func:`yearly_footprint`);
:func:`apply_sharding` runs it through a ``mongos`` (``hello.msg == "isdbgrid"``),
idempotently: a collection already sharded on the planned key is left alone, one
sharded on another key is a one-line error (resharding is a deliberate act). On a
server that is not a ``mongos`` it refuses, unless asked to create only the
shard-key indexes (a replica set made ready for sharding later). The reasoning and
the numbers are in ``docs/SCALING.md``. Not for: adding shards, zones or balancer
settings (cluster administration, ``sh.*`` in ``mongosh``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import SON, ObjectId
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from signal_export.contract import SIGNAL_KEY, timeframe_delta
from signal_export.errors import BridgeError
from signal_export.monitoring.writeback import POSITIONS_COLLECTION, TRADES_COLLECTION
from signal_export.settings import Settings

log = logging.getLogger(__name__)

#: ``hello``'s ``msg`` on a ``mongos`` (and only there).
MONGOS_MSG = "isdbgrid"
#: Name of the index :func:`apply_sharding` creates when no index supports a shard key.
SHARD_KEY_INDEX = "shard_key"
#: ``shardCollection`` / ``enableSharding`` on a namespace that already has it (older servers).
ALREADY_INITIALIZED = 23

#: The signal collections' shard key: the signal key's fields in the signal key's order, so the
#: unique signal index *is* the shard key index (no second index). Spelled out (not derived
#: from SIGNAL_KEY) on purpose: a change of the signal key must fail the plan, not silently
#: move the shard key (resharding a live collection is an operation, not a refactor).
SIGNAL_SHARD_KEY: tuple[str, ...] = ("strategy_id", "pair", "timeframe", "ts")
#: ``crypto_market_1m``: its unique ``{symbol, datetime}`` index.
MARKET_1M_SHARD_KEY: tuple[str, ...] = ("symbol", "datetime")


class ShardingError(BridgeError, RuntimeError):
    """The plan cannot be applied here; one line naming the collection, key or server."""


@dataclass(frozen=True)
class ShardedCollection:
    """One collection to shard: its ranged key and the unique index the key must be a prefix of."""

    db: str
    collection: str
    key: tuple[str, ...]
    #: Fields of the unique index the application relies on (``()``: none to keep).
    unique_index: tuple[str, ...]
    why: str

    @property
    def namespace(self) -> str:
        return f"{self.db}.{self.collection}"

    def key_doc(self) -> SON:
        """The shard key pattern, ranged (``1``) on every field, in order."""
        return SON((name, ASCENDING) for name in self.key)

    def shard_command(self) -> SON:
        """``shardCollection``; ``unique`` when the shard key *is* the unique index."""
        cmd = SON([("shardCollection", self.namespace), ("key", self.key_doc())])
        if self.unique_index and tuple(self.unique_index) == tuple(self.key):
            cmd["unique"] = True
        return cmd


@dataclass(frozen=True)
class UnshardedCollection:
    """A collection left on its database's primary shard, and why that is enough."""

    db: str
    collection: str
    why: str


@dataclass(frozen=True)
class ShardingPlan:
    sharded: tuple[ShardedCollection, ...]
    unsharded: tuple[UnshardedCollection, ...]

    def databases(self) -> list[str]:
        return list(dict.fromkeys(s.db for s in self.sharded))

    def commands(self) -> list[SON]:
        """The admin commands, in order: ``enableSharding`` per database, then each collection."""
        return ([SON([("enableSharding", db)]) for db in self.databases()]
                + [s.shard_command() for s in self.sharded])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``--plan``): commands, the index each key needs, what stays unsharded."""
        return {
            "commands": [dict(c) | ({"key": dict(c["key"])} if "key" in c else {})
                         for c in self.commands()],
            "sharded": {s.namespace: {"key": dict(s.key_doc()), "why": s.why}
                        for s in self.sharded},
            "unsharded": {f"{u.db}.{u.collection}": u.why for u in self.unsharded},
        }


def unique_index_compatible(shard_key: Sequence[str], index_fields: Sequence[str]) -> bool:
    """MongoDB's rule: a unique index on a sharded collection must start with the shard key's
    fields (each shard can then check uniqueness alone), or be the ``_id`` index."""
    return list(index_fields)[:1] == ["_id"] or supports_shard_key(shard_key, index_fields)


def supports_shard_key(shard_key: Sequence[str], index_fields: Sequence[str]) -> bool:
    """Whether an index can back the shard key: the key's fields are its prefix."""
    return list(index_fields)[:len(shard_key)] == list(shard_key)


def plan_sharding(settings: Settings, signals_db: str | None = None,
                  market_db: str | None = None) -> ShardingPlan:
    """The plan for the bridge's collections; raises :class:`ShardingError` if a shard key no
    longer leads its collection's unique index (e.g. after a change of the signal key)."""
    sdb, mdb = signals_db or settings.db, market_db or settings.market_db
    signal_why = ("reads are one strategy/timeframe over a ts window across pairs, writes one "
                  "bar across pairs: ranged on the signal key spreads a bar's writes over the "
                  "pairs' chunks and targets reads by pair; equals the unique index")
    sharded = (
        ShardedCollection(sdb, settings.collection, SIGNAL_SHARD_KEY, tuple(SIGNAL_KEY),
                          signal_why),
        ShardedCollection(sdb, settings.history_collection_name, SIGNAL_SHARD_KEY, (),
                          "replaced versions of signals: read and written like the signals; "
                          "its unique (key, version, content_hash) index starts with the key"),
        ShardedCollection(mdb, settings.market_1m_collection, MARKET_1M_SHARD_KEY,
                          MARKET_1M_SHARD_KEY,
                          "minute bars: one write per symbol per minute, reads per symbol range;"
                          " equals the unique {symbol, datetime} index"),
    )
    for spec in sharded:
        if spec.unique_index and not unique_index_compatible(spec.key, spec.unique_index):
            raise ShardingError(
                f"{spec.namespace}: shard key {list(spec.key)} is not a prefix of the unique "
                f"index {list(spec.unique_index)}; MongoDB cannot enforce that index on a "
                "sharded collection: choose a new shard key (docs/SCALING.md) before sharding")
    small = "small (thousands of documents a year): stays on the database's primary shard"
    unsharded = (
        UnshardedCollection(sdb, settings.export_runs_collection,
                            "one audit record per export run (~0.7 KB; a 1m job: ~0.35 GB a "
                            "year): stays on the primary shard"),
        UnshardedCollection(mdb, settings.market_1d_collection,
                            "daily bars: 365 per symbol a year (1.8 M documents at 5,000 "
                            "pairs): stays on the primary shard"),
        UnshardedCollection(sdb, TRADES_COLLECTION, small),
        UnshardedCollection(sdb, POSITIONS_COLLECTION, small),
    )
    return ShardingPlan(sharded, unsharded)


# --- sizes (docs/SCALING.md) ------------------------------------------------

def bars_per_year(timeframe: str) -> int:
    """Bars in a 365-day year (1m: 525,600; 1h: 8,760)."""
    return int(365 * 86_400 // timeframe_delta(timeframe).total_seconds())


#: Bytes of a RecordId in an index entry (ids up to ~2^36) and of the WiredTiger cell headers
#: and type bits around each key/value pair.
RECORD_ID_BYTES, ENTRY_OVERHEAD_BYTES = 5, 3


def keystring_bytes(values: Sequence[Any]) -> int:
    """Size of one index entry in MongoDB's KeyString form, without prefix compression.

    A string is a type byte, its UTF-8 bytes and a terminator; a date or an ObjectId a
    type byte and 8 / 12 bytes; then the end byte, the RecordId and the cell headers.
    An upper bound: WiredTiger's prefix compression stores only what differs from the
    previous key (mostly the low bytes of ``ts``) once pages are written.
    """
    total = 1 + RECORD_ID_BYTES + ENTRY_OVERHEAD_BYTES
    for value in values:
        if isinstance(value, str):
            total += 2 + len(value.encode())
        elif isinstance(value, datetime):
            total += 9
        elif isinstance(value, ObjectId):
            total += 13
        else:
            raise TypeError(f"keystring_bytes: no size rule for {type(value).__name__}")
    return total


@dataclass(frozen=True)
class Footprint:
    """One strategy's documents and index bytes over ``days`` at one signal per pair per bar."""

    pairs: int
    timeframe: str
    days: int
    documents: int
    data_bytes: int
    key_index_bytes: int
    id_index_bytes: int
    ttl_index_bytes: int

    @property
    def index_bytes(self) -> int:
        return self.key_index_bytes + self.id_index_bytes + self.ttl_index_bytes


def yearly_footprint(pairs: int, timeframe: str, doc_bytes: int, key_entry_bytes: int, *,
                     days: int = 365, ttl: bool = True) -> Footprint:
    """Documents, BSON bytes and index bytes (unique key, ``_id``, TTL on ``ts``) kept for
    ``days`` (a year by default; a TTL's retention otherwise)."""
    docs = pairs * bars_per_year(timeframe) * days // 365
    id_entry = keystring_bytes([ObjectId()])
    ttl_entry = keystring_bytes([datetime(2026, 1, 1)]) if ttl else 0
    return Footprint(pairs, timeframe, days, docs, docs * doc_bytes, docs * key_entry_bytes,
                     docs * id_entry, docs * ttl_entry)


# --- applying it ------------------------------------------------------------


def server_kind(client: MongoClient) -> str:
    """``hello``'s ``msg`` (``"isdbgrid"`` on a mongos), or the empty string."""
    return str(client.admin.command("hello").get("msg") or "")


def require_mongos(client: MongoClient) -> None:
    """Refuse (one line) unless ``client`` talks to a mongos."""
    msg = server_kind(client)
    if msg != MONGOS_MSG:
        raise ShardingError(
            f"the admin URI does not point at a mongos (hello.msg={msg or None!r}, expected "
            f"{MONGOS_MSG!r}): sharding needs a sharded cluster's router; use --shard-indexes-"
            "only to create just the shard-key indexes on this server")


def _fields(key: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> list[str]:
    items = key.items() if isinstance(key, Mapping) else key
    return [name for name, _ in items]


def ensure_shard_key_index(coll: Collection, spec: ShardedCollection) -> str:
    """Check the unique indexes against the key, and create the key's index if none supports it.

    The supporting index is usually there already (the store's unique index); a unique index
    that does not start with the shard key would stop ``shardCollection``, so it is named here.
    """
    info = coll.index_information()
    bad = sorted(name for name, ix in info.items()
                 if ix.get("unique") and not unique_index_compatible(spec.key, _fields(ix["key"])))
    if bad:
        raise ShardingError(f"{spec.namespace}: unique index(es) {bad} do not start with the "
                            f"shard key {list(spec.key)}; MongoDB cannot keep them unique once "
                            "sharded: drop or rebuild them first (docs/SCALING.md)")
    for name, ix in info.items():
        if (supports_shard_key(spec.key, _fields(ix["key"])) and not ix.get("sparse")
                and "partialFilterExpression" not in ix):
            return f"{spec.namespace}: shard key {list(spec.key)} supported by index {name}"
    coll.create_index(list(spec.key_doc().items()), name=SHARD_KEY_INDEX)
    return f"{spec.namespace}: created index {SHARD_KEY_INDEX} {list(spec.key)}"


def sharded_keys(client: MongoClient, namespaces: Sequence[str]) -> dict[str, list[str]]:
    """``{namespace: shard key fields}`` of those already sharded (``config.collections``)."""
    out = {}
    for doc in client["config"]["collections"].find({"_id": {"$in": list(namespaces)}},
                                                   {"key": 1, "dropped": 1}):
        if not doc.get("dropped"):  # servers before 5.0 keep dropped namespaces, flagged
            out[doc["_id"]] = _fields(doc["key"])
    return out


def _same_key(spec: ShardedCollection, current: list[str]) -> str:
    if current != list(spec.key):
        raise ShardingError(f"{spec.namespace} is already sharded on {current}, not on the "
                            f"planned {list(spec.key)}: change it deliberately with "
                            "reshardCollection (docs/SCALING.md)")
    return f"{spec.namespace}: already sharded on {current}"


def apply_sharding(client: MongoClient, plan: ShardingPlan, *,
                   indexes_only: bool = False) -> list[str]:
    """Apply ``plan`` through a mongos, idempotently; one line per action taken or found.

    ``indexes_only``: create only the indexes the shard keys need (allowed on any server;
    on a mongos nothing is sharded either). Otherwise a non-mongos is refused before
    anything is created.
    """
    if not indexes_only:
        require_mongos(client)
    lines = [ensure_shard_key_index(client[s.db][s.collection], s) for s in plan.sharded]
    if indexes_only:
        return lines
    for db in plan.databases():
        try:
            client.admin.command("enableSharding", db)
        except OperationFailure as exc:
            if exc.code != ALREADY_INITIALIZED:  # "already enabled" on servers before 6.0
                raise
    current = sharded_keys(client, [s.namespace for s in plan.sharded])
    for spec in plan.sharded:
        if spec.namespace in current:
            lines.append(_same_key(spec, current[spec.namespace]))
            continue
        try:
            client.admin.command(spec.shard_command())
        except OperationFailure as exc:  # sharded concurrently, maybe on another key
            now = sharded_keys(client, [spec.namespace]).get(spec.namespace)
            if exc.code != ALREADY_INITIALIZED or now is None:
                raise
            lines.append(_same_key(spec, now))
            continue
        lines.append(f"{spec.namespace}: sharded on {list(spec.key)}")
    for line in lines:
        log.info("sharding: %s", line)
    return lines
