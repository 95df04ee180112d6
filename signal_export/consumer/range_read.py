"""A backtest's signal range read in bounded memory: raw batches -> compact columns.

``list(find(...))`` holds every document of the range as a Python dict (~1 KB
each) before :func:`~signal_export.consumer.normalise.normalise_signals` even
starts, so a year of 1h signals for thousands of pairs needs tens of GB. This
reader streams the same query with ``find_raw_batches`` (one cursor, standard
``find`` + ``getMore``) and turns each batch into compact columns right away:
strings as int32 codes into one vocabulary per column (pair, strategy_id,
action), times as int64 ms, numbers as float64/int64 (a futures read, ``risk=True``,
adds the risk fields as float64). The frame is built once
at the end, already sorted by (pair, ts) like :class:`.source.SignalSource`
sorts it (stable: ties keep the query's order), with one slice per pair.

Each batch is read column-wise by :mod:`.bson_columns` (no dict per document).
Rows whose exact BSON types and values ``normalise_signals`` certainly keeps
as they are (:func:`_kept_as_is`: normalise's own acceptance rules applied to the
batch's columns) become rows directly; every other document
(malformed, unknown pair, odd type) is decoded with ``bson`` and given to
``normalise_signals`` itself, which stays the one definition of what is
dropped, how it is counted (per pair and per strategy id) and warned. Its
warnings are collected over the batches and replayed once at the end with the
counts summed, so the log reads as for one query. Result: the same frame,
counts and warnings as ``normalise_signals(list(find))`` plus the source's
sort, in ~100 bytes per document at peak instead of ~1.4 KB.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
import numpy as np
import pandas as pd
from bson.codec_options import DatetimeConversion

from signal_export.consumer.bson_columns import (
    DATE,
    DOUBLE,
    INT32,
    INT64,
    NULL,
    STRING,
    BatchColumns,
    parse_batch,
)
from signal_export.consumer.normalise import (
    ACTION_ABSENT,
    ACTION_CODES,
    ACTION_INVALID,
    SignalFields,
    empty_signal_frame,
    malformed_masks,
    normalise_signals,
    signal_columns,
    valid_until_not_after_ts,
)
from signal_export.consumer.stats import WarnOnce
from signal_export.contract import RISK_FIELDS, is_futures_pair

logger = logging.getLogger(__name__)

#: Documents per ``getMore``: ~1.4 MB of BSON; bounds what one batch holds while it is read.
DEFAULT_BATCH_SIZE = 10_000
_NAT = np.iinfo(np.int64).min


@dataclass
class RangeRead:
    """The normalised, (pair, ts)-sorted frame of a range, with what the source keeps of it."""

    frame: pd.DataFrame
    #: pair -> (first row, end row) in ``frame``
    slices: dict[str, tuple[int, int]]
    #: documents the query returned, per strategy id (``"?"`` when unreadable)
    found: Counter = field(default_factory=Counter)
    documents: int = 0
    #: documents decoded one by one and given to ``normalise_signals`` (the rest were read
    #: column-wise): malformed ones, or all of them under unusual codec options
    decoded: int = 0


class _Vocab:
    """Distinct values of one string column -> stable int32 codes (first seen, first code)."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []

    def encode(self, column: pd.Series) -> np.ndarray:
        local, uniques = pd.factorize(column.to_numpy(dtype=object), use_na_sentinel=True)
        lut = np.empty(len(uniques) + 1, dtype=np.int32)
        for i, value in enumerate(uniques.tolist()):
            lut[i] = self.code(value)
        if (local < 0).any():  # None (factorize's -1) picks the last entry
            lut[-1] = self.code(None)
        return lut[local]

    def code(self, value: Any) -> int:
        code = self.codes.get(value)
        if code is None:
            value = str(value) if isinstance(value, str) else value  # a tagged pair: plain
            code = self.codes[value] = len(self.values)
            self.values.append(value)
        return code

    def array(self) -> np.ndarray:
        out = np.empty(len(self.values), dtype=object)
        out[:] = self.values
        return out


