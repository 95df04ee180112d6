"""The futures fields of signal documents (``leverage``, ``stop_loss``, ``take_profit``).

The signal frame the source builds (:mod:`.normalise`) has the decision's columns only;
in futures mode the strategy reads the risk fields with one more query over the same
window (strategy ids, timeframe, pairs, ``ts`` range), restricted to documents that carry
one of them, and joins them onto the signal rows by the document key (pair, strategy id,
``ts``, version). Values outside the contract (``signal_export/contract.py``: leverage in
[1, 125], ``stop_loss > 0`` with ``stop_loss * leverage < 1``, ``take_profit > 0`` and
``< 1`` on a short) drop the whole signal, counted and warned once naming the field: a
stop must never be silently lost. Not the decision: :mod:`.matching` carries the values
to the entry row.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from signal_export.consumer.stats import WarnOnce
from signal_export.contract import RISK_FIELDS

logger = logging.getLogger(__name__)

_KEY = ["pair", "strategy_id", "ts", "version"]
_PROJECTION = {"_id": 0, "pair": 1, "strategy_id": 1, "ts": 1, "version": 1, "action": 1,
               "weight": 1, **{f: 1 for f in RISK_FIELDS}}
_SHORT_ACTIONS = ("enter_short",)


def risk_numbers(values: list[Any]) -> np.ndarray:
    """Decoded values of one risk field -> float64 (see the module doc for NaN / -inf)."""
    return np.array([np.nan if v is None else float(v) if isinstance(v, int | float)
                     and not isinstance(v, bool) else -np.inf for v in values],
                    dtype=np.float64)


def risk_frame(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """Documents -> one row per key with the three values (NaN = absent, -inf = not a number)."""
    frame = pd.DataFrame({
        "pair": [d.get("pair") for d in docs],
        "strategy_id": [d.get("strategy_id") for d in docs],
        "ts": pd.to_datetime(pd.Series([d.get("ts") for d in docs], dtype=object),
                             utc=True).astype("datetime64[ms, UTC]"),
        "version": [int(d["version"]) if isinstance(d.get("version"), int) else 0
                    for d in docs],
        "action": pd.Series([d.get("action") for d in docs], dtype=object),
        "weight": [w if isinstance(w := d.get("weight"), int | float)
                   and not isinstance(w, bool) else np.nan for d in docs],
        **{f: risk_numbers([d.get(f) for d in docs]) for f in RISK_FIELDS},
    })
    return frame.drop_duplicates(_KEY, keep="last")


def invalid_risk(risk: Mapping[str, np.ndarray], short: np.ndarray) -> dict[str, np.ndarray]:
    """Per reason, the rows whose risk values break the contract (absent values are fine).

    ``risk``: per field of ``RISK_FIELDS``, float64 values (NaN: absent, -inf: present but
    not a number); ``short``: the rows that enter a short (``enter_short`` or weight < 0).
    """
    lev, sl, tp = (np.asarray(risk[f], dtype=np.float64) for f in RISK_FIELDS)
    given = {f: ~np.isnan(v) for f, v in zip(RISK_FIELDS, (lev, sl, tp), strict=True)}
    lev_eff = np.where(given["leverage"], lev, 1.0)
    with np.errstate(invalid="ignore"):
        return {
            "leverage not a number in [1, 125]": given["leverage"] & ~((lev >= 1) & (lev <= 125)),
            "stop_loss not a number > 0 with stop_loss * leverage < 1": given["stop_loss"] & ~(
                (sl > 0) & (sl * lev_eff < 1)),
            "take_profit not a number > 0 (< 1 on a short)": given["take_profit"] & ~(
                (tp > 0) & ~(short & (tp >= 1))),
        }


class RiskReader:
    """The window's risk fields, read with ``collection()`` (the source's connection)."""

    def __init__(self, strategy_ids: Collection[str], timeframe: str,
                 collection: Callable[[], Any], timeout_ms: int | None = None) -> None:
        self.strategy_ids = list(strategy_ids)
        self.timeframe = timeframe
        self.collection = collection
        self.timeout_ms = timeout_ms
        self.frame = risk_frame([])
        #: per pair: the last read's signals dropped for bad risk values (``malformed``)
        self.read_counts: dict[str, Counter] = {}
        self._warn = WarnOnce(logger)

    def load(self, pairs: Collection[str], start: datetime, end: datetime | None) -> None:
        """One query: the documents of the window that carry a risk field; those breaking
        the contract are warned once per reason and counted per pair (``read_counts``)."""
        ts: dict[str, Any] = {"$gte": start}
        if end is not None:
            ts["$lte"] = end
        flt = {"strategy_id": {"$in": self.strategy_ids}, "pair": {"$in": sorted(pairs)},
               "timeframe": self.timeframe, "ts": ts,
               "$or": [{f: {"$exists": True}} for f in RISK_FIELDS]}
        cursor = self.collection().find(flt, _PROJECTION)
        if self.timeout_ms:
            cursor = cursor.max_time_ms(self.timeout_ms)
        frame = risk_frame(list(cursor))
        bad = np.zeros(len(frame), dtype=bool)
        short = frame["action"].isin(_SHORT_ACTIONS).to_numpy() | (
            frame["weight"].to_numpy(dtype=float) < 0)
        for reason, mask in invalid_risk({f: frame[f].to_numpy() for f in RISK_FIELDS},
                                         short).items():
            if mask.any():
                i = int(np.argmax(mask))
                self._warn(f"risk:{reason}", "ignoring %d futures signal(s): %s (first: pair=%r "
                           "ts=%s)", int(mask.sum()), reason, frame["pair"].iloc[i],
                           frame["ts"].iloc[i])
            bad |= mask
        self.read_counts = {pair: Counter(malformed=int(n)) for pair, n in
                            frame.loc[bad, "pair"].value_counts().items()}
        self.frame = frame.assign(bad=bad).drop(columns=["action", "weight"])

    def attach(self, signals: pd.DataFrame | None) -> pd.DataFrame | None:
        """``signals`` with the risk columns (NaN where a document has none); signals whose
        values break the contract (found by :meth:`load`) are dropped."""
        if signals is None:
            return None
        if self.frame.empty or signals.empty:
            return signals.assign(**{f: np.nan for f in RISK_FIELDS})
        out = signals.merge(self.frame, on=_KEY, how="left", sort=False)
        out.index = signals.index
        bad = out.pop("bad").fillna(False).to_numpy(dtype=bool)
        return out[~bad] if bad.any() else out
