"""Raw ``crypto_signals`` documents -> a typed signal frame the matcher can trust.

The exporter validates what *it* writes, but anyone with write access can put
documents into the collection. This module is the reader's guard: every
document either becomes one typed row or is counted as ``malformed`` /
``unknown_pair`` with a warning logged once per (field, reason). It never
raises on bad data. Column-wise checks (one comprehension per field, no per-bar
work); field names come from the contract module. Not a validator for
producers: that is :mod:`signal_export.contract`.
"""

from __future__ import annotations

import logging
import math
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
) -> pd.DataFrame:
    """Typed frame of the well-formed documents; bad ones counted per pair and warned once.

    ``pairs``: the whitelist; a document for another pair is ``unknown_pair``.
    ``counts``: per-pair Counters updated in place (pair ``"?"`` when unreadable).
    ``warn``: a ``WarnOnce``-like callable ``(key, msg, *args)``; default: log each reason once.
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
        if unknown.any():
            i = int(np.argmax(unknown))
            warn(f"unknown_pair:{pair[i]}", "ignoring signal(s) for pair %r: not in the whitelist",
                 pair[i])

    if counts is not None:
        for p, b, u in zip(pair, bad, unknown, strict=True):
            if b or u:
                key = p if isinstance(p, str) and p else "?"
                counts.setdefault(key, Counter())["malformed" if b else "unknown_pair"] += 1

    keep = ~(bad | unknown)
    if not keep.any():
        return empty_signal_frame()
    idx = np.flatnonzero(keep)

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
