"""The MongoDB read path of ``ExternalSignalStrategy``: one query, cached, outage-safe.

Live/dry-run: :meth:`SignalSource.refresh` runs once per bot loop (from
``bot_loop_start``) and reads the signals of *all* whitelisted pairs in one
``find`` limited to the window that can still matter (``lookback_bars`` of
the timeframe). Backtesting: :meth:`SignalSource.load_range` reads all pairs
over the backtest range in one query (streamed in bounded memory by
:mod:`.range_read`) and serves every later pair from the cache. Never one query
per pair per candle. With ``signal_view: as_known`` it reads the current
documents and the history of replaced versions and keeps, per signal key, the
version the live bot could see at its decision deadline
(:meth:`SignalSource.decision_deadline`, :func:`signal_export.point_in_time.as_known`;
docs/POINT_IN_TIME.md).

Signals the bot cannot use are counted per strategy id, including the ones the
read leaves out: documents for pairs outside the whitelist (or with no readable
pair) and documents whose ``ts`` is not a date (a range on ``ts`` never
matches them). That takes one extra ``aggregate`` (:meth:`SignalSource._count_outside`:
``$match`` + ``$group`` by strategy/pair/ts type, a few rows back), run live at
most once per candle (and again only when the whitelist changes) and once per
backtest range, so the steady state stays one ``find`` per loop. Why not read
the window without the pair filter and split client-side: a producer's universe
is often far larger than the bot's whitelist (research ranks 200 pairs, the bot
trades 10), and every loop would then ship all of them; the count ships one row
per bad pair once per candle. The price: the count is up to one candle old.

Incremental live reads (``live_incremental``, on by default): the first loop of each
candle, the first loop after start or an outage, and a loop whose whitelist or read
window changed read the whole window (the *full* read above). Every other loop reads
only what changed: ``{strategy_id, timeframe, ts in the window, updated_at >=
watermark - overlap}`` on the index :data:`CHANGES_INDEX` (the exporter stamps
``updated_at`` on every insert and content change), the whitelist applied
client-side. The watermark is the newest ``updated_at`` seen (the writers' clocks,
never the bot's); the overlap (``watermark_overlap_seconds``, 60 s) covers writes that
become visible later than they are stamped (a slow bulk write) and clock skew between
writers. Once the watermark has stood for the overlap (bot's monotonic clock), the
query asks for ``updated_at > watermark`` only, so a quiet steady state re-reads
nothing. A re-read document whose content is unchanged is recognised by id and
content and changes nothing; a changed one replaces its document id's row (and any row
with its key). Each pair has a version (:meth:`SignalSource.signal_version`) that moves
only when the pair's signals changed, so the strategy re-decides only those pairs.
Full reads every loop, as before, while the index is missing or the window holds a
document without a date ``updated_at`` (a writer other than the exporter; one info
line each). What an incremental read cannot see until the next full read (at most one
candle later): a deleted document, a write stamped more than the overlap before the
newest one already seen or visible more than the overlap after the bot first saw a
newer stamp, and an unstamped document written into a window that held none.

Futures (``risk=True``): the same reads (live full and incremental, the backtest range,
both ``as_known`` finds) also project ``leverage``, ``stop_loss`` and ``take_profit``, so
each signal row carries the values of the very document version it comes from (NaN where
it has none; ``as_known``: the version known at the decision deadline). A document whose
values break the contract is ``malformed`` like any other (:func:`.risk.invalid_risk`),
and a change of a risk value alone is a change for the incremental read. Spot reads
project none of them and build the frame they always did.

MongoDB down or slow (timeouts ~1.5-2 s): nothing is raised into Freqtrade;
``available`` turns False so the strategy opens nothing on unknown signals;
one warning and one ``notify`` message per outage, one info line on recovery.
Not the matcher (pure rules live in :mod:`.matching`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pymongo
import pymongo.errors
from bson import ObjectId

from signal_export.consumer.config import ExtSignalsConfig
from signal_export.consumer.normalise import (
    normalise_signals,
    signal_columns,
    strategy_key,
    unknown_pair_warning,
)
from signal_export.consumer.range_read import read_signal_range
from signal_export.consumer.stats import WarnOnce
from signal_export.contract import (
    RISK_FIELDS,
    SIGNAL_KEY,
    UPDATED_AT_FIELD,
    floor_to_bar,
    timeframe_delta,
)
from signal_export.point_in_time import (
    AVAILABLE_AT_FIELD,
    KNOWN_AT,
    acting_delay,
    as_known,
    decision_deadline,
    versions_frame,
)
from signal_export.store import SIGNAL_CHANGES_KEY, VERSION_FIELDS

logger = logging.getLogger(__name__)

#: The document fields the decision uses (also a document's content signature, live).
_CONTENT = ("pair", "strategy_id", "ts", "action", "score", "weight", "valid_until", "version",
            *RISK_FIELDS)
#: What the read asks for: the decision's fields; a futures read (``risk=True``) also the
#: risk fields :data:`RISK_PROJECTION` (free when a document has none).
PROJECTION = {f: 1 for f in _CONTENT if f not in RISK_FIELDS}
RISK_PROJECTION = {**PROJECTION, **{f: 1 for f in RISK_FIELDS}}
_MISSING = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The index the incremental live read needs (the changes of a strategy id and timeframe),
#: created with the others by :func:`signal_export.store.ensure_signal_indexes`.
CHANGES_INDEX = SIGNAL_CHANGES_KEY


def _doc_key(doc: Any) -> Any:
    """A document's identity in the live cache: its ``_id`` (hashable form)."""
    value = doc.get("_id") if isinstance(doc, dict) else None
    try:
        hash(value)
    except TypeError:  # a sub-document _id
        return repr(value)
    return value


