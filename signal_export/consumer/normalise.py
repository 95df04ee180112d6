"""Raw ``crypto_signals`` documents -> a typed signal frame the matcher can trust.

The exporter validates what *it* writes, but anyone with write access can put
documents into the collection. This module is the reader's guard: every
document either becomes one typed row or is counted as ``malformed`` /
``unknown_pair`` (per pair, and per strategy id so ops can tell which producer
sends it) with a warning logged once per (field, reason). It never raises on
bad data. :func:`unknown_pair_warning` words the warning the same way for the
documents the read query leaves out (pairs outside the whitelist, counted in
:mod:`.source`). Column-wise checks (one comprehension per field, no per-bar
work); field names come from the contract module. Not a validator for
producers: that is :mod:`signal_export.contract`.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from signal_export.contract import Action

logger = logging.getLogger(__name__)

#: Columns of a normalised signal frame (see :func:`normalise_signals`).
SIGNAL_COLUMNS: tuple[str, ...] = (
    "pair", "strategy_id", "ts", "valid_until", "action", "score", "weight", "version",
)
_ACTIONS = {a.value for a in Action}
_TS_DTYPE = "datetime64[ms, UTC]"
#: Freqtrade's pair shape (BASE/QUOTE, futures BASE/QUOTE:SETTLE); only words the warning.
_PAIR_SHAPE = re.compile(r"\A[A-Z0-9]+/[A-Z0-9]+(?::[A-Z0-9]+)?\Z")


def strategy_key(value: Any) -> str:
    """The strategy id a count is filed under; ``"?"`` when the document has no usable one."""
    return value if isinstance(value, str) and value else "?"


def unknown_pair_warning(pair: str) -> str:
    """Why a string pair cannot be used: outside the whitelist, or not a pair at all."""
    if _PAIR_SHAPE.match(pair):
        return "not in the whitelist"
    return "not a pair (expected BASE/QUOTE, e.g. BTC/USDT)"


def empty_signal_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "pair": pd.Series(dtype=object), "strategy_id": pd.Series(dtype=object),
        "ts": pd.Series(dtype=_TS_DTYPE), "valid_until": pd.Series(dtype=_TS_DTYPE),
        "action": pd.Series(dtype=object), "score": pd.Series(dtype=float),
        "weight": pd.Series(dtype=float), "version": pd.Series(dtype="int64"),
    })


def _aware(v: Any) -> bool:
    return isinstance(v, datetime) and v.tzinfo is not None and v.utcoffset() is not None


def _finite_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _to_utc_ms(values: list[Any]) -> pd.Series:
    """Aware datetimes (or None) -> datetime64[ms, UTC]; pymongo may give [us]/[ns] otherwise."""
    out = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return out.astype(_TS_DTYPE)


def normalise_signals(
    docs: Iterable[Mapping[str, Any]],
    *,
    pairs: Collection[str] | None = None,
    counts: dict[str, Counter] | None = None,
    warn: Any = None,
    strategy_counts: dict[str, Counter] | None = None,
    rejected: list[tuple[int, str]] | None = None,
    keep_positions: list[int] | None = None,
) -> pd.DataFrame:
    """Typed frame of the well-formed documents; bad ones counted per pair and warned once.

    ``pairs``: the whitelist; a document for another pair is ``unknown_pair``.
    ``counts``: per-pair Counters updated in place (pair ``"?"`` when unreadable).
    ``strategy_counts``: the same per strategy id (``"?"`` when unreadable), in place.
    ``warn``: a ``WarnOnce``-like callable ``(key, msg, *args)``; default: log each reason once.
    ``rejected``: ``(position in docs, "malformed" | "unknown_pair")`` appended per unusable
    document, and ``keep_positions``: the position in ``docs`` of each returned row (the live
    read keeps both per document id, so a later change of one document replaces its share).
    """
    docs = list(docs)
    if warn is None:
        from signal_export.consumer.stats import WarnOnce

        warn = WarnOnce(logger)
    if not docs:
        return empty_signal_frame()

    def col(name: str) -> list[Any]:
        return [d.get(name) if isinstance(d, Mapping) else None for d in docs]

    pair, sid, ts = col("pair"), col("strategy_id"), col("ts")
    action, score, weight = col("action"), col("score"), col("weight")
    valid_until, version = col("valid_until"), col("version")

    reasons: dict[str, np.ndarray] = {
        "pair missing or not a string": np.array([not isinstance(p, str) or not p for p in pair]),
        "strategy_id missing or not a string": np.array(
            [not isinstance(s, str) or not s for s in sid]),
        "ts missing, not a datetime or naive (must be tz-aware UTC)": np.array(
            [not _aware(v) for v in ts]),
        "action not one of enter_long/exit_long": np.array(
            [a is not None and a not in _ACTIONS for a in action]),
        "score not a finite number": np.array(
            [s is not None and not _finite_number(s) for s in score]),
        "weight not a finite number in [0, 1]": np.array(
            [w is not None and not (_finite_number(w) and 0.0 <= float(w) <= 1.0) for w in weight]),
        "action conflicts with weight (exit_long needs weight 0, enter_long weight > 0)": np.array(
            [a is not None and _finite_number(w) and (
                (a == "exit_long" and float(w) > 0) or (a == "enter_long" and float(w) == 0))
             for a, w in zip(action, weight, strict=True)]),
        "none of action/score/weight given": np.array(
            [a is None and s is None and w is None for a, s, w in zip(action, score, weight,
                                                                      strict=True)]),
        "valid_until not a tz-aware datetime": np.array(
            [v is not None and not _aware(v) for v in valid_until]),
        "version not an integer >= 1": np.array(
            [v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1)
             for v in version]),
    }
    bad = np.zeros(len(docs), dtype=bool)
    for reason, mask in reasons.items():
        if mask.any():
            i = int(np.argmax(mask))
            warn(f"malformed:{reason}",
                 "ignoring %d malformed signal document(s): %s (first: _id=%s pair=%r)",
                 int(mask.sum()), reason, _id(docs[i]), pair[i])
        bad |= mask
    # valid_until must be after ts (only comparable where both are well-formed)
    vu_before = np.array([not b and v is not None and v <= t
                          for b, v, t in zip(bad, valid_until, ts, strict=True)])
    if vu_before.any():
        i = int(np.argmax(vu_before))
        warn("malformed:valid_until<=ts",
             "ignoring %d signal document(s) with valid_until <= ts (first: _id=%s pair=%r)",
             int(vu_before.sum()), _id(docs[i]), pair[i])
        bad |= vu_before

    unknown = np.zeros(len(docs), dtype=bool)
    if pairs is not None:
        known = set(pairs)
        unknown = np.array([not b and p not in known for b, p in zip(bad, pair, strict=True)])
        for i in np.flatnonzero(unknown):
            sid_i = strategy_key(sid[i])
            warn(f"unknown_pair:{sid_i}:{pair[i]}",
                 "ignoring signal(s): producer sends %r for strategy %s: %s",
                 pair[i], sid_i, unknown_pair_warning(pair[i]))

    if rejected is not None:
        rejected.extend((int(i), "malformed" if bad[i] else "unknown_pair")
                        for i in np.flatnonzero(bad | unknown))
    if counts is not None or strategy_counts is not None:
        for p, s, b, u in zip(pair, sid, bad, unknown, strict=True):
            if b or u:
                reason = "malformed" if b else "unknown_pair"
                if counts is not None:
                    counts.setdefault(strategy_key(p), Counter())[reason] += 1
                if strategy_counts is not None:
                    strategy_counts.setdefault(strategy_key(s), Counter())[reason] += 1

    keep = ~(bad | unknown)
    if not keep.any():
        return empty_signal_frame()
    idx = np.flatnonzero(keep)
    if keep_positions is not None:
        keep_positions.extend(idx.tolist())

    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in idx]

    frame = pd.DataFrame({
        "pair": pd.Series(pick(pair), dtype=object),
        "strategy_id": pd.Series(pick(sid), dtype=object),
        "ts": _to_utc_ms(pick(ts)),
        "valid_until": _to_utc_ms(pick(valid_until)),
        "action": pd.Series(pick(action), dtype=object),
        "score": pd.Series([np.nan if v is None else float(v) for v in pick(score)], dtype=float),
        "weight": pd.Series([np.nan if v is None else float(v) for v in pick(weight)], dtype=float),
        "version": pd.Series([0 if v is None else int(v) for v in pick(version)], dtype="int64"),
    })
    return frame


def _id(doc: Any) -> Any:
    return doc.get("_id") if isinstance(doc, Mapping) else None