class _DeferredWarn:
    """Collects ``warn(key, msg, *args)`` over batches; replays each key once, counts summed.

    ``normalise_signals`` words its warnings "ignoring %d ... (first: ...)": per batch the
    count would be the batch's; summing the leading int gives the range's, and the first
    batch that hit a key holds its first document, so the replayed line is the one a
    single ``normalise_signals`` over the whole range logs.
    """

    def __init__(self) -> None:
        self.calls: dict[str, tuple[str, list[Any]]] = {}

    def __call__(self, key: str, msg: str, *args: Any) -> None:
        seen = self.calls.get(key)
        if seen is None:
            self.calls[key] = (msg, list(args))
        elif args and type(args[0]) is int and type(seen[1][0]) is int:
            seen[1][0] += args[0]

    def replay(self, warn: Any) -> None:
        for key, (msg, args) in self.calls.items():
            warn(key, msg, *args)


def _epoch_ms(column: pd.Series) -> np.ndarray:
    """A ``datetime64[ms, UTC]`` column as int64 ms (NaT -> int64 min), no copy."""
    return np.asarray(column.array.asi8, dtype=np.int64)


def _utc(ms: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(ms.view("datetime64[ms]")).tz_localize("UTC"), copy=False)


def _risk_values(cols: BatchColumns, name: str) -> np.ndarray:
    """A risk field of a parsed batch as float64, as :func:`~.risk.risk_numbers` gives the
    decoded values: doubles and int32/int64 as numbers, NaN absent or null, -inf else."""
    k = cols.kind[name]
    d = cols.number.get(name + ":double")
    out = np.where(k == DOUBLE, np.zeros(len(cols)) if d is None else d, np.nan)
    ints = (k == INT32) | (k == INT64)
    out[ints] = cols.number[name][ints]
    out[(k != 0) & (k != NULL) & (k != DOUBLE) & ~ints] = -np.inf
    return out


