"""The common shape of signal generators: pydantic-validated parameters and ``generate``.

A generator turns a tidy factor frame (``datetime`` = bar open time UTC,
``symbol``, factor and price columns; several symbols) into a contract-shaped
signal frame (:mod:`research.signals.frame`). Parameters are a pydantic model
with unknown keys forbidden, so a YAML/JSON pipeline config that misspells a
key fails at build time with the key's name. Not a registry (see
:mod:`research.signals.registry`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from signal_export.contract import is_futures_pair, symbol_to_pair, timeframe_seconds
from signal_export.errors import BridgeError


class GeneratorError(BridgeError, ValueError):
    """A generator that cannot run on its input; the message names the generator and field."""


class GeneratorParams(BaseModel):
    """Parameters every generator takes: where its signals go and how they are labelled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy_id: str
    timeframe: str
    source: str = "research"
    version: int = 1

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        timeframe_seconds(value)  # raises ContractError naming the value
        return value

    @field_validator("strategy_id")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("strategy_id must not be empty")
        return value


class SignalGenerator(ABC):
    """Base class: ``generate(frame) -> signal frame``; configured from ``params``."""

    type_name: ClassVar[str]
    Params: ClassVar[type[GeneratorParams]] = GeneratorParams

    def __init__(self, params: GeneratorParams | Mapping[str, Any] | None = None, **kwargs: Any):
        if isinstance(params, GeneratorParams):
            self.params = params
        else:
            self.params = self.Params(**{**(params or {}), **kwargs})

    @abstractmethod
    def generate(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Signals for every (bar, symbol) of ``frame`` the generator has something to say about."""

    def label(self) -> dict[str, Any]:
        """The keyword arguments :func:`research.signals.frame.signal_frame` needs."""
        p = self.params
        return {"timeframe": p.timeframe, "strategy_id": p.strategy_id, "source": p.source,
                "version": p.version}

    def require_futures(self, data: pd.DataFrame, what: str) -> None:
        """Shorts and leverage need futures symbols: ``what`` names the parameter asking."""
        spot = sorted(s for s in data["symbol"].unique()
                      if not is_futures_pair(symbol_to_pair(s)))
        if spot:
            raise GeneratorError(
                f"{self.type_name} generator: {what} futures symbols (e.g. "
                f"BINANCE:BTCUSDT.USDT or BTC/USDT:USDT in the universe), got {spot[0]!r}")

    def prepared(self, frame: pd.DataFrame, columns: set[str] | list[str] = ()) -> pd.DataFrame:
        """``frame`` checked (tz-aware datetime, needed columns) and sorted by symbol, time."""
        for col in ("datetime", "symbol", *columns):
            if col not in frame.columns:
                raise GeneratorError(f"{self.type_name} generator: input has no {col!r} column")
        if not isinstance(frame["datetime"].dtype, pd.DatetimeTZDtype):
            raise GeneratorError(f"{self.type_name} generator: 'datetime' must be tz-aware UTC")
        if frame.duplicated(["symbol", "datetime"]).any():
            raise GeneratorError(f"{self.type_name} generator: duplicate (symbol, datetime) rows")
        return frame.sort_values(["symbol", "datetime"], kind="stable", ignore_index=True)
