"""Raw ``crypto_signals`` documents -> a typed signal frame the matcher can trust.

The exporter validates what *it* writes, but anyone with write access can put
documents into the collection. This module is the reader's guard: every
document either becomes one typed row or is counted as ``malformed`` /
``unknown_pair`` (per pair, and per strategy id so ops can tell which producer
sends it) with a warning logged once per (field, reason). It never raises on
bad data. A futures read (``risk=True``) adds the risk fields as float columns and
the contract's risk checks (:func:`.risk.invalid_risk`) to the acceptance rules.
:func:`unknown_pair_warning` words the warning the same way for the
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from signal_export.consumer.risk import invalid_risk, risk_numbers
from signal_export.contract import RISK_FIELDS, Action, is_futures_pair

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


def signal_columns(risk: bool = False) -> tuple[str, ...]:
    """The columns of a normalised frame: :data:`SIGNAL_COLUMNS`, then ``RISK_FIELDS`` when
    the read carries the futures risk fields (float64, NaN where a document has none)."""
    return (*SIGNAL_COLUMNS, *RISK_FIELDS) if risk else SIGNAL_COLUMNS


def empty_signal_frame(risk: bool = False) -> pd.DataFrame:
    return pd.DataFrame({
        "pair": pd.Series(dtype=object), "strategy_id": pd.Series(dtype=object),
        "ts": pd.Series(dtype=_TS_DTYPE), "valid_until": pd.Series(dtype=_TS_DTYPE),
        "action": pd.Series(dtype=object), "score": pd.Series(dtype=float),
        "weight": pd.Series(dtype=float), "version": pd.Series(dtype="int64"),
        **({f: pd.Series(dtype=float) for f in RISK_FIELDS} if risk else {}),
    })


def _aware(v: Any) -> bool:
    return isinstance(v, datetime) and v.tzinfo is not None and v.utcoffset() is not None


def _to_utc_ms(values: list[Any]) -> pd.Series:
    """Aware datetimes (or None) -> datetime64[ms, UTC]; pymongo may give [us]/[ns] otherwise."""
    out = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return out.astype(_TS_DTYPE)


#: ``SignalFields.action`` categories: absent (missing or null), not an action, an action.
ACTION_ABSENT, ACTION_INVALID = -1, 0
#: Action value -> its ``SignalFields.action`` code (> 0).
ACTION_CODES: dict[str, int] = {a.value: i + 1 for i, a in enumerate(Action)}
_ENTER_LONG = ACTION_CODES[Action.ENTER_LONG.value]
_EXIT_LONG = ACTION_CODES[Action.EXIT_LONG.value]
_ENTER_SHORT = ACTION_CODES[Action.ENTER_SHORT.value]
_EXIT_SHORT = ACTION_CODES[Action.EXIT_SHORT.value]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass
class SignalFields:
    """What the acceptance rules need to know of n documents, column-wise (typed arrays).

    The one input of the rules (:func:`malformed_masks`, :func:`valid_until_not_after_ts`):
    :func:`normalise_signals` fills it from decoded documents (:func:`fields_of_values`), the
    backtest reader (:mod:`.range_read`) from raw BSON types. ``*_given``: the field is present
    and not null. A reader may leave a type it cannot convert exactly out of ``*_number`` /
    ``*_int`` / ``*_aware`` / ``*_str``: the row then counts as bad in its view and it must
    let :func:`normalise_signals` decide (never the other way round).
    """

    pair_str: np.ndarray  # bool: a non-empty string
    pair_futures: np.ndarray  # bool: a string naming a futures pair (``BTC/USDT:USDT``)
    strategy_id_str: np.ndarray  # bool: a non-empty string
    ts_aware: np.ndarray  # bool: a tz-aware datetime
    ts_us: np.ndarray  # int64 microseconds since the epoch where ``ts_aware``
    action: np.ndarray  # int8: ACTION_ABSENT, ACTION_INVALID or an ACTION_CODES value
    score_given: np.ndarray
    score_number: np.ndarray  # bool: a real number (not a bool), value in ``score``
    score: np.ndarray  # float64 (inf when too large for a float)
    weight_given: np.ndarray
    weight_number: np.ndarray
    weight: np.ndarray
    valid_until_given: np.ndarray
    valid_until_aware: np.ndarray
    valid_until_us: np.ndarray
    version_given: np.ndarray
    version_int: np.ndarray  # bool: an integer (not a bool), value in ``version``
    version: np.ndarray  # int64, clipped to [-1, 2**62] (only compared with 1)
    #: futures reads only: per ``RISK_FIELDS`` name, float64 values (NaN: absent or null,
    #: -inf: present but not a number); None: the read does not carry them (spot)
    risk: dict[str, np.ndarray] | None = None


def malformed_masks(f: SignalFields) -> dict[str, np.ndarray]:
    """The acceptance rules, one boolean mask (True: malformed) per reason, column-wise."""
    with np.errstate(invalid="ignore"):
        w_num = f.weight_number & np.isfinite(f.weight)
        masks = {
            "pair missing or not a string": ~f.pair_str,
            "strategy_id missing or not a string": ~f.strategy_id_str,
            "ts missing, not a datetime or naive (must be tz-aware UTC)": ~f.ts_aware,
            "action not one of enter_long/exit_long/enter_short/exit_short":
                f.action == ACTION_INVALID,
            "score not a finite number": f.score_given & ~(f.score_number
                                                          & np.isfinite(f.score)),
            "weight not a finite number in [-1, 1]": f.weight_given & ~(
                w_num & (f.weight >= -1.0) & (f.weight <= 1.0)),
            "action conflicts with weight (enter_long needs weight > 0, enter_short weight < 0, "
            "exit_long/exit_short weight 0)":
                w_num & (((f.action == _ENTER_LONG) & (f.weight <= 0))
                         | ((f.action == _ENTER_SHORT) & (f.weight >= 0))
                         | (((f.action == _EXIT_LONG) | (f.action == _EXIT_SHORT))
                            & (f.weight != 0))),
            "none of action/score/weight given": (f.action == ACTION_ABSENT) & ~f.score_given
                & ~f.weight_given,
            "valid_until not a tz-aware datetime": f.valid_until_given & ~f.valid_until_aware,
            "version not an integer >= 1": f.version_given & ~(f.version_int & (f.version >= 1)),
            **({} if f.risk is None else _risk_masks(f, f.risk)),
        }
        # the contract's check_market: a spot bot cannot short, and deciding the short
        # would close a held long on its flip; written straight into the store, it is
        # refused here (the exporter and ingest refuse it on write). One reason per
        # document: only where no other rule already refused it.
        short = (f.action == _ENTER_SHORT) | (f.action == _EXIT_SHORT) | (w_num & (f.weight < 0))
        masks["a short (enter_short/exit_short or weight < 0) on a spot pair (shorts need the "
              "futures pair, e.g. BTC/USDT:USDT)"] = (
            f.pair_str & ~f.pair_futures & short & ~np.logical_or.reduce(list(masks.values())))
        return masks


def _risk_masks(f: SignalFields, risk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The contract's risk checks (:func:`.risk.invalid_risk`) on a futures read's rows."""
    with np.errstate(invalid="ignore"):
        short = (f.action == _ENTER_SHORT) | (f.weight_number & (f.weight < 0))
    return invalid_risk(risk, short)


