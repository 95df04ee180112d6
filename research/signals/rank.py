"""Factor rank generator: per timestamp, rank symbols by a factor, top-N long, the rest flat.

Each bar gets, per symbol with a defined factor value, ``score`` = the
cross-sectional percentile rank (1.0 = best) and ``weight`` = the symbol's
share of the long book: ``1/k`` for each of the k selected symbols
(``weighting="equal"``) or proportional to the rank score (``"score"``), 0 for
the rest. With ``actions=True`` membership changes also carry
enter_long/exit_long. Symbols with no factor value on a bar (warm-up) get no
row for it. Ties are broken by symbol name so results are deterministic.
Not for time-series rules (see the threshold generator).
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


class RankGenerator(SignalGenerator):
    type_name = "rank"
    Params: ClassVar[type[GeneratorParams]] = RankParams
    params: RankParams

    def generate(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        data = self.prepared(frame, [p.factor])
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
        if p.weighting == "equal":
            k = np.minimum(count, p.top_n)
            weight = np.where(selected, 1.0 / k, 0.0)
        else:
            chosen = (pd.Series(np.where(selected, score, 0.0))
                      .groupby(data["datetime"]).transform("sum"))
            weight = np.where(selected, score / chosen.to_numpy(), 0.0)
        action = None
        if p.actions:
            action = position_changes(selected.astype(np.int8), data["symbol"].to_numpy())
        note = f"rank by {p.factor} ({'ascending' if p.ascending else 'descending'}), top {p.top_n}"
        return sort_signals(signal_frame(data["datetime"], data["symbol"], score=score,
                                         weight=weight, action=action, note=note, **self.label()))
