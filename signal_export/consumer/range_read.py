"""A backtest's signal range read in bounded memory: raw batches -> compact columns.

``list(find(...))`` holds every document of the range as a Python dict (~1 KB
each) before :func:`~signal_export.consumer.normalise.normalise_signals` even
starts, so a year of 1h signals for thousands of pairs needs tens of GB. This
reader streams the same query with ``find_raw_batches`` and turns each batch
into compact columns right away: strings as small integer codes into one
vocabulary per column (pair, strategy_id, action), times as int64 ms, numbers
as float64/int64. Only the current batch is ever decoded; the frame is built
once at the end, already sorted by (pair, ts) like :class:`.source.SignalSource`
sorts it, with one slice per pair.

The rules stay in one place: every batch goes through ``normalise_signals``
itself (same typed rows, same ``malformed``/``unknown_pair`` counts per pair
and per strategy id). Its warnings are collected over the batches and replayed
once at the end with the counts summed, so the log reads as for one query.
Result: the same frame, counts and warnings as ``normalise_signals(list(find))``
followed by the source's stable sort, in a few hundred bytes per document at
peak instead of ~1.4 KB. Standard commands only (``find`` + ``getMore``).
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

from signal_export.consumer.normalise import (
    SIGNAL_COLUMNS,
    empty_signal_frame,
    normalise_signals,
)
from signal_export.consumer.stats import WarnOnce

logger = logging.getLogger(__name__)

#: Documents per ``getMore``: ~1-2 MB of BSON; bounds the decoded dicts alive at once.
DEFAULT_BATCH_SIZE = 10_000


@dataclass
class RangeRead:
    """The normalised, (pair, ts)-sorted frame of a range, with what the source keeps of it."""

    frame: pd.DataFrame
    #: pair -> (first row, end row) in ``frame``
    slices: dict[str, tuple[int, int]]
    #: documents the query returned, per strategy id (``"?"`` when unreadable)
    found: Counter = field(default_factory=Counter)
    documents: int = 0


class _Vocab:
    """Distinct values of one string column -> stable int32 codes (first seen, first code)."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []

    def encode(self, column: pd.Series) -> np.ndarray:
        local, uniques = pd.factorize(column.to_numpy(dtype=object), use_na_sentinel=True)
        lut = np.empty(len(uniques) + 1, dtype=np.int32)
        for i, value in enumerate(uniques.tolist()):
            lut[i] = self._code(value)
        if (local < 0).any():  # None (factorize's -1) picks the last entry
            lut[-1] = self._code(None)
        return lut[local]

    def _code(self, value: Any) -> int:
        code = self.codes.get(value)
        if code is None:
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


class _Columns:
    """Per-batch compact arrays of the kept rows; concatenated once at the end."""

    def __init__(self) -> None:
        self.pair, self.sid, self.action = _Vocab(), _Vocab(), _Vocab()
        self.parts: dict[str, list[np.ndarray]] = {c: [] for c in SIGNAL_COLUMNS}

    def add(self, frame: pd.DataFrame) -> None:
        p = self.parts
        p["pair"].append(self.pair.encode(frame["pair"]))
        p["strategy_id"].append(self.sid.encode(frame["strategy_id"]))
        p["action"].append(self.action.encode(frame["action"]))
        p["ts"].append(_epoch_ms(frame["ts"]).copy())
        p["valid_until"].append(_epoch_ms(frame["valid_until"]).copy())
        for name in ("score", "weight"):
            p[name].append(frame[name].to_numpy(dtype=np.float64, copy=True))
        p["version"].append(frame["version"].to_numpy(dtype=np.int64, copy=True))

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
        per_sid = Counter(dict(zip(sid_values.tolist(),
                                   np.bincount(sid, minlength=len(sid_values)).tolist(),
                                   strict=True)))
        cols["strategy_id"] = pd.Series(sid_values[sid[order]], dtype=object, copy=False)
        del sid
        cols["ts"] = _utc(ts)
        cols["valid_until"] = _utc(self.take("valid_until")[order])
        cols["action"] = pd.Series(self.action.array()[self.take("action")[order]],
                                   dtype=object, copy=False)
        for name in ("score", "weight", "version"):
            cols[name] = pd.Series(self.take(name)[order], copy=False)
        frame = pd.DataFrame(cols, columns=list(SIGNAL_COLUMNS), copy=False)
        starts = np.flatnonzero(np.r_[True, pair_rank[1:] != pair_rank[:-1]])
        ends = np.append(starts[1:], len(pair_rank))
        slices = {str(names[pair_rank[a]]): (int(a), int(b))
                  for a, b in zip(starts.tolist(), ends.tolist(), strict=True)}
        return frame, slices, per_sid


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
) -> RangeRead:
    """``find(flt, projection)`` normalised and sorted by (pair, ts), one batch at a time.

    Same result as ``normalise_signals(list(collection.find(flt, projection)), pairs=...,
    counts=..., warn=..., strategy_counts=...)`` followed by a stable sort on
    ``["pair", "ts"]`` and ``reset_index(drop=True)`` (the source's ``_ingest``), with
    ``counts``/``strategy_counts`` updated in place the same way; documents are decoded
    with the collection's codec options, as ``find`` would. Raises what the query raises.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    warn = warn if warn is not None else WarnOnce(logger)
    deferred = _DeferredWarn()
    by_strategy: dict[str, Counter] = {}
    columns = _Columns()
    kept = 0
    documents = 0
    options = collection.codec_options
    cursor = collection.find_raw_batches(dict(flt), dict(projection), batch_size=batch_size)
    if max_time_ms is not None:
        cursor = cursor.max_time_ms(max_time_ms)
    with cursor:
        for raw in cursor:
            docs = bson.decode_all(raw, options)
            documents += len(docs)
            part = normalise_signals(docs, pairs=pairs, counts=counts, warn=deferred,
                                     strategy_counts=by_strategy)
            del docs
            if len(part):
                kept += len(part)
                columns.add(part)
    deferred.replay(warn)
    found: Counter = Counter()
    for sid, c in by_strategy.items():
        found[sid] += sum(c.values())
        if strategy_counts is not None:
            strategy_counts.setdefault(sid, Counter()).update(c)
    if not kept:
        return RangeRead(empty_signal_frame(), {}, found, documents)
    frame, slices, per_sid = columns.frame()
    found.update(per_sid)
    return RangeRead(frame, slices, found, documents)
