"""Threshold/rule generator: declarative enter/exit rules over factor columns.

``{"enter": "rsi_14 < 30 and close > sma_200", "exit": "rsi_14 > 70"}``: rules
are in the safe expression language of :mod:`research.signals.expression`.
In ``state`` mode (default) the rules drive a long/flat position per symbol
(enter when flat, exit when long, exit wins a tie) and an action is emitted
only when the position changes; without an ``exit`` rule the position is held
exactly while ``enter`` is true. ``events`` mode emits an action on every bar a
rule is true (no dedupe). An optional ``score`` expression is not supported:
scores come from the rank or ensemble generators. Not for cross-sectional logic.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from research.signals.base import GeneratorParams, SignalGenerator
from research.signals.expression import evaluate_rule, parse_rule, rule_columns
from research.signals.frame import signal_frame, sort_signals
from research.signals.positions import events_to_positions, position_changes
from signal_export.contract import Action


class ThresholdParams(GeneratorParams):
    enter: str
    exit: str | None = None
    mode: Literal["state", "events"] = "state"

    def model_post_init(self, _context: object) -> None:
        parse_rule(self.enter)
        if self.exit is not None:
            parse_rule(self.exit)


class ThresholdGenerator(SignalGenerator):
    type_name = "threshold"
    Params: ClassVar[type[GeneratorParams]] = ThresholdParams
    params: ThresholdParams

    def generate(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        cols = rule_columns(p.enter) | (rule_columns(p.exit) if p.exit else set())
        data = self.prepared(frame, sorted(cols))
        groups = data["symbol"].to_numpy()
        enter = evaluate_rule(p.enter, data)
        exit_ = evaluate_rule(p.exit, data) if p.exit else ~enter
        if p.mode == "events":
            action = np.where(exit_, Action.EXIT_LONG.value,
                              np.where(enter, Action.ENTER_LONG.value, None)).astype(object)
            if p.exit is None:  # without an exit rule, 'events' means: enter whenever true
                action = np.where(enter, Action.ENTER_LONG.value, None).astype(object)
        else:
            action = position_changes(events_to_positions(enter, exit_, groups), groups)
        fired = pd.notna(action)
        note = f"enter: {p.enter}" + (f"; exit: {p.exit}" if p.exit else "")
        return sort_signals(signal_frame(data.loc[fired, "datetime"], data.loc[fired, "symbol"],
                                         action=action[fired], note=note, **self.label()))
