"""Factor rank generator: per timestamp, rank symbols by a factor, top-N long, the rest flat.

Each bar gets, per symbol with a defined factor value, ``score`` = the
cross-sectional percentile rank (1.0 = best) and ``weight`` = the symbol's
share of the long book: ``1/k`` for each of the k selected symbols
(``weighting="equal"``) or proportional to the rank score (``"score"``), 0 for
the rest. With ``short_n`` (futures symbols only) the worst ``short_n`` symbols
not already long form the short book: weights ``-1/k`` (or proportional to the
inverted rank), so the long and the short book each sum to 1 in absolute value.
``leverage``, ``stop_loss`` and ``take_profit`` (fractions of the entry price)
ride on every row that holds a position. With ``actions=True`` membership changes
also carry enter_long/exit_long (enter_short/exit_short). Symbols with no factor
value on a bar (warm-up) get no row for it. Ties are broken by symbol name so
results are deterministic. Not for time-series rules (see the threshold generator).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from research.signals.base import GeneratorParams, SignalGenerator
from research.signals.frame import signal_frame, sort_signals
from research.signals.positions import position_changes


class RankParams(GeneratorParams):
    factor: str
    top_n: int = Field(gt=0)
    ascending: bool = False  # False: the highest factor value ranks first
    weighting: Literal["equal", "score"] = "equal"
    actions: bool = False
    short_n: int = Field(default=0, ge=0)
    leverage: float | None = Field(default=None, ge=1.0, le=125.0)
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    take_profit: float | None = Field(default=None, gt=0, lt=1)


class RankGenerator(SignalGenerator):
    type_name = "rank"
    Params: ClassVar[type[GeneratorParams]] = RankParams
    params: RankParams

    def generate(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        data = self.prepared(frame, [p.factor])
        if p.short_n or (p.leverage or 1.0) != 1.0:
            self.require_futures(data, "short_n/leverage need")
        data = data[data[p.factor].notna()].reset_index(drop=True)
        value = data[p.factor].to_numpy(dtype=np.float64)
        key = -value if not p.ascending else value
        # order within each timestamp: best first, ties by symbol name
        order = np.lexsort((data["symbol"].to_numpy(), key, data["datetime"].to_numpy()))
        position_in_ts = np.empty(len(data), dtype=np.int64)
        ts_sorted = data["datetime"].to_numpy()[order]
        starts = np.r_[0, np.flatnonzero(ts_sorted[1:] != ts_sorted[:-1]) + 1] if len(data) else []
        group_start = np.zeros(len(data), dtype=np.int64)
        if len(data):
            group_start[starts] = starts
            group_start = np.maximum.accumulate(group_start)
        position_in_ts[order] = np.arange(len(data)) - group_start
        count = data.groupby("datetime")["symbol"].transform("size").to_numpy()
        score = 1.0 - position_in_ts / count  # best = 1.0, worst = 1/count
        selected = position_in_ts < p.top_n
        shorted = ~selected & (position_in_ts >= count - p.short_n)
        weight = (self._book(selected, score, data["datetime"])
                  - self._book(shorted, 1.0 - score + 1.0 / count, data["datetime"]))
        side = selected.astype(np.int8) - shorted.astype(np.int8)
        action = position_changes(side, data["symbol"].to_numpy()) if p.actions else None
        note = f"rank by {p.factor} ({'ascending' if p.ascending else 'descending'}), top {p.top_n}"
        if p.short_n:
            note += f", bottom {p.short_n} short"
        held = side != 0

        def risk(value: float | None) -> np.ndarray | None:
            return None if value is None else np.where(held, value, np.nan)

        return sort_signals(signal_frame(
            data["datetime"], data["symbol"], score=score, weight=weight, action=action,
            note=note, leverage=risk(p.leverage), stop_loss=risk(p.stop_loss),
            take_profit=risk(p.take_profit), **self.label()))

    def _book(self, chosen: np.ndarray, strength: np.ndarray, ts: pd.Series) -> np.ndarray:
        """Weights of one book (each bar's chosen symbols sum to 1): equal or by strength."""
        if self.params.weighting == "equal":
            k = pd.Series(chosen).groupby(ts.to_numpy()).transform("sum").to_numpy()
            return np.where(chosen, 1.0 / np.maximum(k, 1), 0.0)
        total = pd.Series(np.where(chosen, strength, 0.0)).groupby(ts.to_numpy()).transform(
            "sum").to_numpy()
        return np.where(chosen, strength / np.where(total > 0, total, 1.0), 0.0)