def _signature(doc: Any) -> tuple:
    """What a document says (its decision fields): equal signature, same decisions."""
    if not isinstance(doc, dict):
        return (doc,)
    return tuple(doc.get(f) for f in _CONTENT)


def _ts_ms(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


def _no_notify(message: str) -> None:
    """Default ``notify``: a module-level function, so the source pickles (hyperopt workers)."""


class SignalSource:
    """Signals per pair from MongoDB, refreshed at most once per bot loop.

    ``risk`` (futures): the same read also carries each signal's ``leverage``,
    ``stop_loss`` and ``take_profit`` (frame columns, NaN where a document has none); a
    document whose values break the contract is ``malformed`` (:func:`.risk.invalid_risk`).
    """

    def __init__(
        self,
        cfg: ExtSignalsConfig,
        *,
        notify: Callable[[str], None] | None = None,
        client: pymongo.MongoClient | None = None,
        live: bool = True,
        risk: bool = False,
    ) -> None:
        self.cfg = cfg
        self.live = live
        self.risk = risk
        self._projection = RISK_PROJECTION if risk else PROJECTION
        # live: low timeouts so an outage never stalls the bot loop; backtesting: one big read
        self._timeout_ms = cfg.socket_timeout_ms if live else cfg.backtest_timeout_ms
        self._notify = notify or _no_notify
        self._client = client
        self._bar = timeframe_delta(cfg.timeframe)
        self._warn = WarnOnce(logger)
        self._frame: pd.DataFrame = normalise_signals([], risk=risk)
        self._slices: dict[str, tuple[int, int]] = {}
        self._range: tuple[datetime, datetime] | None = None
        self._range_pairs: set[str] = set()
        self.available = False
        self.in_outage = False
        self.queries = 0  # finds: one per loop live, one per range in backtests
        self.count_queries = 0  # the out-of-read counts: at most one per candle / range
        self.read_counts: dict[str, Counter] = {}
        self._latest_ms: dict[str, int] = {}
        # live incremental state (see the module doc)
        self.full_reads = 0
        self.delta_reads = 0
        self._full_key: tuple | None = None  # (candle, pairs, window length) of the full read
        self._changes_index = False  # CHANGES_INDEX exists (checked at full reads until it does)
        self._incremental_ok = False  # the last full read allows incremental reads after it
        self._watermark: datetime | None = None
        self._watermark_seen = 0.0  # monotonic time the watermark last advanced
        self._docs: dict[Any, tuple] = {}  # document id -> content signature (window)
        self._rejected: dict[Any, tuple[str, str, str, int | None]] = {}  # id -> pair, sid, ...
        self._row_ids = np.empty(0, dtype=object)  # document id of each row of _frame
        self._ts_ms = np.empty(0, dtype=np.int64)
        self._generation = 0
        self._pair_changes: Counter = Counter()
        #: Per strategy id, what the latest read could not use: malformed documents among
        #: the ones read plus everything the read left out (see the module doc).
        self.unusable: dict[str, Counter] = {}
        self._read_unusable: dict[str, Counter] = {}
        self._outside: dict[str, Counter] = {}
        self._outside_key: tuple[datetime, frozenset[str]] | None = None
        #: Bars read before a live loop's ``now`` / before a backtest's first candle: from the
        #: settings; the strategy raises it when hyperopt results lengthen the debounce state.
        self.lookback_bars = cfg.lookback_bars
        self.tolerance_bars = cfg.tolerance_bars
        #: Documents the latest read returned, per strategy id, and the ts window it covered.
        self.found: Counter = Counter()
        self.window: tuple[datetime, datetime | None] | None = None
        #: ``as_known`` backtests: per strategy id, the keys no version of which was visible
        #: by their decision deadline (live never acted on them).
        self.hidden: Counter = Counter()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (hyperopt sends the strategy to its workers): the client stays behind and
        a worker reconnects only if it ever reads; the cached signals travel with it."""
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    # --- connection -------------------------------------------------------

    def _collection(self) -> Any:
        if self._client is None:
            # Live: low timeouts, an outage must not stall the loop. Backtesting: one large
            # read; a busy server must not be marked down by a slow heartbeat (monitor sockets
            # use connectTimeoutMS) and the read cancelled mid-way.
            connect_ms = self.cfg.connect_timeout_ms if self.live else 20_000
            self._client = pymongo.MongoClient(
                self.cfg.mongo_uri, tz_aware=True, appname="ExternalSignalStrategy",
                serverSelectionTimeoutMS=self.cfg.server_selection_timeout_ms,
                socketTimeoutMS=self._timeout_ms,
                connectTimeoutMS=connect_ms,
            )
        return self._client[self.cfg.db][self.cfg.collection]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _filter(self, pairs: Collection[str], start: datetime, end: datetime | None
                ) -> dict[str, Any]:
        ts_filter: dict[str, Any] = {"$gte": start}
        if end is not None:
            ts_filter["$lte"] = end
        return {
            "strategy_id": {"$in": list(self.cfg.strategy_ids)},
            "pair": {"$in": sorted(pairs)},
            "timeframe": self.cfg.timeframe,
            "ts": ts_filter,
        }

    def _query(self, pairs: Collection[str], start: datetime, end: datetime | None) -> list[dict]:
        """The live full read: the window's documents of ``pairs``, with their stamps."""
        flt = self._filter(pairs, start, end)
        self.queries += 1
        docs = list(self._collection().find(flt, self._live_projection())
                    .max_time_ms(self._timeout_ms))
        self.window = (start, end)
        self.found = Counter(strategy_key(d.get("strategy_id")) for d in docs)
        return docs

    def _query_changes(self, start: datetime) -> list[dict]:
        """The window's documents stamped since the watermark (minus the overlap), all pairs.

        Keyed on ``updated_at`` (index :data:`CHANGES_INDEX`): the server reads the changed
        documents only. The whitelist is applied client-side (:meth:`_apply_changes`): a
        ``pair`` ``$in`` of thousands of values would make the window's index the better
        match and the server would walk the whole window again.
        """
        overlap = self.cfg.watermark_overlap_seconds
        if self._watermark is None:  # no stamp seen yet: every stamped document
            stamped: dict[str, Any] = {"$gte": _EPOCH}
        elif time.monotonic() - self._watermark_seen < overlap:
            stamped = {"$gte": self._watermark - timedelta(seconds=overlap)}
        else:  # settled: whatever was stamped up to the watermark is visible by now
            stamped = {"$gt": self._watermark}
        flt = {"strategy_id": {"$in": list(self.cfg.strategy_ids)},
               "timeframe": self.cfg.timeframe, "ts": {"$gte": start},
               UPDATED_AT_FIELD: stamped}
        self.queries += 1
        docs = list(self._collection().find(flt, self._live_projection())
                    .max_time_ms(self._timeout_ms))
        self.window = (start, None)
        return docs

    def _live_projection(self) -> dict[str, int]:
        return {**self._projection, UPDATED_AT_FIELD: 1}

    def _has_changes_index(self) -> bool:
        """Whether an index leads with :data:`CHANGES_INDEX`'s fields (else: full reads)."""
        want = [f for f, _ in CHANGES_INDEX]
        for ix in self._collection().list_indexes():
            if list(ix.get("key", {}))[:len(want)] == want:
                return True
        if self._warn.first("changes-index"):  # a cost, not a fault: info, once
            logger.info("ext_signals: no index %s on %s.%s; live reads take the whole window "
                        "every loop (create it to read only what changed)", dict(CHANGES_INDEX),
                        self.cfg.db, self.cfg.collection)
        return False

    def _check_stamps(self, docs: list[dict]) -> bool:
        """True when every document read carries a date ``updated_at``; else warn (per id)."""
        bare = Counter(strategy_key(d.get("strategy_id")) for d in docs if isinstance(d, dict)
                       and not isinstance(d.get(UPDATED_AT_FIELD), datetime))
        for sid, n in sorted(bare.items()):
            if self._warn.first(f"unstamped:{sid}"):
                logger.info("ext_signals: %d signal document(s) of strategy %s have no date %s "
                            "(not written by the exporter?); live reads take the whole window "
                            "every loop while the window holds such documents", n, sid,
                            UPDATED_AT_FIELD)
        return not bare

    def stored_strategy_ids(self) -> list[str] | None:
        """The strategy ids stored for this timeframe (one ``distinct``); None if it failed."""
        try:
            values = self._collection().distinct(
                "strategy_id", {"timeframe": self.cfg.timeframe}, maxTimeMS=self._timeout_ms)
        except Exception as exc:  # noqa: BLE001 - a diagnostic, never a reason to stop
            self._warn(f"distinct:{type(exc).__name__}",
                       "ext_signals: listing the stored strategy ids failed (%s: %s)",
                       type(exc).__name__, str(exc)[:200])
            return None
        return sorted(str(v) for v in values if isinstance(v, str))

    def _count_outside(self, pairs: Collection[str], start: datetime, end: datetime | None,
                       written_since: datetime | None) -> None:
        """Count, per strategy id, the documents the ``find`` leaves out; one ``aggregate``.

        Two branches of one ``$or``: in the same ts window, a pair outside ``pairs``
        (``unknown_pair`` when it is a string, ``malformed`` when missing or not a
        string); and a ``ts`` that is not a BSON date (``malformed``: no window can
        contain it). Such a ts has no time to bound it by, so live counts only
        those written since ``written_since`` (the ``_id`` ObjectId's creation time,
        on the ``_id`` index, so the count stays cheap on a years-long collection;
        documents with a custom non-ObjectId ``_id`` are not seen); a backtest
        counts all of them. Standard commands only: ``$or``, ``$nin``, ``$type``.
        """
        base = {"strategy_id": {"$in": list(self.cfg.strategy_ids)},
                "timeframe": self.cfg.timeframe}
        ts_filter: dict[str, Any] = {"$gte": start}
        if end is not None:
            ts_filter["$lte"] = end
        bad_ts: dict[str, Any] = {**base, "ts": {"$not": {"$type": "date"}}}
        if written_since is not None:
            bad_ts["_id"] = {"$gte": ObjectId.from_datetime(written_since)}
        pipeline = [
            {"$match": {"$or": [{**base, "pair": {"$nin": sorted(pairs)}, "ts": ts_filter},
                                bad_ts]}},
            {"$group": {"_id": {"s": "$strategy_id", "p": "$pair", "t": {"$type": "$ts"}},
                        "n": {"$sum": 1}}},
        ]
        self.count_queries += 1
        rows = list(self._collection().aggregate(pipeline, maxTimeMS=self._timeout_ms))
        outside: dict[str, Counter] = {}
        unknown: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            key, n = row.get("_id") or {}, int(row.get("n", 0))
            sid, pair, ts_type = strategy_key(key.get("s")), key.get("p"), key.get("t")
            if ts_type != "date":
                reason = "malformed"
                self._warn(f"outside:ts:{sid}:{ts_type}",
                           "ignoring signal(s): producer sends %s for strategy %s "
                           "(ts must be a BSON date); %d such document(s) %s",
                           "no ts" if ts_type == "missing" else f"ts as {ts_type}", sid, n,
                           "written in the read window" if written_since else "stored")
            elif isinstance(pair, str) and pair:
                reason = "unknown_pair"
                unknown.setdefault((sid, unknown_pair_warning(pair)), []).append(pair)
            else:
                reason = "malformed"
                self._warn(f"outside:nopair:{sid}:{pair!r}",
                           "ignoring signal(s): producer sends %s for strategy %s "
                           "(pair must be a string such as BTC/USDT)",
                           "no pair" if pair is None else f"pair {pair!r}", sid)
            outside.setdefault(sid, Counter())[reason] += n
        for (sid, why), values in sorted(unknown.items()):
            # one line per strategy and reason naming the values not reported before
            new = sorted(v for v in values if self._warn.first(f"outside:pair:{sid}:{v}"))
            if new:
                more = f" (+{len(new) - 10} more)" if len(new) > 10 else ""
                logger.warning("ignoring signal(s): producer sends %s%s for strategy %s: %s",
                               ", ".join(repr(v) for v in new[:10]), more, sid, why)
        self._outside = outside

    def _merge_unusable(self) -> None:
        merged: dict[str, Counter] = {}
        for part in (self._read_unusable, self._outside):
            for sid, c in part.items():
                merged.setdefault(sid, Counter()).update(c)
        self.unusable = merged

    def _ingest(self, docs: list[dict], pairs: Collection[str]) -> None:
        """A whole read (backtest range, or a live full read): the cache from scratch."""
        rejected: list[tuple[int, str]] = []
        keep: list[int] = []
        frame = normalise_signals(docs, pairs=pairs, warn=self._warn, rejected=rejected,
                                  keep_positions=keep, risk=self.risk)
        self._rejected = {_doc_key(docs[i]): (
            strategy_key(docs[i].get("pair") if isinstance(docs[i], dict) else None),
            strategy_key(docs[i].get("strategy_id") if isinstance(docs[i], dict) else None),
            reason, _ts_ms(docs[i].get("ts") if isinstance(docs[i], dict) else None))
            for i, reason in rejected}
        self._count_rejected()
        if self.live:
            self._docs = {_doc_key(d): _signature(d) for d in docs}
            ids = np.empty(len(keep), dtype=object)
            ids[:] = [_doc_key(docs[i]) for i in keep]
        else:
            ids = np.empty(len(frame), dtype=object)
        self._set_frame(frame, ids)
        self._generation += 1
        self._pair_changes.clear()

    def _count_rejected(self) -> None:
        counts: dict[str, Counter] = {}
        by_strategy: dict[str, Counter] = {}
        for pair, sid, reason, _ in self._rejected.values():
            counts.setdefault(pair, Counter())[reason] += 1
            by_strategy.setdefault(sid, Counter())[reason] += 1
        self.read_counts = counts
        self._read_unusable = by_strategy

    def _set_frame(self, frame: pd.DataFrame, ids: np.ndarray) -> None:
        """One sorted frame + a slice per pair: cheaper than 500 groupby frames every loop."""
        order = np.lexsort((frame["ts"].to_numpy(dtype="datetime64[ms]").view(np.int64),
                            frame["pair"].to_numpy(dtype=object).astype(str)))
        if len(frame) and not np.array_equal(order, np.arange(len(frame))):
            frame = frame.take(order)
            ids = ids[order]
        frame = frame.reset_index(drop=True)
        pair_values = frame["pair"].to_numpy(dtype=object)
        names, starts = np.unique(pair_values, return_index=True)
        ends = np.append(starts[1:], len(frame)) if len(frame) else starts
        self._frame = frame
        self._row_ids = ids
        self._ts_ms = frame["ts"].to_numpy(dtype="datetime64[ms]").view(np.int64)
        self._slices = {str(p): (int(a), int(b)) for p, a, b in zip(names, starts, ends,
                                                                    strict=True)}
        last = self._ts_ms[ends - 1] if len(frame) else self._ts_ms
        self._latest_ms = dict(zip(self._slices, last.tolist(), strict=True))

    def _set_read(self, frame: pd.DataFrame, slices: dict[str, tuple[int, int]],
                  counts: dict[str, Counter], by_strategy: dict[str, Counter]) -> None:
        """A backtest range read (already sorted by (pair, ts), RangeIndex) as the cache.

        The same state :meth:`_ingest` leaves, except that unusable documents are kept as
        counts only (``read_counts`` / ``_read_unusable``), not by document id: a backtest
        read is never merged with a later change, so nothing needs to replace their share.
        Rows carry no document id for the same reason (as in :meth:`_ingest`, not live).
        """
        self._rejected = {}
        self._docs = {}
        self.read_counts, self._read_unusable = counts, by_strategy
        self._frame, self._slices = frame, slices
        self._row_ids = np.empty(len(frame), dtype=object)
        self._ts_ms = frame["ts"].to_numpy(dtype="datetime64[ms]").view(np.int64)
        self._latest_ms = {p: int(self._ts_ms[b - 1]) for p, (_, b) in slices.items()}
        self._generation += 1
        self._pair_changes.clear()

    def _apply_changes(self, docs: list[dict], pairs: Collection[str], start_ms: int) -> None:
        """Merge an incremental read into the cache; only the pairs it touches change version.

        Work is proportional to the changed documents, plus one vectorised pass over the
        cached rows when something changed (re-sort) or a row left the window.
        """
        allowed = pairs if isinstance(pairs, set | frozenset) else set(pairs)
        changed: list[dict] = []
        moved: list[Any] = []  # documents whose pair left the whitelist: removed
        for d in docs:
            key = _doc_key(d)
            if self._docs.get(key, _MISSING) == _signature(d):
                continue
            pair = d.get("pair") if isinstance(d, dict) else None
            if isinstance(pair, str) and pair in allowed:
                changed.append(d)
            elif key in self._docs:
                moved.append(key)
        drop = self._ts_ms < start_ms if len(self._ts_ms) and self._ts_ms.min() < start_ms \
            else None
        gone = [k for k, r in self._rejected.items() if r[3] is not None and r[3] < start_ms]
        gone += [k for k in moved if k in self._rejected]
        if not changed and drop is None and not gone and not moved:
            return
        touched: set[str] = set()
        keys = {_doc_key(d) for d in changed} | set(moved)
        if drop is None:
            drop = np.zeros(len(self._frame), dtype=bool)
        if keys:
            drop |= np.fromiter((k in keys for k in self._row_ids.tolist()), dtype=bool,
                                count=len(self._row_ids))
        for key in gone + [k for k in keys if k in self._rejected]:
            if key in self._rejected:
                touched.add(self._rejected.pop(key)[0])
        rejected: list[tuple[int, str]] = []
        keep: list[int] = []
        new = normalise_signals(changed, pairs=pairs, warn=self._warn, rejected=rejected,
                                keep_positions=keep, risk=self.risk)
        for i, reason in rejected:
            d = changed[i]
            entry = (strategy_key(d.get("pair") if isinstance(d, dict) else None),
                     strategy_key(d.get("strategy_id") if isinstance(d, dict) else None),
                     reason, _ts_ms(d.get("ts") if isinstance(d, dict) else None))
            self._rejected[_doc_key(d)] = entry
            touched.add(entry[0])
        new_ids = np.empty(len(keep), dtype=object)
        new_ids[:] = [_doc_key(changed[i]) for i in keep]
        new_ts = new["ts"].to_numpy(dtype="datetime64[ms]").view(np.int64)
        new_pairs = new["pair"].to_numpy(dtype=object)
        # a key stored again under another id (deleted and re-inserted): the new row replaces it
        new_keys = set(zip(new_pairs.tolist(), new["strategy_id"].tolist(), new_ts.tolist(),
                           strict=True))
        sids = self._frame["strategy_id"].to_numpy(dtype=object)
        for pair in set(new_pairs.tolist()):
            a, b = self._slices.get(pair, (0, 0))
            for r in range(a, b):
                if (pair, sids[r], int(self._ts_ms[r])) in new_keys:
                    drop[r] = True
        touched.update(new_pairs.tolist())
        touched.update(self._frame["pair"].to_numpy(dtype=object)[drop].tolist())
        for key in self._row_ids[drop].tolist():
            self._docs.pop(key, None)
        for key in gone:
            self._docs.pop(key, None)
        for d in changed:
            self._docs[_doc_key(d)] = _signature(d)
        kept = self._frame[~drop] if drop.any() else self._frame
        frame = pd.concat([kept, new], ignore_index=True) if len(new) else kept
        ids = np.concatenate([self._row_ids[~drop], new_ids])
        self._set_frame(frame, ids)
        self._count_rejected()
        self.found = Counter(self._frame["strategy_id"].value_counts().to_dict())
        self.found.update(r[1] for r in self._rejected.values())
        for pair in touched:
            self._pair_changes[pair] += 1

    def signal_version(self, pair: str) -> tuple[int, int]:
        """Moves whenever ``pair``'s signals (or its unusable documents) may have changed."""
        return self._generation, self._pair_changes.get(pair, 0)

    @property
    def latest_ts(self) -> dict[str, pd.Timestamp]:
        """Per pair, the ts of its newest usable signal in the cache."""
        return {p: pd.Timestamp(ms, unit="ms", tz="UTC") for p, ms in self._latest_ms.items()}

    def _failed(self, exc: BaseException) -> None:
        self.available = False
        self._slices = {}
        self._range = None
        self._full_key = None  # the next successful loop reads the whole window
        if not self.in_outage:
            self.in_outage = True
            what = ("signal store unreachable" if isinstance(exc, pymongo.errors.PyMongoError)
                    else "signal read failed")
            msg = (f"ExternalSignalStrategy: {what} "
                   f"({type(exc).__name__}: {str(exc)[:200]}) at {self.cfg.redacted_uri()}; "
                   f"no new trades until it is back, open trades: "
                   f"{self.cfg.missing_signal_policy.value}")
            if isinstance(exc, pymongo.errors.PyMongoError):
                logger.warning(msg)
            else:  # not an outage but a bug or bad data we did not foresee: keep the traceback
                logger.error(msg, exc_info=exc)
            self._notify(msg)

    def _succeeded(self) -> None:
        self.available = True
        if self.in_outage:
            self.in_outage = False
            msg = "ExternalSignalStrategy: signal store reachable again, trading on signals resumes"
            logger.info(msg)
            self._notify(msg)

    # --- live / dry-run ---------------------------------------------------

    def refresh(self, pairs: Collection[str], now: datetime) -> bool:
        """One query for all ``pairs``; False (and no exception) when MongoDB is unavailable.

        A full read of the window or, in the steady state, the changes since the last
        read (see the module doc). Plus, on the first successful loop of a candle (or after
        the whitelist changed), the count of what the query leaves out (:meth:`_count_outside`).
        """
        start = (pd.Timestamp(now).tz_convert("UTC") - self.lookback_bars * self._bar
                 ).to_pydatetime()
        candle = floor_to_bar(now, self.cfg.timeframe)
        full_key = (candle, frozenset(pairs), self.lookback_bars)
        incremental = (self.cfg.live_incremental and self.available and self._range is None
                       and full_key == self._full_key and self._incremental_ok)
        try:
            if incremental:
                docs = self._query_changes(start)
                self._apply_changes(docs, pairs, _ts_ms(start) or 0)
                self.delta_reads += 1
            else:
                docs = self._query(pairs, start, None)
                self._ingest(docs, pairs)
                self._full_key = full_key
                self._watermark = None
                self.full_reads += 1
                if self.cfg.live_incremental:
                    if not self._changes_index:
                        self._changes_index = self._has_changes_index()
                    self._incremental_ok = self._check_stamps(docs) and self._changes_index
            stamps = [d[UPDATED_AT_FIELD] for d in docs if isinstance(d, dict)
                      and isinstance(d.get(UPDATED_AT_FIELD), datetime)]
            if stamps:  # the writers' clock, never the bot's
                newest = max(stamps)
                if self._watermark is None or newest > self._watermark:
                    self._watermark = newest
                    self._watermark_seen = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - an outage must never reach the bot loop
            self._failed(exc)
            return False
        self._range = None
        self._succeeded()
        key = (candle, frozenset(pairs))
        if key != self._outside_key:
            self._outside_key = key  # a failed count is retried next candle, not every loop
            self._try_count_outside(pairs, start, None, written_since=start)
        self._merge_unusable()
        return True

    def _try_count_outside(self, pairs: Collection[str], start: datetime, end: datetime | None,
                           written_since: datetime | None) -> None:
        """The count is for ops, never a reason to stop trading: a failure is one warning."""
        try:
            self._count_outside(pairs, start, end, written_since)
        except Exception as exc:  # noqa: BLE001 - monitoring must not break the read path
            self._warn(f"outside-count:{type(exc).__name__}",
                       "ext_signals: counting the signals outside the whitelist failed "
                       "(%s: %s); unknown_pair counts keep their last value",
                       type(exc).__name__, str(exc)[:200])

    # --- backtesting ------------------------------------------------------

    def load_range(self, pairs: Collection[str], first: datetime, last: datetime) -> None:
        """Read all ``pairs`` over [first - tolerance, last] once; later calls hit the cache.

        Raises the MongoDB error: a backtest without its signals must fail, not trade blind.
        """
        first = pd.Timestamp(first).tz_convert("UTC")
        last = pd.Timestamp(last).tz_convert("UTC")
        if self.covers(pairs, first, last):
            return
        start = first - (self.tolerance_bars + self.lookback_bars) * self._bar
        lo, hi = start.to_pydatetime(), last.to_pydatetime()
        self.queries += 1
        counts: dict[str, Counter] = {}
        by_strategy: dict[str, Counter] = {}
        if self.cfg.signal_view == "as_known":
            frame, found = self._read_as_known(pairs, lo, hi, counts, by_strategy)
            self.window, self.found = (lo, hi), found
            self._set_frame(frame, np.empty(len(frame), dtype=object))
            self._rejected, self._docs = {}, {}
            self.read_counts, self._read_unusable = counts, by_strategy
            self._generation += 1
            self._pair_changes.clear()
        else:
            read = read_signal_range(self._collection(), self._filter(pairs, lo, hi),
                                     self._projection, pairs=pairs, counts=counts,
                                     warn=self._warn, strategy_counts=by_strategy,
                                     max_time_ms=self._timeout_ms, risk=self.risk)
            self.window, self.found = (lo, hi), read.found
            self._set_read(read.frame, read.slices, counts, by_strategy)
        self._try_count_outside(pairs, lo, hi, written_since=None)
        self._merge_unusable()
        self._range = (first, last)
        self._range_pairs = set(pairs)
        self.available = True

    def decision_deadline(self, ts: pd.Series) -> pd.Series:
        """The latest moment a live bot acts on a signal with ``ts`` (``as_known``).

        Its row ``bar(ts)`` is the newest closed candle from its close ``bar + tf`` until the
        next close ``bar + 2 tf`` (re-evaluated every loop, ``process_only_new_candles =
        False``), and no later than ``max_delay`` after the close (stale after that). A
        version visible after this moment was never acted on live.
        """
        return decision_deadline(ts, self.cfg.timeframe, self._late())

    def _late(self) -> timedelta:
        """How long after its candle's close live still acts on a signal (see above)."""
        return acting_delay(self.cfg.timeframe, self.cfg.to_rules().effective_max_delay)

    def _read_as_known(self, pairs: Collection[str], lo: datetime, hi: datetime,
                       counts: dict[str, Counter], by_strategy: dict[str, Counter]
                       ) -> tuple[pd.DataFrame, Counter]:
        """``as_known``: per signal key, the version visible at its decision deadline.

        Reads the current documents and the history collection with the range's filter,
        normalises both (unusable current documents are counted as in ``latest``), and asks
        :func:`signal_export.point_in_time.as_known` for each key's version at
        :meth:`decision_deadline`. Keys with no version visible by then are left out (live
        never acted on them; counted in ``hidden``). A version that became visible after
        the candle's close, inside the window, is evaluated live at that later moment: if
        it had expired by then, its ``valid_until`` is set to the close, so the backtest
        counts it ``expired`` as live did.
        """
        flt = self._filter(pairs, lo, hi)
        proj = {**self._projection, **{f: 1 for f in VERSION_FIELDS}}
        coll = self._collection()
        history = coll.database[self.cfg.history_collection_name()]
        current = list(coll.find(flt, proj).max_time_ms(self._timeout_ms))
        old = list(history.find(flt, proj).max_time_ms(self._timeout_ms))
        found = Counter(strategy_key(d.get("strategy_id")) for d in current)
        parts = []
        for docs, c, s in ((current, counts, by_strategy), (old, None, None)):
            keep: list[int] = []
            frame = normalise_signals(docs, pairs=pairs, counts=c, strategy_counts=s,
                                      warn=self._warn, keep_positions=keep, risk=self.risk)
            for name in VERSION_FIELDS:
                frame[name] = [docs[i].get(name) for i in keep]
            parts.append(frame)
        versions = []
        for frame in parts:
            frame = frame.rename(columns={"version": "_version"})
            frame["version"] = frame["_version"].where(frame["_version"] > 0, 1)
            frame["timeframe"] = self.cfg.timeframe
            versions.append(frame)
        timeless = int((versions[0][AVAILABLE_AT_FIELD].isna()
                        & versions[0][UPDATED_AT_FIELD].isna()).sum())
        if timeless and self._warn.first("as_known:timeless"):
            logger.warning("ext_signals as_known: %d signal document(s) have neither %s nor %s "
                           "(not written by the exporter?); nothing says when they became "
                           "visible, so this backtest leaves them out", timeless,
                           AVAILABLE_AT_FIELD, UPDATED_AT_FIELD)
        allv = versions_frame(versions[0], versions[1])
        self.hidden = Counter()
        if allv.empty:
            return normalise_signals([], risk=self.risk), found
        keys = allv[list(SIGNAL_KEY)].drop_duplicates().reset_index(drop=True)
        keys["decision_at"] = self.decision_deadline(keys["ts"])
        seen = as_known(allv, keys, at="decision_at")
        visible = seen[KNOWN_AT].notna().to_numpy()
        self.hidden = Counter(seen.loc[~visible, "strategy_id"].tolist())
        for sid, n in sorted(self.hidden.items()):
            logger.info("ext_signals as_known: %d signal(s) of strategy %s became visible only "
                        "after their decision deadline; left out, as live never acted on them",
                        n, sid)
        seen = seen[visible]
        close = self.decision_deadline(seen["ts"]) - self._late()
        known = pd.to_datetime(seen[KNOWN_AT], utc=True)
        vu = pd.to_datetime(seen["valid_until"], utc=True)
        expired_late = (known > close) & vu.notna() & (vu <= known)
        vu = vu.where(~expired_late, close)
        out = pd.DataFrame({
            "pair": seen["pair"].astype(object), "strategy_id": seen["strategy_id"].astype(object),
            "ts": pd.to_datetime(seen["ts"], utc=True).astype("datetime64[ms, UTC]"),
            "valid_until": vu.astype("datetime64[ms, UTC]"),
            "action": seen["action"].astype(object).where(seen["action"].notna(), None),
            "score": seen["score"].astype(float), "weight": seen["weight"].astype(float),
            "version": seen["_version"].astype("int64"),
            # the risk values of the same version: what live would have traded with
            **{f: seen[f].astype(float) for f in RISK_FIELDS if self.risk},
        }, columns=list(signal_columns(self.risk)))
        return out.reset_index(drop=True), found

    def covers(self, pairs: Collection[str], first: datetime, last: datetime) -> bool:
        """Whether the cached backtest read holds ``pairs`` over [first, last]."""
        first = pd.Timestamp(first).tz_convert("UTC")
        last = pd.Timestamp(last).tz_convert("UTC")
        return (self.available and self._range is not None and set(pairs) <= self._range_pairs
                and self._range[0] <= first and last <= self._range[1])

    # --- reading the cache ------------------------------------------------

    def signals_for(self, pair: str) -> pd.DataFrame | None:
        """The pair's normalised signals, or None while the store is unavailable."""
        if not self.available:
            return None
        bounds = self._slices.get(pair)
        if bounds is None:
            return self._frame.iloc[0:0]
        return self._frame.iloc[bounds[0]:bounds[1]]

    def lag_seconds(self, pair: str, now: datetime) -> float | None:
        """now - latest ts - one bar: how late the newest signal is (monitoring)."""
        ms = self._latest_ms.get(pair)
        if ms is None:
            return None
        return now.timestamp() - ms / 1000.0 - self._bar.total_seconds()
