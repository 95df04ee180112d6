"""Ensemble generator: combine member generators by weighted vote or weighted average.

Each member (any generator config, with a weight) runs on the same input;
its output becomes one value per (bar, symbol) in [0, 1]: its long/flat
position when it emits actions (held between actions), otherwise its
``score``. ``weighted_average`` combines those values; ``vote`` combines the
members' yes/no (value >= 0.5). The combined value is the ``score`` of every
output row; the long/flat position enters when it is strictly above
``enter_threshold`` and exits when it is at or below ``exit_threshold``, and
an action is emitted only when that position changes. Not for mixing
strategies at export time: it makes one strategy_id out of several.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from research.signals.base import GeneratorError, GeneratorParams, SignalGenerator
from research.signals.frame import signal_frame, sort_signals
from research.signals.positions import events_to_positions, position_changes


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: dict[str, Any]
    weight: float = Field(default=1.0, gt=0)


class EnsembleParams(GeneratorParams):
    members: list[Member] = Field(min_length=1)
    method: Literal["vote", "weighted_average"] = "weighted_average"
    enter_threshold: float = 0.5
    exit_threshold: float | None = None  # defaults to enter_threshold


class EnsembleGenerator(SignalGenerator):
    type_name = "ensemble"
    Params: ClassVar[type[GeneratorParams]] = EnsembleParams
    params: EnsembleParams

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        from research.signals.registry import build_generator

        inherited = {"strategy_id": self.params.strategy_id, "timeframe": self.params.timeframe}
        self.members = []
        for i, member in enumerate(self.params.members):
            cfg = dict(member.generator)
            cfg["params"] = {**inherited, **(cfg.get("params") or {})}
            try:
                self.members.append((build_generator(cfg), member.weight))
            except Exception as exc:
                raise GeneratorError(f"ensemble member {i}: {exc}") from exc

    def generate(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        data = self.prepared(frame)
        grid = data[["datetime", "symbol"]]
        total = np.zeros(len(data))
        for gen, weight in self.members:
            value = member_values(gen.generate(data), grid)
            if p.method == "vote":
                value = (value >= 0.5).astype(np.float64)
            total += weight * value
        combined = total / sum(w for _, w in self.members)
        groups = data["symbol"].to_numpy()
        exit_at = p.enter_threshold if p.exit_threshold is None else p.exit_threshold
        position = events_to_positions(combined > p.enter_threshold, combined <= exit_at, groups)
        action = position_changes(position, groups)
        note = f"{p.method} of {len(self.members)} members"
        return sort_signals(signal_frame(data["datetime"], data["symbol"], score=combined,
                                         action=action, note=note, **self.label()))


def member_values(signals: pd.DataFrame, grid: pd.DataFrame) -> np.ndarray:
    """A member's signals as one value in [0, 1] per grid row (grid sorted by symbol, time).

    Actions -> held long/flat position; otherwise the score; missing rows count as 0.
    """
    merged = grid.merge(signals.rename(columns={"ts": "datetime"})[
        ["datetime", "symbol", "action", "score"]], on=["datetime", "symbol"], how="left")
    if signals["action"].notna().any():
        state = merged["action"].map({"enter_long": 1.0, "exit_long": 0.0})
        held = state.groupby(merged["symbol"], sort=False).ffill().fillna(0.0)
        return held.to_numpy(dtype=np.float64)
    return merged["score"].fillna(0.0).to_numpy(dtype=np.float64)
