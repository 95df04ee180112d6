"""Settings of ``ExternalSignalStrategy``: the Freqtrade ``ext_signals`` block plus env/.env.

One pydantic model with ``extra='forbid'``: a typo or a bad value stops the bot
at start-up with a message naming the key, instead of trading on a default.
Precedence: built-in defaults < ``ext_signals`` block in the Freqtrade config <
environment (``EXT_SIG_MONGO_URI``, ``EXT_SIG_DB``, ``EXT_SIG_COLLECTION``,
``EXT_SIG_STRATEGY_ID`` = one id or a comma list; each may be given as
``NAME_FILE``, the path of a mounted secret file; a ``.env`` file is loaded
with python-dotenv and never overrides the real environment), the same rule as
Freqtrade's own ``FREQTRADE__...`` variables. Not the exporter's settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from signal_export.consumer.hyperopt import KNOBS
from signal_export.consumer.matching import DecisionSettings, MatchRules
from signal_export.contract import (
    SIGNALS_COLLECTION,
    ContractError,
    timeframe_seconds,
)
from signal_export.errors import ConfigError
from signal_export.point_in_time import MODES, history_collection_name
from signal_export.security.secrets import SecretError, env_value
from signal_export.settings import ENV_VARS

#: Environment variable -> setting; the names are the exporter's (one list, in settings.py).
ENV_KEYS: dict[str, str] = {
    ENV_VARS[name]: name for name in ("mongo_uri", "db", "collection", "strategy_ids")
}


class MissingSignalPolicy(StrEnum):
    HOLD = "hold"  # keep open trades while signals are unknown (MongoDB down)
    EXIT = "exit"  # close open trades when signals are unknown


class ExtSignalsConfig(DecisionSettings):
    """Validated consumer settings.

    Connection: ``mongo_uri``, ``db``, ``collection``, ``strategy_ids`` (order = priority
    when several ids signal the same candle), ``*_timeout_ms`` (kept low: an outage must
    not stall the bot loop; ``backtest_timeout_ms`` bounds the one large read of a
    backtest). The decision rule's knobs (``tolerance_bars``, ``max_delay_bars``,
    ``enter_score``/``exit_score``, ``min_hold_bars``, ``cooldown_bars``,
    ``confirm_n``) are inherited from :class:`DecisionSettings`, the model the
    research pipeline uses too. Sizing:
    ``use_weight_for_stake`` (stake = weight x proposed stake), ``max_stake_fraction``
    (cap, fraction of the available stake). ``missing_signal_policy``: what open trades do
    while signals are unknown (store unreachable): ``hold`` or ``exit``. ``metrics_port``: serve
    the Prometheus gauges of :mod:`.stats` on ``metrics_address:metrics_port`` (live/dry-run
    only; off by default). ``protections``:
    Freqtrade protections (CooldownPeriod, StoplossGuard, ...) handed to the strategy's
    ``protections`` property (Freqtrade no longer reads them from the config root).
    ``hyperopt_ranges``: ``{knob: [low, high]}`` search ranges of the decision parameters
    ``freqtrade hyperopt`` tunes (see :mod:`.hyperopt`; the configured values are the defaults).
    ``live_incremental`` / ``watermark_overlap_seconds``: live reads of only what changed
    since the last loop, and how far before the newest ``updated_at`` seen they look
    (writes visible later than stamped, clock skew between writers; :mod:`.source`).
    ``signal_view`` / ``history_collection``: which version of each signal a backtest uses
    (``latest`` or ``as_known``; :mod:`signal_export.point_in_time`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mongo_uri: str = "mongodb://127.0.0.1:27017"
    db: str = "signals"
    collection: str = SIGNALS_COLLECTION
    strategy_ids: tuple[str, ...] = Field(min_length=1)
    timeframe: str
    use_weight_for_stake: bool = True
    max_stake_fraction: float = Field(1.0, gt=0, le=1)
    missing_signal_policy: MissingSignalPolicy = MissingSignalPolicy.HOLD
    server_selection_timeout_ms: int = Field(1500, ge=50, le=30000)
    socket_timeout_ms: int = Field(2000, ge=50, le=60000)
    connect_timeout_ms: int = Field(1500, ge=50, le=30000)
    backtest_timeout_ms: int = Field(300_000, ge=1000)
    protections: tuple[dict[str, Any], ...] = ()
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_address: str = "127.0.0.1"
    hyperopt_ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    #: Live: read only what changed since the last loop (a full read once per candle).
    live_incremental: bool = True
    #: Live: re-read changes stamped this long before the newest ``updated_at`` seen.
    watermark_overlap_seconds: float = Field(60.0, ge=0, le=3600)
    #: Backtests: ``latest`` (the stored versions) or ``as_known`` (the version the live bot
    #: could see at each candle's decision time; docs/POINT_IN_TIME.md).
    signal_view: str = "latest"
    #: ``as_known``: the history of replaced versions; unset: ``<collection>_history``.
    history_collection: str | None = None

    @field_validator("signal_view")
    @classmethod
    def _signal_view(cls, v: str) -> str:
        if v not in MODES:
            raise ValueError(f"must be one of {', '.join(MODES)}")
        return v

    @field_validator("history_collection")
    @classmethod
    def _history(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be a collection name (leave it out for <collection>_history)")
        return v

    def history_collection_name(self) -> str:
        """Where ``as_known`` reads replaced versions: ``history_collection`` or the default."""
        return self.history_collection or history_collection_name(self.collection)

    @field_validator("hyperopt_ranges")
    @classmethod
    def _hyperopt_ranges(cls, v: dict[str, tuple[float, float]]
                         ) -> dict[str, tuple[float, float]]:
        knobs = {k.name: k for k in KNOBS}
        for name, (low, high) in v.items():
            if name not in knobs:
                raise ValueError(f"{name!r} is not tuned by hyperopt (one of: "
                                 f"{', '.join(knobs)})")
            if not low < high:
                raise ValueError(f"{name}: low ({low}) must be below high ({high})")
            if knobs[name].kind == "int" and not (float(low).is_integer()
                                                  and float(high).is_integer()):
                raise ValueError(f"{name}: the range of a bar count takes whole numbers")
        return v

    @field_validator("protections")
    @classmethod
    def _protections(cls, v: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for i, item in enumerate(v):
            if not isinstance(item.get("method"), str):
                raise ValueError(f"protection #{i} needs a 'method' (e.g. CooldownPeriod)")
        return v

    @field_validator("strategy_ids", mode="before")
    @classmethod
    def _split_ids(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",")]
        if isinstance(v, list | tuple):
            if any(not isinstance(s, str) or not s for s in v):
                raise ValueError("strategy ids must be non-empty strings")
            if len(set(v)) != len(v):
                raise ValueError("duplicate strategy id")
        return v

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        try:
            timeframe_seconds(v)
        except ContractError as exc:
            raise ValueError(str(exc)) from exc
        return v

    @field_validator("mongo_uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not v.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return v

    def to_rules(self) -> MatchRules:
        """The matcher's view of these settings (strategy_ids order = priority order)."""
        return self.match_rules(self.timeframe, self.strategy_ids)

    def redacted_uri(self) -> str:
        """The URI with any password replaced, for logs."""
        head, sep, tail = self.mongo_uri.partition("@")
        if not sep or "://" not in head:
            return self.mongo_uri
        scheme, _, creds = head.partition("://")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{tail}"


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(block)"
        got = err.get("input")
        shown = "" if loc == "mongo_uri" or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"ext_signals.{loc}: {err['msg']}{shown}")
    return "invalid ext_signals settings:\n  " + "\n  ".join(lines)


def load_config(
    ft_config: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | None = None,
    *,
    sources: dict[str, str] | None = None,
) -> ExtSignalsConfig:
    """Build the settings from a Freqtrade config dict and the environment; ConfigError if bad.

    ``sources``, when given, is filled with where each of the env-settable keys
    (``mongo_uri``, ``db``, ``collection``, ``strategy_ids``) came from, in words
    (:func:`describe_sources` makes the start-up log line of it).
    """
    dotenv_values_: Mapping[str, str | None] = {}
    dotenv_file = ""
    if env is None:
        from dotenv import dotenv_values, find_dotenv, load_dotenv

        dotenv_file = str(dotenv_path or find_dotenv(usecwd=True) or "")
        if dotenv_file:
            dotenv_values_ = dotenv_values(dotenv_file)
        load_dotenv(dotenv_file or None, override=False)
        env = os.environ
    block = ft_config.get("ext_signals", {}) or {}
    if not isinstance(block, Mapping):
        raise ConfigError(f"ext_signals must be an object, got {type(block).__name__}")
    values: dict[str, Any] = dict(block)
    for var, key in ENV_KEYS.items():
        try:
            value = env_value(var, environ=env)
        except SecretError as exc:
            raise ConfigError(str(exc)) from None
        if value:
            values[key] = value
        if sources is not None:
            sources[key] = _source_of(key, var, value, block, env, dotenv_values_, dotenv_file)
    ft_timeframe = ft_config.get("timeframe")
    if ft_timeframe and values.get("timeframe", ft_timeframe) != ft_timeframe:
        raise ConfigError(f"ext_signals.timeframe ({values['timeframe']!r}) differs from the "
                          f"strategy timeframe ({ft_timeframe!r}): signals are matched to "
                          f"the strategy's candles, so they must be the same")
    values.setdefault("timeframe", ft_timeframe)
    if "strategy_ids" not in values:
        raise ConfigError("ext_signals.strategy_ids: missing - set EXT_SIG_STRATEGY_ID "
                          "(one id or a comma list) or ext_signals.strategy_ids")
    try:
        return ExtSignalsConfig(**values)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


#: Marks a source line whose environment value replaced a different config value.
OVERRIDDEN = "overriding"


def _source_of(key: str, var: str, value: str | None, block: Mapping[str, Any],
               env: Mapping[str, str], dotenv: Mapping[str, str | None], dotenv_file: str
               ) -> str:
    """Where ``key`` came from, in words; names the config value an env variable replaced."""
    if not value:
        return "config ext_signals" if key in block else "default"
    name = var if env.get(var) else f"{var}_FILE"
    if dotenv_file and dotenv.get(name) is not None and dotenv.get(name) == env.get(name):
        where = f"{name} in {dotenv_file}"
    else:
        where = f"{name} in the environment"
    if key not in block:
        return where
    configured = block[key]
    normal = _id_list if key == "strategy_ids" else (lambda v: v)
    if normal(value) == normal(configured):
        return f"{where} (the config's ext_signals.{key} is the same)"
    shown = "***" if key == "mongo_uri" else configured
    return f"{where}, {OVERRIDDEN} the config's ext_signals.{key}={shown}"


def _id_list(v: Any) -> list[str]:
    return [x.strip() for x in v.split(",")] if isinstance(v, str) else list(v or [])


def describe_sources(sources: Mapping[str, str], cfg: ExtSignalsConfig) -> tuple[bool, str]:
    """``(an env variable replaced a different config value, the start-up log line)``."""
    shown = {"mongo_uri": cfg.redacted_uri(), "db": cfg.db, "collection": cfg.collection,
             "strategy_ids": ",".join(cfg.strategy_ids)}
    parts = [f"{key}={shown[key]} from {where}" for key, where in sources.items()]
    overridden = any(OVERRIDDEN in where for where in sources.values())
    return overridden, ("ext_signals settings (environment > .env > config ext_signals > "
                        "default): " + "; ".join(parts))
