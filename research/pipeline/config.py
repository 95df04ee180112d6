"""The pipeline configuration: one YAML/JSON file that says what to run, validated up front.

A config names the universe, timeframe and date range, where the market data
comes from (``synthetic``, ``mongo`` or ``file``), the factors (requests for
:func:`research.factors.compute_factors`), the signal generator (a config for
:func:`research.signals.build_generator`), the backtest costs, the export
target and the report folder, and the decision rule's settings (``ext_signals``:
the same keys, defaults and validation as the bot's ``ext_signals`` block).
Every model forbids unknown keys, so a typo
fails when the file is loaded with a message naming the key, and the generator
and factor requests are built once at load time so their errors surface then
too. ``strategy_id``, ``version`` and ``timeframe`` are set once (export
section / top level) and handed to the generator. The same file drives the
one-shot pipeline, the CLI and the scheduled newest-bar job (``latest``
section). Not the runner: see :mod:`research.pipeline.run`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from research.factors import FactorError
from research.factors.registry import resolve_specs
from signal_export.consumer.matching import DecisionSettings
from signal_export.contract import (
    STRATEGY_ID_RE,
    ContractError,
    ensure_utc,
    floor_to_bar,
    timeframe_delta,
    timeframe_seconds,
    to_symbol,
)
from signal_export.errors import ConfigError


class PipelineConfigError(ConfigError):
    """A pipeline config that cannot be used; the message names the file, key and reason."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Bound = date | datetime


class SyntheticSource(_Model):
    """Deterministic synthetic candles (:mod:`research.data.synthetic`); needs no database."""

    kind: Literal["synthetic"] = "synthetic"
    seed: int = 7
    gap_rate: float = Field(default=0.0, ge=0)


class MongoSource(_Model):
    """Candles stored in ``crypto_market`` / ``crypto_market_1m`` (read with the readers).

    Timeframes other than 1m/1d are aggregated from stored 1m bars.
    """

    kind: Literal["mongo"] = "mongo"


class FileSource(_Model):
    """A CSV/Parquet candle file (:func:`research.data.file_import.read_ohlcv_file`)."""

    kind: Literal["file"] = "file"
    path: Path
    columns: dict[str, str] | None = None
    symbol: str | None = None
    tz: str | None = None
    time_unit: str = "ms"


DataSource = Annotated[SyntheticSource | MongoSource | FileSource, Field(discriminator="kind")]


