"""Bar-close timing of scheduled jobs: when a job fires and which bars are due.

Pure functions over UTC datetimes (the contract's bar grid: bars are labelled
by their open time; 1d opens at 00:00 UTC, 1w on Monday). A job fires
``offset`` seconds after every bar boundary; at that moment the bar that just
closed is due, plus any bars missed since the last exported one (back-fill,
bounded). Not the scheduler loop itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from signal_export.contract import ensure_utc, floor_to_bar, timeframe_delta, timeframe_seconds

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)


def bar_close(bar: datetime, timeframe: str) -> pd.Timestamp:
    """Close time of the bar that opens at ``bar`` (= the next bar's open)."""
    return ensure_utc(bar, "bar") + timeframe_delta(timeframe)


def newest_due_bar(now: datetime, timeframe: str, offset_seconds: float = 0.0) -> pd.Timestamp:
    """Open time of the newest bar whose close + offset is at or before ``now``."""
    shifted = ensure_utc(now, "now") - timedelta(seconds=offset_seconds)
    return floor_to_bar(shifted, timeframe) - timeframe_delta(timeframe)


def bars_due(last_done: datetime | None, now: datetime, timeframe: str, *,
             offset_seconds: float = 0.0, max_backfill: int = 60) -> list[pd.Timestamp]:
    """Bars to export at ``now``, oldest first: every bar after ``last_done`` up to the newest
    closed one, at most ``max_backfill`` missed bars plus the newest. No history: the newest only.
    """
    newest = newest_due_bar(now, timeframe, offset_seconds)
    if last_done is None:
        return [newest]
    last = floor_to_bar(last_done, timeframe)
    if last >= newest:
        return []
    step = timeframe_delta(timeframe)
    first = max(last + step, newest - max_backfill * step)
    return list(pd.date_range(first, newest, freq=step))


class BarCloseTrigger(BaseTrigger):
    """Fires at every bar boundary + offset, computed from the clock, not from the last run.

    So the job's first run can be "now" (the start-up catch-up, folded into the
    one job) and the next ones still land on the bar grid, which an
    ``IntervalTrigger`` given ``next_run_time=now`` would shift.
    """

    def __init__(self, timeframe: str, offset_seconds: float = 0.0) -> None:
        self.timeframe, self.offset_seconds = timeframe, offset_seconds
        self.grid = make_trigger(timeframe, offset_seconds)
        self.interval = self.grid.interval

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        after = now if previous_fire_time is None else max(
            now, previous_fire_time + timedelta(microseconds=1))
        return self.grid.get_next_fire_time(None, after)

    def __str__(self) -> str:
        return f"bar close {self.timeframe} + {self.offset_seconds:g} s"


def make_trigger(timeframe: str, offset_seconds: float = 0.0) -> IntervalTrigger:
    """An APScheduler trigger firing at every bar boundary + offset (1m: each minute at
    :00 + offset; 1d: 00:00 UTC + offset; 1w: Monday 00:00 UTC + offset)."""
    seconds = timeframe_seconds(timeframe)
    if offset_seconds >= seconds:
        raise ValueError(f"offset_seconds {offset_seconds} must be shorter than the "
                         f"{timeframe} bar ({seconds} s)")
    anchor = _MONDAY if timeframe.endswith("w") else _EPOCH
    return IntervalTrigger(seconds=seconds, start_date=anchor + timedelta(seconds=offset_seconds),
                           timezone=UTC)


def next_fire_time(timeframe: str, offset_seconds: float, now: datetime) -> datetime:
    """When the job fires next after ``now`` (what APScheduler will do, for status and tests)."""
    trigger = make_trigger(timeframe, offset_seconds)
    fire = trigger.get_next_fire_time(None, ensure_utc(now, "now").to_pydatetime())
    assert fire is not None
    return fire
