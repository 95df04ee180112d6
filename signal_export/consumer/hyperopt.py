"""The decision knobs ``freqtrade hyperopt`` may tune, their search ranges and its result file.

``ExternalSignalStrategy`` exposes five fields of
:class:`~signal_export.consumer.matching.DecisionSettings` as Freqtrade parameters
(:data:`KNOBS`): ``enter_score``, ``confirm_n``, ``cooldown_bars`` in the ``buy``
space and ``exit_score``, ``min_hold_bars`` in the ``sell`` space, under the same
names as in ``ext_signals``. Their defaults are the ``ext_signals`` values, so
the config stays the source of defaults; a hyperopt result file
(``<strategy file>.json`` next to the strategy, written by ``freqtrade
hyperopt``) overrides them, as Freqtrade does for every strategy. Not tuned:
``tolerance_bars`` and ``max_delay_bars`` say when a stored signal is still
valid (export timing, data alignment), not how to trade it; fitting them to a
backtest would fit the exporter's timing.

The search ranges (:data:`KNOBS`, overridable per knob in
``ext_signals.hyperopt_ranges``) always contain the configured value, and the
two score ranges must not overlap (``exit_score < enter_score`` is the rule's
own constraint), which :func:`check_ranges` enforces when hyperopt starts.

The research backtest takes the same settings from its own ``ext_signals``
block; :func:`decision_params` reads a result file into that block's keys
(``signal-bridge hyperopt-params FILE`` prints it), so research decides with
the hyperopted values exactly as the bot does. Pure: no Freqtrade imports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signal_export.consumer.matching import DecisionSettings
from signal_export.errors import ConfigError


@dataclass(frozen=True)
class Knob:
    """One tunable ``DecisionSettings`` field: its Freqtrade space, kind and default range."""

    name: str
    space: str  # "buy" | "sell"
    kind: str  # "int" | "decimal"
    low: float
    high: float


#: What hyperopt may tune (same names as the ext_signals keys), with the default search ranges.
KNOBS: tuple[Knob, ...] = (
    Knob("enter_score", "buy", "decimal", 0.5, 0.95),
    Knob("confirm_n", "buy", "int", 1, 4),
    Knob("cooldown_bars", "buy", "int", 0, 24),
    Knob("exit_score", "sell", "decimal", 0.05, 0.45),
    Knob("min_hold_bars", "sell", "int", 0, 24),
)
KNOB_NAMES: tuple[str, ...] = tuple(k.name for k in KNOBS)


def decimals_for(value: float, minimum: int = 2, maximum: int = 10) -> int:
    """Decimals a ``DecimalParameter`` needs to hold ``value`` exactly (it rounds its default)."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        return maximum
    frac = text.partition(".")[2].rstrip("0")
    return max(minimum, min(maximum, len(frac)))


def search_ranges(settings: DecisionSettings,
                  overrides: Mapping[str, tuple[float, float]] | None = None
                  ) -> dict[str, tuple[float, float]]:
    """``{knob: (low, high)}``: the defaults of :data:`KNOBS`, replaced by ``overrides``,
    widened to contain the configured value (a parameter's default must be in its range)."""
    out = {}
    for knob in KNOBS:
        low, high = (overrides or {}).get(knob.name, (knob.low, knob.high))
        value = getattr(settings, knob.name)
        low, high = min(low, value), max(high, value)
        if knob.kind == "int":
            low, high = int(math.floor(low)), int(math.ceil(high))
        out[knob.name] = (low, high)
    return out


def check_ranges(ranges: Mapping[str, tuple[float, float]]) -> None:
    """ConfigError unless every exit_score the search can draw is below every enter_score."""
    enter_low, exit_high = ranges["enter_score"][0], ranges["exit_score"][1]
    if not exit_high < enter_low:
        raise ConfigError(
            f"ext_signals.hyperopt_ranges: the exit_score range (up to {exit_high}) overlaps "
            f"the enter_score range (from {enter_low}); exit_score must stay below enter_score, "
            f"so set non-overlapping ranges, e.g. \"hyperopt_ranges\": {{\"enter_score\": "
            f"[{max(exit_high, enter_low)}, 1.0], \"exit_score\": [0.0, "
            f"{min(exit_high, enter_low)}]}} (the configured values must lie inside them)")


def settings_with(settings: DecisionSettings, values: Mapping[str, Any]) -> DecisionSettings:
    """The decision settings of ``settings`` with ``values`` (knob -> value) applied, validated.

    ConfigError (naming the values) when they break the rule's constraints.
    """
    fields = {name: getattr(settings, name) for name in DecisionSettings.model_fields}
    fields.update({k: v for k, v in values.items() if k in KNOB_NAMES})
    try:
        return DecisionSettings(**fields)
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise ConfigError(f"invalid decision parameters {dict(values)}: {exc}") from None


def decision_params(path: str | Path) -> dict[str, Any]:
    """The decision knobs in a Freqtrade hyperopt result file, as ``ext_signals`` keys.

    The file is what ``freqtrade hyperopt`` writes next to the strategy
    (``{"strategy_name": ..., "params": {"buy": {...}, "sell": {...}, ...}}``);
    the values are checked with :class:`DecisionSettings` (ConfigError if bad).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable hyperopt result file ({exc})") from None
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: no 'params' object: not a Freqtrade hyperopt result file")
    found: dict[str, Any] = {}
    for knob in KNOBS:
        space = params.get(knob.space) or {}
        if knob.name in space:
            found[knob.name] = space[knob.name]
    probe = dict(found)  # validate the values (a lone threshold against a compatible other)
    if "enter_score" in probe and "exit_score" not in probe:
        probe["exit_score"] = probe["enter_score"] - 1
    if "exit_score" in probe and "enter_score" not in probe:
        probe["enter_score"] = probe["exit_score"] + 1
    settings_with(DecisionSettings(), probe)
    return {name: found[name] for name in KNOB_NAMES if name in found}
