"""Moved to :mod:`research.pipeline.scheduled` (the research pipeline's scheduled job).

``WindowedJob`` and ``read_minute_bars`` keep the research pipeline's market
window between bars; they belong to ``research``, which this package does not
import. The names still resolve here, imported on first use (needs the
``research`` extra), so existing ``signal_export.scheduler.window`` imports work.
"""

from __future__ import annotations

from typing import Any

from signal_export.scheduler.jobs import DEFAULT_JOB_MODULE, load_job_module

_MOVED = ("WindowedJob", "read_minute_bars")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(load_job_module(DEFAULT_JOB_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
