"""Build a signal generator from a config dict, as a YAML/JSON pipeline file selects it.

``build_generator({"type": "threshold", "params": {...}})``; the known types are
in :data:`GENERATORS` (threshold, rank, ensemble, trap) and other modules can
add theirs with :func:`register_generator` (e.g. the LSTM generator). Unknown
types, unknown keys and bad values raise :class:`GeneratorConfigError` naming
them. :func:`list_generators` and :func:`generator_parameters` describe the
registered types and their parameters (``research list generators``). Not a
pipeline runner.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from research.signals.base import SignalGenerator
from research.signals.ensemble import EnsembleGenerator
from research.signals.rank import RankGenerator
from research.signals.threshold import ThresholdGenerator
from research.signals.trap import TrapGenerator
from signal_export.errors import ConfigError


class GeneratorConfigError(ConfigError):
    """A generator config that cannot be built; the message names the type and field."""


GENERATORS: dict[str, type[SignalGenerator]] = {
    cls.type_name: cls
    for cls in (ThresholdGenerator, RankGenerator, EnsembleGenerator, TrapGenerator)
}


#: Types registered by a module imported on first use (so that importing research.signals
#: never imports torch): type name -> module.
LAZY_GENERATORS: dict[str, str] = {"lstm": "research.models.signals"}


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
    if kind in LAZY_GENERATORS and kind not in GENERATORS:
        importlib.import_module(LAZY_GENERATORS[kind])  # registers it
    if kind not in GENERATORS:
        raise GeneratorConfigError(
            f"generator type {kind!r} is unknown (known: {', '.join(sorted(GENERATORS))})")
    try:
        return GENERATORS[kind](dict(config.get("params") or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}"
                             for e in exc.errors())
        raise GeneratorConfigError(f"generator {kind!r}: {problems}") from None


# --- describing the registered generators -----------------------------------------

#: Parameters every generator takes; a pipeline fills strategy_id, timeframe and version.
COMMON_PARAMS = ("strategy_id", "timeframe", "source", "version")


@dataclass(frozen=True)
class ParamInfo:
    """One generator parameter: name, type, default (``required`` when it has none)."""

    name: str
    type: str
    default: Any
    required: bool
    common: bool
    description: str = ""

    def text(self) -> str:
        value = "required" if self.required else f"default {self.default!r}"
        return f"{self.name} ({self.type}, {value})"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "|".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def generator_parameters(cls: type[SignalGenerator]) -> list[ParamInfo]:
    """The parameters of generator class ``cls``, read from its pydantic ``Params`` model."""
    out = []
    for name, info in cls.Params.model_fields.items():
        required = info.is_required()
        default = None if required or info.default is PydanticUndefined else info.default
        if not required and info.default_factory is not None:
            default = info.default_factory()
        out.append(ParamInfo(name, _type_name(info.annotation), default, required,
                             name in COMMON_PARAMS, info.description or ""))
    return out


def generator_summary(cls: type[SignalGenerator]) -> str:
    """The first line of the generator's module docstring, else of its class's."""
    doc = getattr(sys.modules.get(cls.__module__), "__doc__", "") or cls.__dict__.get("__doc__")
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def list_generators(*, load_lazy: bool = True) -> dict[str, type[SignalGenerator]]:
    """Every registered generator type by name (importing the lazy ones unless told not to)."""
    if load_lazy:
        for kind, module in LAZY_GENERATORS.items():
            if kind not in GENERATORS:
                try:
                    importlib.import_module(module)
                except ImportError:  # an optional dependency is missing: list the rest
                    continue
    return dict(sorted(GENERATORS.items()))
