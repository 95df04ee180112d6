"""MongoDB access for signals and market data: connection, indexes, and the two reads.

Connecting (``tz_aware=True`` so datetimes come back UTC-aware), creating the
indexes of SPEC §2 idempotently (safe to call at every start), and reading
signals: the latest per (strategy, pair, timeframe) and a time range. Writing
signals is the exporter's job (:mod:`signal_export.exporter`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    InvalidURI,
    OperationFailure,
    PyMongoError,
)

from signal_export.contract import (
    CONTENT_HASH_FIELD,
    SIGNAL_FIELDS,
    SIGNAL_KEY,
    UPDATED_AT_FIELD,
    ensure_utc,
)
from signal_export.errors import BridgeError, ConfigError
from signal_export.logs import redact_uri
from signal_export.point_in_time import (
    AVAILABLE_AT_FIELD,
    SUPERSEDED_AT_FIELD,
    history_collection_name,
    versions_frame,
)
from signal_export.settings import Settings

log = logging.getLogger(__name__)

SIGNAL_KEY_INDEX = "signal_key"
SIGNAL_TTL_INDEX = "signal_ts_ttl"
#: The live bot's change read (signal_export/consumer/source.py): what a strategy id and
#: timeframe wrote since a watermark. Without it the bot reads its whole window every loop.
SIGNAL_CHANGES_INDEX = "signal_changes"
SIGNAL_CHANGES_KEY = [("strategy_id", ASCENDING), ("timeframe", ASCENDING),
                      (UPDATED_AT_FIELD, ASCENDING)]
#: History of replaced versions: one entry per (key, version, content hash), and retention.
HISTORY_KEY_INDEX = "signal_key_version"
HISTORY_TTL_INDEX = "superseded_at_ttl"
MARKET_1D_INDEX = "symbol_date"
MARKET_1M_INDEX = "symbol_datetime"
#: "The newest minutes of every symbol" is a time range: the scheduler's read.
MARKET_1M_TIME_INDEX = "datetime"
RUNS_STARTED_INDEX = "started_at"
RUNS_STRATEGY_INDEX = "strategy_ids_started_at"
RUNS_ID_INDEX = "run_id"


class MongoAccessError(BridgeError):
    """MongoDB refused us: wrong credentials, or the user lacks a privilege (one-line message)."""


#: MongoDB's codes for "who you are" and "what you may do".
AUTH_FAILED, UNAUTHORIZED = 18, 13


def explain_mongo_error(exc: BaseException, doing: str) -> BridgeError | None:
    """A one-line, redacted :class:`MongoAccessError` for auth failures, else ``None``."""
    code = getattr(exc, "code", None)
    if code == AUTH_FAILED:
        return MongoAccessError("MongoDB rejected the credentials (authentication failed, "
                                "code 18): check the user and password in the MongoDB URI")
    if code == UNAUTHORIZED:
        detail = redact_uri(str(getattr(exc, "details", {}).get("errmsg") or exc))
        return MongoAccessError(f"MongoDB user may not {doing} (code 13, unauthorized): "
                                f"{detail}; see docs/PRODUCTION.md for each user's roles")
    return None


def describe_start_failure(exc: PyMongoError, uri: str, doing: str) -> str:
    """One line saying what MongoDB did when a service started: unreachable, refused us, or
    refused the indexes (e.g. a unique index over stored duplicates) - never one for another."""
    if isinstance(exc, ConnectionFailure):
        return f"MongoDB {redact_uri(uri)} unreachable at start: {type(exc).__name__}"
    access = explain_mongo_error(exc, doing)
    if access is not None:
        return str(access)
    code = getattr(exc, "code", None)
    detail = redact_uri(str(getattr(exc, "details", None) and exc.details.get("errmsg") or exc))
    if code == 11000:
        return ("MongoDB refused to build the unique signal index: the collection holds "
                f"documents with the same key ({detail[:300]}); remove the duplicates first")
    return f"MongoDB refused to {doing} (code {code}): {detail[:300]}"


def connect(uri: str, *, app_name: str = "signal-export", timeout_ms: int = 5000,
            **kwargs: Any) -> MongoClient:
    """A client with UTC-aware datetimes and timeouts that fail fast instead of hanging.

    A malformed URI (bad port, an unescaped ``@`` or ``:`` in the password, an
    unknown option) is a :class:`ConfigError` with the reason, password redacted.
    """
    options: dict[str, Any] = {
        "tz_aware": True,
        "appname": app_name,
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "socketTimeoutMS": max(60_000, timeout_ms),
    }
    options.update(kwargs)
    log.debug("connecting to %s", redact_uri(uri))
    try:
        return MongoClient(uri, **options)
    except (InvalidURI, ConfigurationError, ValueError, TypeError) as exc:
        hint = (" (escape '@', ':' and '/' in the user and password with "
                "urllib.parse.quote_plus)" if uri.count("@") > 1 else "")
        raise ConfigError(f"invalid MongoDB URI: {redact_uri(str(exc))}{hint}") from None


def signals_collection(client: MongoClient, settings: Settings) -> Collection:
    return client[settings.db][settings.collection]


def runs_collection(client: MongoClient, settings: Settings) -> Collection:
    return client[settings.db][settings.export_runs_collection]


def history_collection(client: MongoClient, settings: Settings) -> Collection:
    """Where the exporter keeps replaced signal versions (``EXT_SIG_HISTORY_COLLECTION``)."""
    return client[settings.db][settings.history_collection_name]


def _index_info(coll: Collection) -> dict[str, dict[str, Any]]:
    return dict(coll.index_information())


def _ensure_ttl(coll: Collection, name: str, field: str, seconds: int | None) -> list[str]:
    """A TTL index ``name`` on ``field`` with ``seconds``, recreated when the value changes;
    ``None`` leaves an existing one alone (removing expiry is a deliberate act: drop it)."""
    if seconds is None:
        return []
    if seconds <= 0:
        raise ValueError(f"expire_after_seconds must be > 0, got {seconds}")
    existing = _index_info(coll).get(name)
    if existing and existing.get("expireAfterSeconds") != seconds:
        log.info("TTL of %s.%s changes from %s to %s s: recreating %s", coll.name, field,
                 existing.get("expireAfterSeconds"), seconds, name)
        coll.drop_index(name)
    return [coll.create_index([(field, ASCENDING)], name=name, expireAfterSeconds=int(seconds))]


def ensure_signal_indexes(coll: Collection, expire_after_seconds: int | None = None, *,
                          history: Collection | None = None,
                          history_ttl_seconds: int | None = None) -> list[str]:
    """Unique query index on the signal key, plus an optional TTL index on ``ts``; and the
    indexes of the history collection (:func:`ensure_history_indexes`).

    Idempotent. A TTL index whose ``expireAfterSeconds`` differs from the wanted
    value is dropped and recreated; ``expire_after_seconds=None`` leaves an
    existing TTL index alone (removing expiry is a deliberate act: drop it by hand).
    ``history`` defaults to ``<coll>_history`` in the same database: the exporter's
    history writes are idempotent only with its unique index, so every caller that
    prepares the signals collection prepares the history too.
    """
    names = [coll.create_index([(f, ASCENDING) for f in SIGNAL_KEY], name=SIGNAL_KEY_INDEX,
                               unique=True)]
    names.append(coll.create_index(SIGNAL_CHANGES_KEY, name=SIGNAL_CHANGES_INDEX))
    names += _ensure_ttl(coll, SIGNAL_TTL_INDEX, "ts", expire_after_seconds)
    if history is None:
        history = coll.database[history_collection_name(coll.name)]
    ensure_history_indexes(history, history_ttl_seconds)
    return names


def ensure_history_indexes(coll: Collection, ttl_seconds: int | None = None) -> list[str]:
    """History of replaced versions: unique ``(key, version, content_hash)`` (a retried
    archive write adds nothing; a same-version rewrite is a distinct entry, not a clash),
    which also serves reads by key prefix and ``ts`` range; optional retention as a TTL on
    ``superseded_at`` (``None`` keeps history forever and leaves an existing TTL alone)."""
    names = [coll.create_index([(f, ASCENDING) for f in (*SIGNAL_KEY, "version",
                                                         CONTENT_HASH_FIELD)],
                               name=HISTORY_KEY_INDEX, unique=True)]
    return names + _ensure_ttl(coll, HISTORY_TTL_INDEX, SUPERSEDED_AT_FIELD, ttl_seconds)


def ensure_market_indexes(db: Database, settings: Settings) -> list[str]:
    """Unique ``{symbol, date}`` on ``crypto_market``, ``{symbol, datetime}`` on ``_1m``,
    plus ``{datetime}`` on ``_1m`` for newest-bars reads across all symbols."""
    return [
        db[settings.market_1d_collection].create_index(
            [("symbol", ASCENDING), ("date", ASCENDING)], name=MARKET_1D_INDEX, unique=True),
        db[settings.market_1m_collection].create_index(
            [("symbol", ASCENDING), ("datetime", ASCENDING)], name=MARKET_1M_INDEX, unique=True),
        db[settings.market_1m_collection].create_index(
            [("datetime", ASCENDING)], name=MARKET_1M_TIME_INDEX),
    ]


def ensure_runs_indexes(coll: Collection) -> list[str]:
    """Audit records: unique ``run_id``; newest first overall and per strategy."""
    return [
        coll.create_index([("run_id", ASCENDING)], name=RUNS_ID_INDEX, unique=True),
        coll.create_index([("started_at", DESCENDING)], name=RUNS_STARTED_INDEX),
        coll.create_index([("strategy_ids", ASCENDING), ("started_at", DESCENDING)],
                          name=RUNS_STRATEGY_INDEX),
    ]


def ensure_indexes(client: MongoClient, settings: Settings) -> None:
    """All indexes of the export side, idempotently (call at every start).

    Market indexes are created here only when market data lives on the same
    server (``MARKET_MONGO_URI`` unset or equal); otherwise the market side
    creates them with its own client (:func:`ensure_market_indexes`).
    """
    db = client[settings.db]
    try:
        ensure_signal_indexes(db[settings.collection], settings.signals_ttl_seconds,
                              history=db[settings.history_collection_name],
                              history_ttl_seconds=settings.history_ttl_seconds)
        ensure_runs_indexes(db[settings.export_runs_collection])
        if settings.market_uri == settings.mongo_uri:
            ensure_market_indexes(client[settings.market_db], settings)
    except OperationFailure as exc:
        raise (explain_mongo_error(exc, f"create indexes in {settings.db!r}")
               or RuntimeError(f"creating indexes failed: {exc}")) from exc


def _signal_filter(strategy_ids: Sequence[str] | str | None, timeframe: str | None,
                   pairs: Iterable[str] | None) -> dict[str, Any]:
    flt: dict[str, Any] = {}
    if isinstance(strategy_ids, str):
        strategy_ids = [strategy_ids]
    if strategy_ids:
        flt["strategy_id"] = {"$in": list(strategy_ids)}
    if pairs is not None:
        flt["pair"] = {"$in": list(pairs)}
    if timeframe:
        flt["timeframe"] = timeframe
    return flt


def latest_signals(coll: Collection, *, strategy_ids: Sequence[str] | str | None = None,
                   timeframe: str | None = None, pairs: Iterable[str] | None = None,
                   fields: Sequence[str] = SIGNAL_FIELDS) -> pd.DataFrame:
    """The newest signal per (strategy_id, pair, timeframe): one ``$sort`` + ``$group $first``."""
    group: dict[str, Any] = {"_id": {"s": "$strategy_id", "p": "$pair", "t": "$timeframe"}}
    for name in fields:
        if name not in ("strategy_id", "pair", "timeframe"):
            group[name] = {"$first": f"${name}"}
    pipeline = [
        {"$match": _signal_filter(strategy_ids, timeframe, pairs)},
        {"$sort": {"strategy_id": 1, "pair": 1, "timeframe": 1, "ts": -1}},
        {"$group": group},
    ]
    rows = []
    for doc in coll.aggregate(pipeline):
        key = doc.pop("_id")
        rows.append({"strategy_id": key["s"], "pair": key["p"], "timeframe": key["t"], **doc})
    return _to_frame(rows, fields)


def signals_in_range(coll: Collection, start: datetime, end: datetime, *,
                     strategy_ids: Sequence[str] | str | None = None,
                     timeframe: str | None = None, pairs: Iterable[str] | None = None,
                     fields: Sequence[str] = SIGNAL_FIELDS) -> pd.DataFrame:
    """Signals with ``start <= ts <= end`` (both inclusive, tz-aware), sorted by pair and ts."""
    flt = _signal_filter(strategy_ids, timeframe, pairs)
    flt["ts"] = {"$gte": ensure_utc(start, "start").to_pydatetime(),
                 "$lte": ensure_utc(end, "end").to_pydatetime()}
    projection = {name: 1 for name in fields} | {"_id": 0}
    cursor = coll.find(flt, projection).sort([("strategy_id", 1), ("pair", 1),
                                              ("timeframe", 1), ("ts", 1)])
    return _to_frame(list(cursor), fields)


#: What :func:`signal_versions` reads of each version besides the producer fields.
VERSION_FIELDS: tuple[str, ...] = (AVAILABLE_AT_FIELD, UPDATED_AT_FIELD, CONTENT_HASH_FIELD)


def signal_versions(coll: Collection, history: Collection, start: datetime, end: datetime, *,
                    strategy_ids: Sequence[str] | str | None = None,
                    timeframe: str | None = None, pairs: Iterable[str] | None = None,
                    fields: Sequence[str] = SIGNAL_FIELDS) -> pd.DataFrame:
    """Every known version of the signals with ``start <= ts <= end``: the current documents
    and the history entries, as :func:`signal_export.point_in_time.versions_frame` (with
    ``known_at``), ready for :func:`~signal_export.point_in_time.as_known`.

    Two :func:`signals_in_range` reads with the same filter (the key index serves both).
    """
    wanted = tuple(dict.fromkeys([*fields, "version", *VERSION_FIELDS]))
    kwargs: dict[str, Any] = {"strategy_ids": strategy_ids, "timeframe": timeframe,
                              "pairs": None if pairs is None else list(pairs), "fields": wanted}
    current = signals_in_range(coll, start, end, **kwargs)
    old = signals_in_range(history, start, end, **kwargs)
    return versions_frame(current, old)


def _to_frame(rows: list[dict[str, Any]], fields: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(list(fields) + [
        c for r in rows[:1] for c in r])))
    if "ts" in frame.columns:
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    if not frame.empty:
        frame = frame.sort_values(["strategy_id", "pair", "timeframe"], kind="stable")
    return frame.reset_index(drop=True)
