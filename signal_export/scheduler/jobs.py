"""The jobs file of the scheduler: which pipeline runs on which timeframe and universe, when.

One YAML file, validated with pydantic (unknown keys are errors naming the
key). Each job points at a pipeline config; ``timeframe``/``universe`` in the
job override the pipeline's. What a job *does* comes from the file's
``job_module``, imported by dotted path (default
:mod:`research.pipeline.scheduled`, which needs the ``research`` extra): it
turns a job into its config (:func:`job_config`, re-validated through the
pipeline's own model) and builds the per-bar callable (``job_function``). So
this package never imports ``research`` itself. Timing is "bar close +
offset": ``offset_seconds`` after each bar boundary of the timeframe. Not the
runner (:mod:`signal_export.scheduler.runner`).
"""

from __future__ import annotations

import contextlib
import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from signal_export.contract import STRATEGY_ID_RE, timeframe_seconds, to_symbol
from signal_export.errors import ConfigError

#: The job module of a jobs file that names none: the research pipeline.
DEFAULT_JOB_MODULE = "research.pipeline.scheduled"
#: What a job module must define (see :mod:`research.pipeline.scheduled`).
JOB_MODULE_API = ("job_config", "job_function")
_DOTTED_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class JobsFileError(ConfigError):
    """A jobs file that cannot be used; the message names the file, job and key."""


class JobSpec(BaseModel):
    """One scheduled export job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    pipeline: Path
    timeframe: str | None = None
    universe: list[str] | None = None
    #: Seconds after the bar boundary at which the job fires (data settles first).
    offset_seconds: float = Field(default=2.0, ge=0)
    #: APScheduler misfire grace: a run later than this after its fire time is skipped
    #: (the next run back-fills the bar anyway).
    misfire_grace_seconds: int = Field(default=30, ge=1)
    #: At most this many missed bars are back-filled after a restart or an outage.
    max_backfill_bars: int = Field(default=60, ge=0)
    #: Latency budget (bar close -> signals acknowledged); default timeframe / 2.
    budget_seconds: float | None = Field(default=None, gt=0)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not STRATEGY_ID_RE.match(value):
            raise ValueError(f"job name {value!r} must be of [A-Za-z0-9_.:-]")
        return value

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str | None) -> str | None:
        if value is not None:
            timeframe_seconds(value)
        return value

    @field_validator("universe")
    @classmethod
    def _universe(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [to_symbol(s) for s in value]


class JobsFile(BaseModel):
    """The whole file: jobs plus process-wide settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: list[JobSpec] = Field(min_length=1)
    #: Dotted path of the module that runs the jobs (``job_config`` + ``job_function``).
    job_module: str = DEFAULT_JOB_MODULE
    #: How long a job's lease in MongoDB lives without renewal (crashed owner -> expires).
    lease_seconds: float = Field(default=120.0, gt=0)
    #: Collections of the scheduler's own records (in the signals database).
    runs_collection: str = "scheduler_runs"
    leases_collection: str = "scheduler_leases"

    @field_validator("job_module")
    @classmethod
    def _job_module(cls, value: str) -> str:
        if not _DOTTED_RE.fullmatch(value):
            raise ValueError(f"job_module {value!r} must be a dotted module path")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> JobsFile:
        names = [j.name for j in self.jobs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"job names listed twice: {dupes}")
        return self


def _describe(exc: ValidationError, data: Any) -> str:
    parts = []
    for err in exc.errors():
        loc = list(err["loc"])
        if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int):
            with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
                loc[1] = f"[{data['jobs'][loc[1]].get('name', loc[1])}]"
        where = ".".join(str(p) for p in loc)
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].replace(
            "Value error, ", "")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_jobs(data: Any, *, source: str = "jobs", base_dir: Path | None = None) -> JobsFile:
    """A validated :class:`JobsFile`; relative pipeline paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise JobsFileError(f"{source}: expected a mapping at the top level")
    try:
        jobs = JobsFile.model_validate(data)
    except (ValidationError, ValueError) as exc:
        text = _describe(exc, data) if isinstance(exc, ValidationError) else str(exc)
        raise JobsFileError(f"{source}: {text}") from None
    if base_dir is not None:
        jobs = jobs.model_copy(update={"jobs": [
            j if j.pipeline.is_absolute() or j.pipeline.exists()
            else j.model_copy(update={"pipeline": base_dir / j.pipeline}) for j in jobs.jobs]})
    return jobs


def load_jobs(path: str | Path) -> JobsFile:
    """Read and validate a jobs YAML file (pipeline paths: relative to cwd, else to the file)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JobsFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise JobsFileError(f"{path}: not valid YAML: {exc}") from None
    return parse_jobs(data, source=str(path), base_dir=path.parent)


def load_job_module(name: str = DEFAULT_JOB_MODULE) -> ModuleType:
    """Import the job module ``name``; :class:`JobsFileError` naming what is missing if not."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        hint = ""
        if name.split(".")[0] == "research":
            hint = (" - the research pipeline job needs the research extra: "
                    "pip install 'freqtrade-signal-bridge[research]'")
        raise JobsFileError(f"job_module {name}: cannot import it ({exc}){hint}") from None
    missing = [attr for attr in JOB_MODULE_API if not callable(getattr(module, attr, None))]
    if missing:
        raise JobsFileError(f"job_module {name}: does not define {missing}")
    return module


def job_pipeline_config(job: JobSpec, base: Any = None, *,
                        job_module: str = DEFAULT_JOB_MODULE) -> Any:
    """The job's config from its job module (default: the research pipeline's config)."""
    return load_job_module(job_module).job_config(job, base)


def budget_seconds(job: JobSpec, timeframe: str) -> float:
    """The job's latency budget: explicit, else timeframe / 2 (SPEC §2)."""
    return job.budget_seconds if job.budget_seconds is not None else timeframe_seconds(
        timeframe) / 2
