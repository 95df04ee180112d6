"""Write-back of Freqtrade trades and open positions into MongoDB, idempotently, with their signal.

Collection ``ft_trades``: one document per ``(bot, trade_id)`` (unique index)
with the trade's fields as Freqtrade reports them, times as UTC datetimes, and
``signal`` = the strategy_id/version (and weight) parsed from ``enter_tag``
(``ext:<strategy_id>:v<version>[:w<weight>]``) plus ``exit_signal`` from the
exit reason, for audit and reconciliation. A content hash decides: unchanged
trades are not written (a re-run reports 0 inserted / 0 updated), changed ones
(an open trade that closed) are updated. ``ft_positions`` mirrors the bot's
open trades: upserted while open, deleted when closed. Not the REST calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DeleteMany, UpdateOne
from pymongo.database import Database

from signal_export.consumer.matching import parse_tag

TRADES_COLLECTION = "ft_trades"
POSITIONS_COLLECTION = "ft_positions"
_KEEP = ("trade_id", "pair", "is_open", "open_rate", "close_rate", "amount", "stake_amount",
         "enter_tag", "exit_reason", "profit_ratio", "profit_abs", "strategy", "timeframe",
         "fee_open", "fee_close", "stop_loss_abs")


@dataclass
class WritebackResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    positions_open: int = 0
    positions_closed: int = 0


def _ms(value: Any) -> datetime | None:
    return None if value in (None, "") else datetime.fromtimestamp(int(value) / 1000, UTC)


def _signal(tag: str | None) -> dict[str, Any] | None:
    parsed = parse_tag(tag)
    if parsed is None:
        return None
    sid, version, weight = parsed
    return {"strategy_id": sid, "version": version, "weight": weight, "tag": tag}


def trade_document(bot: str, trade: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of one Freqtrade trade dict (without bookkeeping fields)."""
    doc: dict[str, Any] = {"bot": bot, **{k: trade.get(k) for k in _KEEP}}
    doc["trade_id"] = int(trade["trade_id"])
    doc["open_date"] = _ms(trade.get("open_timestamp"))
    doc["close_date"] = _ms(trade.get("close_timestamp"))
    doc["signal"] = _signal(trade.get("enter_tag"))
    doc["exit_signal"] = _signal(trade.get("exit_reason"))
    doc["orders"] = [{k: o.get(k) for k in ("order_id", "ft_order_side", "status", "order_type",
                                             "price", "safe_price", "filled", "amount",
                                             "order_timestamp")}
                     for o in trade.get("orders") or ()]
    return doc


def _hash(doc: Mapping[str, Any]) -> str:
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def ensure_writeback_indexes(db: Database) -> None:
    db[TRADES_COLLECTION].create_index([("bot", ASCENDING), ("trade_id", ASCENDING)],
                                       name="bot_trade", unique=True)
    db[TRADES_COLLECTION].create_index([("signal.strategy_id", ASCENDING),
                                        ("pair", ASCENDING), ("open_date", ASCENDING)],
                                       name="signal_pair_open")
    db[POSITIONS_COLLECTION].create_index([("bot", ASCENDING), ("trade_id", ASCENDING)],
                                          name="bot_trade", unique=True)


def write_trades(db: Database, bot: str, trades: Iterable[Mapping[str, Any]], *,
                 now: datetime | None = None) -> WritebackResult:
    """Upsert ``trades`` of ``bot`` (closed and open; later items win) and mirror positions."""
    now = now or datetime.now(UTC)
    result = WritebackResult()
    docs = {int(t["trade_id"]): trade_document(bot, t) for t in trades}
    coll = db[TRADES_COLLECTION]
    stored = {d["trade_id"]: d.get("content_hash") for d in coll.find(
        {"bot": bot, "trade_id": {"$in": list(docs)}}, {"trade_id": 1, "content_hash": 1})}
    ops = []
    for trade_id, doc in docs.items():
        h = _hash(doc)
        if trade_id in stored and stored[trade_id] == h:
            result.unchanged += 1
            continue
        if trade_id in stored:
            result.updated += 1
        else:
            result.inserted += 1
        ops.append(UpdateOne({"bot": bot, "trade_id": trade_id},
                             {"$set": {**doc, "content_hash": h, "updated_at": now},
                              "$setOnInsert": {"created_at": now}}, upsert=True))
    if ops:
        coll.bulk_write(ops, ordered=False)
    positions = db[POSITIONS_COLLECTION]
    open_docs = [d for d in docs.values() if d["is_open"]]
    pos_ops: list[Any] = [UpdateOne({"bot": bot, "trade_id": d["trade_id"]},
                                    {"$set": {**d, "seen_at": now}}, upsert=True)
                          for d in open_docs]
    closed = [tid for tid, d in docs.items() if not d["is_open"]]
    if closed:
        pos_ops.append(DeleteMany({"bot": bot, "trade_id": {"$in": closed}}))
    if pos_ops:
        res = positions.bulk_write(pos_ops, ordered=False)
        result.positions_closed = res.deleted_count
    result.positions_open = len(open_docs)
    return result