class _Columns:
    """Per-batch compact arrays of the kept rows; concatenated once at the end."""

    def __init__(self, risk: bool = False) -> None:
        self.pair, self.sid, self.action = _Vocab(), _Vocab(), _Vocab()
        self.risk = risk
        self.names = signal_columns(risk)
        self.parts: dict[str, list[np.ndarray]] = {c: [] for c in self.names}
        self.rows = 0
        self.decoded = 0

    def from_frame(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The compact form of a ``normalise_signals`` frame."""
        return {
            "pair": self.pair.encode(frame["pair"]),
            "strategy_id": self.sid.encode(frame["strategy_id"]),
            "action": self.action.encode(frame["action"]),
            "ts": _epoch_ms(frame["ts"]).copy(),
            "valid_until": _epoch_ms(frame["valid_until"]).copy(),
            "score": frame["score"].to_numpy(dtype=np.float64, copy=True),
            "weight": frame["weight"].to_numpy(dtype=np.float64, copy=True),
            "version": frame["version"].to_numpy(dtype=np.int64, copy=True),
            **{f: frame[f].to_numpy(dtype=np.float64, copy=True) for f in RISK_FIELDS
               if self.risk},
        }

    def from_raw(self, cols: BatchColumns, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The compact form of ``rows`` of a parsed batch that :func:`_kept_as_is` accepted:
        the values ``normalise_signals`` gives them (absent -> NaN / NaT / version 0)."""
        k, num = cols.kind, cols.number

        def codes(name: str, vocab: _Vocab) -> np.ndarray:
            local = cols.codes[name][rows]
            lut = np.array([vocab.code(v) for v in cols.strings[name]] + [0], dtype=np.int32)
            if (local < 0).any():  # absent or null: None, the last entry
                lut[-1] = vocab.code(None)
            return lut[local]

        def doubles(name: str) -> np.ndarray:
            d = num.get(name + ":double")
            return np.full(rows.size, np.nan) if d is None else np.where(
                k[name][rows] == DOUBLE, d[rows], np.nan)

        return {
            "pair": codes("pair", self.pair),
            "strategy_id": codes("strategy_id", self.sid),
            "action": codes("action", self.action),
            "ts": num["ts"][rows],
            "valid_until": np.where(k["valid_until"][rows] == DATE, num["valid_until"][rows],
                                    _NAT),
            "score": doubles("score"),
            "weight": doubles("weight"),
            "version": np.where(np.isin(k["version"][rows], (INT32, INT64)),
                                num["version"][rows], 0),
            **{f: _risk_values(cols, f)[rows] for f in RISK_FIELDS if self.risk},
        }

    def add(self, parts: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> None:
        """One batch's kept rows, in document order (``parts``: (batch rows, columns))."""
        parts = [(at, cols) for at, cols in parts if at.size]
        if not parts:
            return
        order = np.argsort(np.concatenate([at for at, _ in parts]), kind="stable") \
            if len(parts) > 1 else None
        for name in self.names:
            col = np.concatenate([c[name] for _, c in parts]) if len(parts) > 1 else \
                parts[0][1][name]
            self.parts[name].append(col if order is None else col[order])
        self.rows += sum(at.size for at, _ in parts)

    def take(self, name: str) -> np.ndarray:
        """One column, concatenated; its batch parts are released right away."""
        parts = self.parts.pop(name)
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        parts.clear()
        return out

    def frame(self) -> tuple[pd.DataFrame, dict[str, tuple[int, int]], Counter]:
        """The frame sorted stably by (pair, ts), built column by column to bound the peak."""
        pair_values = self.pair.array()
        # rank of each pair code in string order: sorting codes by rank == sorting by name
        by_name = np.array(sorted(range(len(pair_values)), key=pair_values.__getitem__),
                           dtype=np.intp)
        rank = np.empty(len(by_name), dtype=np.int32)
        rank[by_name] = np.arange(len(by_name), dtype=np.int32)
        pair_rank = rank[self.take("pair")]
        ts = self.take("ts")
        order = np.lexsort((ts, pair_rank))  # stable: ties keep the query's order
        pair_rank = pair_rank[order]
        names = pair_values[by_name]
        cols: dict[str, Any] = {"pair": pd.Series(names[pair_rank], dtype=object, copy=False)}
        ts = ts[order]
        sid = self.take("strategy_id")
        sid_values = self.sid.array()
        per_sid = Counter({v: n for v, n in zip(
            sid_values.tolist(), np.bincount(sid, minlength=len(sid_values)).tolist(),
            strict=True) if n})
        cols["strategy_id"] = pd.Series(sid_values[sid[order]], dtype=object, copy=False)
        del sid
        cols["ts"] = _utc(ts)
        cols["valid_until"] = _utc(self.take("valid_until")[order])
        cols["action"] = pd.Series(self.action.array()[self.take("action")[order]],
                                   dtype=object, copy=False)
        for name in ("score", "weight", "version", *(RISK_FIELDS if self.risk else ())):
            cols[name] = pd.Series(self.take(name)[order], copy=False)
        frame = pd.DataFrame(cols, columns=list(self.names), copy=False)
        starts = np.flatnonzero(np.r_[True, pair_rank[1:] != pair_rank[:-1]])
        ends = np.append(starts[1:], len(pair_rank))
        slices = {str(names[pair_rank[a]]): (int(a), int(b))
                  for a, b in zip(starts.tolist(), ends.tolist(), strict=True)}
        return frame, slices, per_sid


class _At(str):
    """A pair that remembers its document's row in the batch, through ``normalise_signals``:
    the rows it keeps come back in order but unnumbered, and must be merged with the rows
    read directly in document order (ties of the final sort keep the query's order)."""

    at: int


def _tagged(doc: dict[str, Any], row: int) -> dict[str, Any]:
    pair = doc.get("pair")
    if type(pair) is str:
        doc["pair"] = tag = _At(pair)
        tag.at = row
    return doc


def _raw_fields(cols: BatchColumns, risk: bool = False) -> SignalFields:
    """:class:`~.normalise.SignalFields` of a parsed batch, in the exact BSON types the
    reader converts itself (a string, a date, a double, an int32/int64): any other type of a
    given field counts as not a string/date/number/integer here, so its row is refused.
    ``risk``: with the futures risk fields (:func:`_risk_values`)."""
    k, num = cols.kind, cols.number

    def given(name: str) -> np.ndarray:
        return (k[name] != 0) & (k[name] != NULL)

    def nonempty_str(name: str) -> np.ndarray:
        ok = np.array([v != "" for v in cols.strings[name]] + [False], dtype=bool)
        return (k[name] == STRING) & ok[cols.codes[name]]

    def futures_pair() -> np.ndarray:
        ok = np.array([is_futures_pair(v) for v in cols.strings["pair"]] + [False], dtype=bool)
        return (k["pair"] == STRING) & ok[cols.codes["pair"]]

    def us(name: str) -> tuple[np.ndarray, np.ndarray]:
        is_date = k[name] == DATE
        return is_date, np.where(is_date, num[name], 0) * 1000

    def double(name: str) -> tuple[np.ndarray, np.ndarray]:
        d = num.get(name + ":double")
        is_double = k[name] == DOUBLE
        return is_double, np.where(is_double, np.zeros(len(cols)) if d is None else d, np.nan)

    lut = np.array([ACTION_CODES.get(v, ACTION_INVALID) for v in cols.strings["action"]]
                   + [ACTION_INVALID], dtype=np.int8)
    action = np.where(k["action"] == STRING, lut[cols.codes["action"]], ACTION_INVALID)
    action = np.where(given("action"), action, ACTION_ABSENT).astype(np.int8)
    ts_aware, ts_us = us("ts")
    vu_aware, vu_us = us("valid_until")
    score_number, score = double("score")
    weight_number, weight = double("weight")
    version_int = (k["version"] == INT32) | (k["version"] == INT64)
    return SignalFields(
        pair_str=nonempty_str("pair"), pair_futures=futures_pair(),
        strategy_id_str=nonempty_str("strategy_id"),
        ts_aware=ts_aware, ts_us=ts_us, action=action,
        score_given=given("score"), score_number=score_number, score=score,
        weight_given=given("weight"), weight_number=weight_number, weight=weight,
        valid_until_given=given("valid_until"), valid_until_aware=vu_aware,
        valid_until_us=vu_us, version_given=given("version"), version_int=version_int,
        version=np.where(version_int, num["version"], 0),
        risk={f: _risk_values(cols, f) for f in RISK_FIELDS} if risk else None,
    )


def _kept_as_is(cols: BatchColumns, pairs: Collection[str] | None, risk: bool = False
                ) -> np.ndarray:
    """Rows that certainly come out of ``normalise_signals`` kept, with their plain values.

    The acceptance rules are normalise's own (:func:`~.normalise.malformed_masks`,
    :func:`~.normalise.valid_until_not_after_ts`), applied to the batch's columns as the
    reader sees them (:func:`_raw_fields`: only the types it converts count), plus the
    whitelist. A row refused here is decoded and
    given to ``normalise_signals``, which decides, counts and warns: so this may refuse a
    good row (it only costs time) but never accepts one normalise would drop or change (the
    equality tests in tests/strategy/test_range_read.py hold it to that).
    """
    f = _raw_fields(cols, risk)
    bad = np.zeros(len(cols), dtype=bool)
    for mask in malformed_masks(f).values():
        bad |= mask
    bad |= valid_until_not_after_ts(f, bad)
    known = set(pairs) if pairs is not None else None
    listed = np.array([known is None or v in known for v in cols.strings["pair"]] + [False],
                      dtype=bool)[cols.codes["pair"]]
    return cols.plain & ~bad & listed


def _direct(options: Any) -> bool:
    """Whether documents decode as the parser reads them: aware datetimes, strict UTF-8,
    no custom decoders (otherwise every document takes the ``bson`` + normalise path)."""
    return (options.tz_aware and options.datetime_conversion == DatetimeConversion.DATETIME
            and options.unicode_decode_error_handler == "strict"
            and not options.type_registry._decoder_map)


def _read_batch(raw: bytes, options: Any, direct: bool, columns: _Columns,
                normalise: Any) -> int:
    """One raw batch into ``columns``; returns its number of documents."""
    if not direct:
        docs = bson.decode_all(raw, options)
        frame = normalise(docs)
        columns.add([(np.arange(len(frame)), columns.from_frame(frame))])
        columns.decoded += len(docs)
        return len(docs)
    cols = parse_batch(raw, columns.names)
    kept = _kept_as_is(cols, normalise.pairs, columns.risk)
    parts = [(np.flatnonzero(kept), columns.from_raw(cols, np.flatnonzero(kept)))]
    odd = np.flatnonzero(~kept)
    if odd.size:
        docs = [_tagged(bson.decode(raw[o:o + n], options), row) for o, n, row in zip(
            cols.offsets[odd].tolist(), cols.lengths[odd].tolist(), odd.tolist(), strict=True)]
        columns.decoded += len(docs)
        frame = normalise(docs)
        if len(frame):
            at = np.array([p.at for p in frame["pair"].tolist()], dtype=np.int64)
            parts.append((at, columns.from_frame(frame)))
    columns.add(parts)
    return len(cols)


class _Normalise:
    """``normalise_signals`` with the read's whitelist, counters and deferred warnings."""

    def __init__(self, pairs: Collection[str] | None, counts: dict[str, Counter] | None,
                 warn: _DeferredWarn, by_strategy: dict[str, Counter], risk: bool) -> None:
        self.pairs, self.counts, self.warn, self.by_strategy = pairs, counts, warn, by_strategy
        self.risk = risk

    def __call__(self, docs: list[dict]) -> pd.DataFrame:
        local: dict[str, Counter] | None = {} if self.counts is not None else None
        frame = normalise_signals(docs, pairs=self.pairs, counts=local, warn=self.warn,
                                  strategy_counts=self.by_strategy, risk=self.risk)
        if local and self.counts is not None:
            for pair, c in local.items():  # keys as plain str, never a tagged pair
                self.counts.setdefault(str(pair), Counter()).update(c)
        return frame


def read_signal_range(
    collection: Any,
    flt: Mapping[str, Any],
    projection: Mapping[str, Any],
    *,
    pairs: Collection[str] | None = None,
    counts: dict[str, Counter] | None = None,
    warn: Any = None,
    strategy_counts: dict[str, Counter] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_time_ms: int | None = None,
    risk: bool = False,
) -> RangeRead:
    """``find(flt, projection)`` normalised and sorted by (pair, ts), one batch at a time.

    Same result as ``normalise_signals(list(collection.find(flt, projection)), pairs=...,
    counts=..., warn=..., strategy_counts=..., risk=...)`` followed by a stable sort on
    ``["pair", "ts"]`` and ``reset_index(drop=True)`` (the source's ``_ingest``), with
    ``counts``/``strategy_counts`` updated in place the same way; documents are decoded
    with the collection's codec options, as ``find`` would. Raises what the query raises.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    warn = warn if warn is not None else WarnOnce(logger)
    deferred = _DeferredWarn()
    by_strategy: dict[str, Counter] = {}
    columns = _Columns(risk)
    normalise = _Normalise(pairs, counts, deferred, by_strategy, risk)
    documents = 0
    options = collection.codec_options
    direct = _direct(options)
    cursor = collection.find_raw_batches(dict(flt), dict(projection), batch_size=batch_size)
    if max_time_ms is not None:
        cursor = cursor.max_time_ms(max_time_ms)
    with cursor:
        for raw in cursor:
            documents += _read_batch(raw, options, direct, columns, normalise)
    deferred.replay(warn)
    found: Counter = Counter()
    for sid, c in by_strategy.items():
        found[sid] += sum(c.values())
        if strategy_counts is not None:
            strategy_counts.setdefault(sid, Counter()).update(c)
    if not columns.rows:
        return RangeRead(empty_signal_frame(risk), {}, found, documents, columns.decoded)
    frame, slices, per_sid = columns.frame()
    found.update(per_sid)
    return RangeRead(frame, slices, found, documents, columns.decoded)