class GeneratorConfig(_Model):
    """``{"type": ..., "params": {...}}`` as :func:`research.signals.build_generator` takes it."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)


class BacktestConfig(_Model):
    fee: float = Field(default=0.001, ge=0, lt=1)
    slippage_bps: float = Field(default=0.0, ge=0, lt=10_000)
    initial_capital: float = Field(default=10_000.0, gt=0)
    #: symbol (either form) -> fraction of capital; default equal weights.
    weights: dict[str, float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "score_threshold" in data:
            raise ValueError("score_threshold was replaced by ext_signals.enter_score / "
                             "ext_signals.exit_score: the research backtest decides with the "
                             "bot's rule (docs/DECISION_RULE.md)")
        return data

    @field_validator("weights")
    @classmethod
    def _symbols(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        return {to_symbol(k): float(v) for k, v in value.items()}


class ExportConfig(_Model):
    strategy_id: str
    version: int = Field(default=1, ge=1)
    enabled: bool = True
    #: Validate and count, write nothing.
    dry_run: bool = False
    #: Database/collection; ``None`` = from settings (EXT_SIG_DB / EXT_SIG_COLLECTION).
    db: str | None = None
    collection: str | None = None
    align: Literal["reject", "ceil"] = "reject"

    @field_validator("strategy_id")
    @classmethod
    def _strategy_id(cls, value: str) -> str:
        if not STRATEGY_ID_RE.match(value):
            raise ValueError(f"strategy_id {value!r} must be 1-64 chars of [A-Za-z0-9_.:-], "
                             "starting with a letter or digit")
        return value


class ReportConfig(_Model):
    output_dir: Path = Path("reports")
    title: str | None = None


class LatestConfig(_Model):
    """The scheduled newest-bar run (:func:`research.pipeline.run.run_latest`).

    ``context_bars``: how many newest bars of factor rows the generator sees.
    1 uses the incremental :func:`research.factors.latest_factors` path; it is
    exact for memoryless generators (rank, threshold in ``events`` mode). A
    generator whose decision depends on earlier bars (``prev(x, n)`` rules,
    state-mode thresholds, trap timeouts) needs enough context to reach the
    same state as a full run.
    """

    context_bars: int = Field(default=1, ge=1)


class PipelineConfig(_Model):
    name: str = "pipeline"
    universe: list[str] = Field(min_length=1)
    timeframe: str
    start: Bound
    end: Bound
    data: DataSource = Field(default_factory=SyntheticSource)
    factors: list[str | dict[str, Any]] = Field(min_length=1)
    cross_section: list[Literal["rank", "zscore"]] | None = None
    generator: GeneratorConfig
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    #: The decision rule's knobs, the same keys as the bot's ``ext_signals`` block.
    ext_signals: DecisionSettings = Field(default_factory=DecisionSettings)
    export: ExportConfig
    report: ReportConfig = Field(default_factory=ReportConfig)
    latest: LatestConfig = Field(default_factory=LatestConfig)

    @field_validator("universe")
    @classmethod
    def _universe(cls, value: list[str]) -> list[str]:
        symbols = [to_symbol(s) for s in value]
        dupes = sorted({s for s in symbols if symbols.count(s) > 1})
        if dupes:
            raise ValueError(f"symbols listed twice: {dupes}")
        return symbols

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        timeframe_seconds(value)
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _bound(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return parse_bound(value, info.field_name)
        return value

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: Bound) -> Bound:
        if isinstance(value, datetime):
            ensure_utc(value, "start/end")  # naive times are an error, never assumed UTC
        return value

    @field_validator("factors")
    @classmethod
    def _factors(cls, value: list[Any]) -> list[Any]:
        resolve_specs(value)  # unknown factor/parameter -> FactorError naming it
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if self.end_exclusive <= self.start_ts:
            raise ValueError(f"end {self.end} is before start {self.start}")
        seconds = timeframe_seconds(self.timeframe)
        if isinstance(self.data, MongoSource) and self.timeframe != "1d" and (
                seconds % 60 or 86400 % seconds):
            raise ValueError(f"timeframe {self.timeframe!r}: mongo data is 1d or built "
                                 "from stored 1m bars (minutes/hours dividing a day)")
        if isinstance(self.data, FileSource) and self.timeframe not in ("1m", "1d"):
            raise ValueError(f"timeframe {self.timeframe!r}: file data must be 1m or 1d")
        if self.backtest.weights is not None:
            unknown = sorted(set(self.backtest.weights) - set(self.universe))
            if unknown:
                raise ValueError(f"backtest.weights: symbols {unknown} are not in the universe")
        from research.signals import build_generator

        try:  # inherit strategy_id/timeframe/version (conflicts are errors), then build once
            build_generator(self.generator_config())
        except ValueError as exc:
            raise ValueError(f"generator: {exc}") from None
        return self

    # --- derived values -----------------------------------------------------

    @property
    def start_ts(self) -> pd.Timestamp:
        """First bar open time included (a date means its 00:00 UTC)."""
        return bar_range(self.start, self.end, self.timeframe)[0]

    @property
    def end_exclusive(self) -> pd.Timestamp:
        """Bars open strictly before this; a date ``end`` includes its whole UTC day."""
        return bar_range(self.start, self.end, self.timeframe)[1]

    def generator_config(self) -> dict[str, Any]:
        """The generator config with the pipeline's strategy_id, timeframe and version filled in."""
        inherited = {"strategy_id": self.export.strategy_id, "timeframe": self.timeframe,
                     "version": self.export.version}
        params = dict(self.generator.params)
        for key, value in inherited.items():
            if key in params and params[key] != value:
                raise ValueError(f"generator.params.{key} = {params[key]!r} conflicts with the "
                                 f"pipeline's {key} {value!r} (set it once, or make them equal)")
            params[key] = value
        return {"type": self.generator.type, "params": params}


def parse_bound(text: str, name: str) -> Bound:
    """``'2025-01-01'``/``'20250101'`` -> a date; an ISO time needs an offset (``Z``)."""
    text = text.strip()
    digits = text.replace("-", "")
    if len(text) in (8, 10) and digits.isdigit():
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    try:
        value = pd.Timestamp(text)
    except ValueError as exc:
        raise PipelineConfigError(f"{name}: cannot parse {text!r} as a date or time") from exc
    if value.tzinfo is None:
        raise PipelineConfigError(f"{name}: {text!r} has no UTC offset (append Z or +00:00)")
    return value.to_pydatetime()


def bar_range(start: Bound, end: Bound, timeframe: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[first bar open, end)``: a date ``end`` includes its whole UTC day, a time ``end``
    includes the bar that contains it."""
    lo = _as_ts(start)
    if isinstance(end, datetime):
        hi = floor_to_bar(_as_ts(end), timeframe) + timeframe_delta(timeframe)
    else:
        hi = _as_ts(end) + pd.Timedelta(days=1)
    return lo, hi


def _as_ts(value: Bound) -> pd.Timestamp:
    if isinstance(value, datetime):
        return ensure_utc(value, "start/end")
    return pd.Timestamp(value.isoformat(), tz="UTC")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].replace("Value error, ", "")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse_config(data: Any, *, source: str = "config") -> PipelineConfig:
    """A validated :class:`PipelineConfig` from a mapping (errors: :class:`PipelineConfigError`)."""
    if not isinstance(data, dict):
        raise PipelineConfigError(f"{source}: expected a mapping at the top level, "
                                  f"got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise PipelineConfigError(f"{source}: {_describe(exc)}") from None
    except (ContractError, FactorError, ValueError) as exc:
        raise PipelineConfigError(f"{source}: {exc}") from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read a ``.yaml``/``.yml``/``.json`` pipeline config file and validate it.

    A relative ``data.path`` or ``report.output_dir`` stays relative to the
    working directory (where the command runs), like every other CLI path.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PipelineConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: "
                                  f"{exc}") from None
    return parse_config(data, source=str(path))


def config_as_dict(config: PipelineConfig) -> dict[str, Any]:
    """A JSON-friendly, stable dump (for the report folder and audit records)."""
    return json.loads(config.model_dump_json())
