"""Build a signal generator from a config dict, as a YAML/JSON pipeline file selects it.

``build_generator({"type": "threshold", "params": {...}})``; the known types are
in :data:`GENERATORS` (threshold, rank, ensemble, trap) and other modules can
add theirs with :func:`register_generator` (e.g. the LSTM generator). Unknown
types, unknown keys and bad values raise :class:`GeneratorConfigError` naming
them. Not a pipeline runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from research.signals.base import SignalGenerator
from research.signals.ensemble import EnsembleGenerator
from research.signals.rank import RankGenerator
from research.signals.threshold import ThresholdGenerator
from research.signals.trap import TrapGenerator


class GeneratorConfigError(ValueError):
    """A generator config that cannot be built; the message names the type and field."""


GENERATORS: dict[str, type[SignalGenerator]] = {
    cls.type_name: cls
    for cls in (ThresholdGenerator, RankGenerator, EnsembleGenerator, TrapGenerator)
}


def register_generator(cls: type[SignalGenerator]) -> type[SignalGenerator]:
    """Class decorator: make ``cls`` buildable by its ``type_name``."""
    if cls.type_name in GENERATORS and GENERATORS[cls.type_name] is not cls:
        raise GeneratorConfigError(f"generator type {cls.type_name!r} is already registered")
    GENERATORS[cls.type_name] = cls
    return cls


def build_generator(config: Mapping[str, Any]) -> SignalGenerator:
    """``{"type": ..., "params": {...}}`` -> a ready generator."""
    if not isinstance(config, Mapping):
        raise GeneratorConfigError(
            f"generator config must be a mapping, got {type(config).__name__}")
    extra = set(config) - {"type", "params"}
    if extra:
        raise GeneratorConfigError(f"generator config: unknown key(s) {sorted(extra)}")
    kind = config.get("type")
    if kind == "lstm" and kind not in GENERATORS:
        # Registered on first use so that importing research.signals never imports torch.
        import research.models.signals  # noqa: F401
    if kind not in GENERATORS:
        raise GeneratorConfigError(
            f"generator type {kind!r} is unknown (known: {', '.join(sorted(GENERATORS))})")
    try:
        return GENERATORS[kind](dict(config.get("params") or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}"
                             for e in exc.errors())
        raise GeneratorConfigError(f"generator {kind!r}: {problems}") from None
