"""What ``POST /v1/signals`` does with a parsed JSON body, free of HTTP: items -> stored.

Steps per request: split the body into items (one object, an array, or
``{"signals": [...]}``); read each item as a contract document or, when it has
a ``ticker``, as a TradingView alert (:mod:`signal_export.ingest.tradingview`);
refuse items whose ``strategy_id`` the producer's token is not bound to
(``forbidden``); refuse an ``available_at`` (the store sets it from the
server's clock); set ``source`` to the producer name; validate all with the
contract (:func:`signal_export.validate.validate_records`, so duplicates in one
batch are rejected too) and hand the valid ones to
:func:`signal_export.exporter.export_signals`, which upserts idempotently and
writes the audit record (``audit.extra`` names the producer and the channel).
Good items are stored even when others are rejected; every rejection names
its item and field.

Not for: auth, limits, status codes' transport (see :mod:`signal_export.ingest.app`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pymongo.collection import Collection

from signal_export.contract import (
    CONTENT_HASH_FIELD,
    CREATED_RUN_ID_FIELD,
    DEFAULT_EXCHANGE,
    DEFAULT_QUOTES,
    RUN_ID_FIELD,
    SIGNAL_FIELDS,
    STRATEGY_ID_RE,
    UPDATED_AT_FIELD,
    Align,
    ContractError,
    timeframe_seconds,
    to_pair,
)
from signal_export.errors import BridgeError
from signal_export.exporter import ExportCounts, export_signals
from signal_export.ingest.tokens import Producer
from signal_export.ingest.tradingview import (
    DEFAULT_GRACE_SECONDS,
    TradingViewAlert,
    alert_to_document,
    is_tradingview_body,
)
from signal_export.point_in_time import AVAILABLE_AT_FIELD
from signal_export.validate import validate_records

CHANNEL = "ingest-api"
#: Contract fields an alert does not have, named by the alert field they came from.
TV_FIELD_NAMES = {"ts": "time", "symbol": "ticker", "pair": "ticker"}


def tv_field_names(item: Any) -> dict[str, str]:
    """:data:`TV_FIELD_NAMES` for one alert: its ``ts`` came from ``bar_time`` if it had one."""
    if isinstance(item, dict) and "bar_time" in item:
        return {**TV_FIELD_NAMES, "ts": "bar_time"}
    return TV_FIELD_NAMES


class BodyError(BridgeError, ValueError):
    """The body as a whole is unusable (not a signal, an array or ``{"signals": [...]}``)."""

    def __init__(self, message: str, field: str = "body", status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass
class SignalSink:
    """Where accepted signals go and how symbols map (from the export settings)."""

    collection: Collection
    runs_collection: Collection | None
    exchange: str = DEFAULT_EXCHANGE
    quotes: tuple[str, ...] = DEFAULT_QUOTES
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    max_items: int = 5000
    #: Replaced versions (``EXT_SIG_HISTORY_COLLECTION``); None: ``<collection>_history``.
    history_collection: Collection | None = None


@dataclass
class ItemState:
    index: int
    status: str = "accepted"
    key: dict[str, str] | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def reject(self, status: str, field_name: str, message: str) -> None:
        self.status = status
        self.errors.append({"field": field_name, "message": message})


@dataclass
class IngestOutcome:
    """Everything the HTTP answer needs."""

    producer: str
    items: list[ItemState]
    run_id: str | None = None
    #: What the exporter did with the accepted items (the project's one counts type).
    write_counts: ExportCounts = field(default_factory=ExportCounts)

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def http_status(self) -> int:
        accepted = self.count("accepted")
        if accepted == len(self.items):
            return 200
        if accepted:
            return 207
        return 403 if self.count("forbidden") else 422

    @property
    def outcome_label(self) -> str:
        return {200: "ok", 207: "partial"}.get(self.http_status, "rejected")

    def as_dict(self) -> dict[str, Any]:
        counts = {"received": len(self.items), "accepted": self.count("accepted"),
                  "rejected": self.count("rejected"), "forbidden": self.count("forbidden")}
        written = self.write_counts
        counts.update(inserted=written.inserted, updated=written.updated,
                      unchanged=written.unchanged, stale_version=written.stale_version,
                      failed=written.failed)
        return {"run_id": self.run_id, "producer": self.producer, "counts": counts,
                "items": [{"index": s.index, "status": s.status, "key": s.key,
                           "errors": s.errors} for s in self.items]}


def split_items(body: Any, max_items: int) -> list[Any]:
    """One object, an array, or ``{"signals": [...]}`` -> list of items."""
    if isinstance(body, dict) and set(body) == {"signals"}:
        body = body["signals"]
        if not isinstance(body, list):
            raise BodyError("signals: expected an array of signals", "signals")
    if isinstance(body, dict):
        return [body]
    if not isinstance(body, list):
        raise BodyError(f"body: expected a signal object, an array of them or "
                        f"{{\"signals\": [...]}}, got {type(body).__name__}")
    if not body:
        raise BodyError("body: the batch is empty")
    if len(body) > max_items:
        raise BodyError(f"body: {len(body)} signals in one request, at most {max_items}",
                        status=413)
    return body


def _pydantic_field(err: Mapping[str, Any]) -> str:
    exc = (err.get("ctx") or {}).get("error")
    if isinstance(exc, ContractError) and exc.field:
        return exc.field
    loc = err.get("loc") or ()
    return ".".join(str(p) for p in loc) or "document"


def _pydantic_message(err: Mapping[str, Any]) -> str:
    if err.get("type") == "extra_forbidden":
        return "unknown field (put additional data under 'extra')"
    return str(err.get("msg"))


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Deeper JSON than this is refused per item (the contract allows a flat ``extra`` only).
MAX_DEPTH = 16


def _path_text(path: str) -> str:
    """A field path safe to echo (NUL and lone surrogates escaped)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def unstorable_value(value: Any) -> tuple[str, str] | None:
    """``(field, why)`` for the first JSON value BSON cannot store, else ``None``.

    JSON allows what MongoDB does not: integers beyond 64 bits, strings with
    lone surrogates (``"\\ud800"``), NUL in key names, and nesting deep enough
    to exhaust recursion further on. Checked per item (iteratively) so the
    answer names the field instead of failing the write.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        where = _path_text(path) or "document"
        if isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                return where, "integer out of the 64-bit range MongoDB stores"
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where, "string is not valid UTF-8 (lone surrogate)"
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return where, f"nested deeper than {MAX_DEPTH} levels"
            if isinstance(item, list):
                stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
                continue
            for key, sub in item.items():
                sub_path = f"{path}.{key}" if path else key
                if "\x00" in key:
                    return _path_text(sub_path), "field name contains a NUL character"
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return _path_text(sub_path), "field name is not valid UTF-8"
                stack.append((sub, sub_path, depth + 1))
    return None


def _as_document(item: Any, state: ItemState, sink: SignalSink,
                 received_at: datetime) -> dict[str, Any] | None:
    """The item as a contract-shaped dict, or ``None`` with ``state`` rejected."""
    if not isinstance(item, dict):
        state.reject("rejected", "document",
                     f"expected a signal object, got {type(item).__name__}")
        return None
    bad = unstorable_value(item)
    if bad is not None:
        state.reject("rejected", *bad)
        return None
    if not is_tradingview_body(item):
        return dict(item)
    try:
        alert = TradingViewAlert.model_validate(item)
        return alert_to_document(alert, received_at=received_at,
                                 grace_seconds=sink.grace_seconds,
                                 default_exchange=sink.exchange, quotes=sink.quotes)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            state.reject("rejected", _pydantic_field(err), _pydantic_message(err))
    except ContractError as exc:
        state.reject("rejected", exc.field or "document", str(exc))
    return None


def _authorise(doc: dict[str, Any], state: ItemState, producer: Producer) -> bool:
    sid = doc.get("strategy_id")
    if sid is None:
        state.reject("rejected", "strategy_id", "strategy_id: required")
        return False
    if not isinstance(sid, str):
        state.reject("rejected", "strategy_id",
                     f"strategy_id: expected a string, got {type(sid).__name__}")
        return False
    if not STRATEGY_ID_RE.fullmatch(sid):  # a malformed id is a bad field, not a forbidden one
        state.reject("rejected", "strategy_id",
                     f"strategy_id {sid!r} must be 1-64 chars of [A-Za-z0-9_.:-], starting "
                     "with a letter or digit")
        return False
    if not producer.may_write(sid):
        state.reject("forbidden", "strategy_id",
                     f"strategy_id {sid!r}: the token of producer {producer.name!r} may not "
                     f"write it (allowed: {', '.join(sorted(producer.strategy_ids))})")
        return False
    if AVAILABLE_AT_FIELD in doc:  # the knowledge time is the store's, never the producer's
        state.reject("rejected", AVAILABLE_AT_FIELD, f"{AVAILABLE_AT_FIELD}: set by the server "
                     "(its clock) when the signal is stored; leave it out")
        return False
    source = doc.get("source")
    if source is not None and source != producer.name:
        state.reject("rejected", "source", f"source: set by the server to the producer name "
                     f"{producer.name!r}; got {source!r} (leave it out)")
        return False
    doc["source"] = producer.name
    return True


def _key_of(record: Mapping[str, Any]) -> dict[str, str]:
    return {"strategy_id": record["strategy_id"], "pair": record["pair"],
            "timeframe": record["timeframe"], "ts": record["ts"].isoformat()}


def ingest_body(body: Any, producer: Producer, sink: SignalSink, *, received_at: datetime,
                align: Align = "reject",
                audit: Mapping[str, Any] | None = None) -> IngestOutcome:
    """Store the good items of ``body`` for ``producer``; report every bad one by field.

    Raises :class:`BodyError` when the body itself is unusable and
    :class:`signal_export.exporter.ExportError` when MongoDB stays unreachable.
    """
    items = split_items(body, sink.max_items)
    states = [ItemState(i) for i in range(len(items))]
    docs: list[dict[str, Any]] = []
    positions: list[int] = []
    alerts = {i: tv_field_names(item) for i, item in enumerate(items)
              if is_tradingview_body(item)}
    for state, item in zip(states, items, strict=True):
        doc = _as_document(item, state, sink, received_at)
        if doc is not None and _authorise(doc, state, producer):
            docs.append(doc)
            positions.append(state.index)
    outcome = IngestOutcome(producer.name, states)
    checked = validate_records(docs, indices=positions, align=align, now=received_at,
                               exchange=sink.exchange, quotes=sink.quotes)
    for err in checked.errors:
        names = alerts.get(err.index)
        field_name = names.get(err.field, err.field) if names else err.field
        states[err.index].reject("rejected", field_name, err.message)
    valid = [(i, r) for i, r in zip(checked.indices, checked.records, strict=True)
             if states[i].status == "accepted"]
    if not valid:
        return outcome
    for i, record in valid:
        states[i].key = _key_of(record)
    result = export_signals([r for _, r in valid], sink.collection,
                            runs_collection=sink.runs_collection, align="reject", now=received_at,
                            history_collection=sink.history_collection,
                            exchange=sink.exchange, quotes=sink.quotes,
                            audit_extra={"channel": CHANNEL, "producer": producer.name,
                                         **(audit or {})})
    outcome.run_id = result.run_id
    outcome.write_counts = result
    for err in result.errors:  # write failures: index is the position in ``valid``
        state = states[valid[err.index][0]]
        state.key = None
        state.reject("rejected", err.field, err.message)
    return outcome


# --- reading back ---------------------------------------------------------

LATEST_FIELDS: tuple[str, ...] = SIGNAL_FIELDS + (UPDATED_AT_FIELD, RUN_ID_FIELD)


def latest_signal(coll: Collection, strategy_id: str, pair: str, timeframe: str,
                  quotes: tuple[str, ...] = DEFAULT_QUOTES) -> dict[str, Any] | None:
    """The newest stored signal of one key prefix (``pair`` may be a symbol), JSON-ready.

    Raises :class:`ContractError` naming ``pair`` or ``timeframe`` when they are invalid.
    """
    timeframe_seconds(timeframe)
    try:
        pair = to_pair(pair, tuple(quotes))
    except ContractError as exc:
        raise ContractError(str(exc), "pair") from None
    projection = {name: 1 for name in LATEST_FIELDS} | {"_id": 0}
    doc = coll.find_one({"strategy_id": strategy_id, "pair": pair, "timeframe": timeframe},
                        projection, sort=[("ts", -1)])
    if doc is None:
        return None
    doc.pop(CONTENT_HASH_FIELD, None)
    doc.pop(CREATED_RUN_ID_FIELD, None)
    return {k: _jsonable(v) for k, v in doc.items() if v is not None}


def _jsonable(value: Any) -> Any:
    """Stored values as JSON (storage is not trusted: NaN -> null, odd types -> text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return str(value)