def valid_until_not_after_ts(f: SignalFields, bad: np.ndarray) -> np.ndarray:
    """The last rule: ``valid_until <= ts`` (only where both are well-formed, ``~bad``)."""
    return ~bad & f.valid_until_given & (f.valid_until_us <= f.ts_us)


def _aware_us(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    aware = np.array([_aware(v) for v in values], dtype=bool)
    us = np.array([(v - _EPOCH) // _US if a else 0 for v, a in zip(values, aware, strict=True)],
                  dtype=np.int64)
    return aware, us


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:  # an int beyond float's range: not finite
        return math.inf


def _numbers(values: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    given = np.array([v is not None for v in values], dtype=bool)
    number = np.array([isinstance(v, Real) and not isinstance(v, bool) for v in values],
                      dtype=bool)
    floats = np.array([_as_float(v) if n else np.nan for v, n in zip(values, number, strict=True)],
                      dtype=np.float64)
    return given, number, floats


def fields_of_values(pair: list[Any], sid: list[Any], ts: list[Any], action: list[Any],
                     score: list[Any], weight: list[Any], valid_until: list[Any],
                     version: list[Any], risk: Mapping[str, list[Any]] | None = None
                     ) -> SignalFields:
    """:class:`SignalFields` of decoded documents' values (one list per field, None: absent;
    ``risk``: the values of each ``RISK_FIELDS`` name, futures reads only)."""
    ts_aware, ts_us = _aware_us(ts)
    vu_aware, vu_us = _aware_us(valid_until)
    score_given, score_number, score_v = _numbers(score)
    weight_given, weight_number, weight_v = _numbers(weight)
    version_int = np.array([isinstance(v, int | np.integer) and not isinstance(v, bool)
                            for v in version], dtype=bool)
    return SignalFields(
        pair_str=np.array([isinstance(p, str) and bool(p) for p in pair], dtype=bool),
        pair_futures=np.array([isinstance(p, str) and is_futures_pair(p) for p in pair],
                              dtype=bool),
        strategy_id_str=np.array([isinstance(s, str) and bool(s) for s in sid], dtype=bool),
        ts_aware=ts_aware, ts_us=ts_us,
        action=np.array([ACTION_ABSENT if a is None else ACTION_CODES.get(a, ACTION_INVALID)
                         if isinstance(a, str) else ACTION_INVALID for a in action],
                        dtype=np.int8),
        score_given=score_given, score_number=score_number, score=score_v,
        weight_given=weight_given, weight_number=weight_number, weight=weight_v,
        valid_until_given=np.array([v is not None for v in valid_until], dtype=bool),
        valid_until_aware=vu_aware, valid_until_us=vu_us,
        version_given=np.array([v is not None for v in version], dtype=bool),
        version_int=version_int,
        version=np.array([min(max(int(v), -1), 2**62) if i else 0
                          for v, i in zip(version, version_int, strict=True)], dtype=np.int64),
        risk=None if risk is None else {f: risk_numbers(risk[f]) for f in RISK_FIELDS},
    )


def normalise_signals(
    docs: Iterable[Mapping[str, Any]],
    *,
    pairs: Collection[str] | None = None,
    counts: dict[str, Counter] | None = None,
    warn: Any = None,
    strategy_counts: dict[str, Counter] | None = None,
    rejected: list[tuple[int, str]] | None = None,
    keep_positions: list[int] | None = None,
    risk: bool = False,
) -> pd.DataFrame:
    """Typed frame of the well-formed documents; bad ones counted per pair and warned once.

    ``pairs``: the whitelist; a document for another pair is ``unknown_pair``.
    ``counts``: per-pair Counters updated in place (pair ``"?"`` when unreadable).
    ``strategy_counts``: the same per strategy id (``"?"`` when unreadable), in place.
    ``warn``: a ``WarnOnce``-like callable ``(key, msg, *args)``; default: log each reason once.
    ``rejected``: ``(position in docs, "malformed" | "unknown_pair")`` appended per unusable
    document, and ``keep_positions``: the position in ``docs`` of each returned row (the live
    read keeps both per document id, so a later change of one document replaces its share).
    ``risk``: futures - the frame carries ``RISK_FIELDS`` too (NaN where absent) and a
    document whose values break the contract (:func:`.risk.invalid_risk`) is ``malformed``.
    """
    docs = list(docs)
    if warn is None:
        from signal_export.consumer.stats import WarnOnce

        warn = WarnOnce(logger)
    if not docs:
        return empty_signal_frame(risk)

    def col(name: str) -> list[Any]:
        return [d.get(name) if isinstance(d, Mapping) else None for d in docs]

    pair, sid, ts = col("pair"), col("strategy_id"), col("ts")
    action, score, weight = col("action"), col("score"), col("weight")
    valid_until, version = col("valid_until"), col("version")

    fields = fields_of_values(pair, sid, ts, action, score, weight, valid_until, version,
                              {f: col(f) for f in RISK_FIELDS} if risk else None)
    reasons = malformed_masks(fields)
    bad = np.zeros(len(docs), dtype=bool)
    for reason, mask in reasons.items():
        if mask.any():
            i = int(np.argmax(mask))
            warn(f"malformed:{reason}",
                 "ignoring %d malformed signal document(s): %s (first: _id=%s pair=%r)",
                 int(mask.sum()), reason, _id(docs[i]), pair[i])
        bad |= mask
    # valid_until must be after ts (only comparable where both are well-formed)
    vu_before = valid_until_not_after_ts(fields, bad)
    if vu_before.any():
        i = int(np.argmax(vu_before))
        warn("malformed:valid_until<=ts",
             "ignoring %d signal document(s) with valid_until <= ts (first: _id=%s pair=%r)",
             int(vu_before.sum()), _id(docs[i]), pair[i])
        bad |= vu_before

    unknown = np.zeros(len(docs), dtype=bool)
    if pairs is not None:
        known = set(pairs)
        unknown = np.array([not b and p not in known for b, p in zip(bad, pair, strict=True)],
                           dtype=bool)
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
        return empty_signal_frame(risk)
    idx = np.flatnonzero(keep)
    if keep_positions is not None:
        keep_positions.extend(idx.tolist())

    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in idx]

    return pd.DataFrame({
        "pair": pd.Series(pick(pair), dtype=object),
        "strategy_id": pd.Series(pick(sid), dtype=object),
        "ts": _to_utc_ms(pick(ts)),
        "valid_until": _to_utc_ms(pick(valid_until)),
        "action": pd.Series(pick(action), dtype=object),
        "score": pd.Series([np.nan if v is None else float(v) for v in pick(score)], dtype=float),
        "weight": pd.Series([np.nan if v is None else float(v) for v in pick(weight)], dtype=float),
        "version": pd.Series([0 if v is None else int(v) for v in pick(version)], dtype="int64"),
        **({} if fields.risk is None else {f: fields.risk[f][idx] for f in RISK_FIELDS}),
    })


def _id(doc: Any) -> Any:
    return doc.get("_id") if isinstance(doc, Mapping) else None
