"""The research pipeline as a job of ``signal-scheduler``: job config, one bar's run, the window.

The scheduler (:mod:`signal_export.scheduler`) knows bars, leases and run
records, not pipelines: its jobs file names this module as ``job_module``
(the default) and the scheduler imports it by that dotted path, so the
product package never imports ``research`` (which needs the ``research``
extra). A job module provides :func:`job_config` (the job's pipeline config,
with the job's timeframe/universe overrides) and :func:`job_function` (the
callable that runs one bar and exports it).

:class:`WindowedJob` is that callable in the scheduler process. It keeps the
job's market window in memory between bars, so each run reads only new bars.
:func:`research.pipeline.run_latest` reads ``history_length + margin`` bars per
symbol on every run (RSI-14's TA-Lib warm-up alone is ~480 bars: for 500 pairs
on 1m about 265,000 candles a minute, nearly all read the minute before);
:class:`WindowedJob` per bar reads only the bars since the window's end
(re-reading the last ``reread_bars``, so a candle stored late still arrives;
on 1m one time-range query for all symbols, on a ``{datetime: 1}`` index it
creates idempotently), then computes the same newest-bar factors, signals and
export as ``run_latest`` (same functions: :func:`research.pipeline.run.latest_factor_frame`,
:func:`generate_signals`, :func:`export_frame`). It reloads the whole window
after a gap, on a config change and every ``full_reload_every`` runs.
Synthetic and file sources have nothing to cache and go through
``run_latest``. Not thread-safe: one instance per job (APScheduler's
``max_instances=1`` guarantees one run at a time).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import pandas as pd
from pymongo import MongoClient
from pymongo.database import Database

from research.data.market_store import MarketStore
from research.factors import history_length
from research.pipeline.config import (
    MongoSource,
    PipelineConfig,
    config_as_dict,
    load_config,
    parse_config,
)
from research.pipeline.market import COLUMNS as MARKET_COLUMNS
from research.pipeline.market import MarketDataError, history_start, load_market
from research.pipeline.run import (
    ExportSummary,
    export_frame,
    generate_signals,
    latest_factor_frame,
    open_targets,
    run_latest,
)
from signal_export.contract import OHLCV_FIELDS, floor_to_bar, timeframe_delta
from signal_export.scheduler.jobs import JobSpec
from signal_export.settings import Settings
from signal_export.store import MARKET_1M_TIME_INDEX

log = logging.getLogger(__name__)


def job_config(job: JobSpec, base: PipelineConfig | None = None) -> PipelineConfig:
    """The job's pipeline config with its timeframe/universe overrides applied and re-validated."""
    config = base if base is not None else load_config(job.pipeline)
    overrides: dict[str, Any] = {}
    if job.timeframe is not None and job.timeframe != config.timeframe:
        overrides["timeframe"] = job.timeframe
    if job.universe is not None and job.universe != config.universe:
        overrides["universe"] = job.universe
    if not overrides:
        return config
    data = config_as_dict(config) | overrides
    return parse_config(data, source=f"job {job.name} ({job.pipeline})")


def job_function(*, client: MongoClient | None = None,
                 settings: Settings | None = None) -> WindowedJob:
    """The per-bar callable of one job in the scheduler process (keeps the job's window)."""
    return WindowedJob(client=client, settings=settings)


def run_job(config: PipelineConfig, bar: datetime, now: datetime, *, db: Database | None = None,
            client: MongoClient | None = None, settings: Settings | None = None
            ) -> ExportSummary | None:
    """Run the pipeline for ``bar`` only (incremental newest-bar path) and export its signals.

    Stateless (reads the whole history window each time); the scheduler process uses
    :class:`WindowedJob`, which keeps the window.
    """
    return run_latest(config, now=now, bar=bar, db=db, client=client, settings=settings,
                      export=True, dry_run=False).export


class WindowedJob:
    """A ``job_fn`` for :class:`signal_export.scheduler.runner.JobRunner` with a cached window."""

    def __init__(self, *, db: Database | None = None, client: MongoClient | None = None,
                 settings: Settings | None = None, reread_bars: int = 2,
                 full_reload_every: int = 60) -> None:
        self.db = db
        self.client = client
        self.settings = settings
        self.reread_bars = reread_bars
        self.full_reload_every = full_reload_every
        self.window: pd.DataFrame | None = None
        self._config: PipelineConfig | None = None
        self._runs_since_full = 0
        self.full_reads = 0
        self._time_index = False
        self.partial_reads = 0

    def __call__(self, config: PipelineConfig, bar: datetime, now: datetime
                 ) -> ExportSummary | None:
        if not isinstance(config.data, MongoSource):
            return run_latest(config, now=now, bar=bar, db=self.db, client=self.client,
                              settings=self.settings, export=True, dry_run=False).export
        tf = config.timeframe
        step = timeframe_delta(tf)
        target = floor_to_bar(bar, tf)
        needed = history_length(config.factors) + config.latest.context_bars - 1
        first = history_start(target, tf, needed + max(10, needed // 10))
        with open_targets(config, self.db, self.settings, write=True,
                          client=self.client) as mongo:
            window = self._update(config, mongo.market, first, target, step)
            factors = latest_factor_frame(config, window, target)
            signals = generate_signals(config, factors)
            signals = signals[signals["ts"] == target].reset_index(drop=True)
            return export_frame(config, signals, mongo, now=now, run_id=str(uuid.uuid4()),
                                dry_run=False)

    def _update(self, config: PipelineConfig, store: MarketStore, first: pd.Timestamp,
                target: pd.Timestamp, step: pd.Timedelta) -> pd.DataFrame:
        end = target + step
        cached = self.window
        last = None if cached is None or cached.empty else cached["datetime"].max()
        full = (cached is None or config is not self._config or last is None
                or last < first or last > target
                or self._runs_since_full >= self.full_reload_every)
        if config.timeframe == "1m" and not self._time_index:  # once, at the cold start
            store.ensure_indexes()
            self._time_index = True
        if not full:
            since = max(first, last - (self.reread_bars - 1) * step)
            try:
                new = (read_minute_bars(store, config.universe, since, end)
                       if config.timeframe == "1m"
                       else load_market(config, start=since, end=end, store=store))
            except MarketDataError:  # a symbol without any new bar: read as run_latest does
                full = True
            else:
                self.partial_reads += 1
                self._runs_since_full += 1
                kept = cached[(cached["datetime"] >= first) & (cached["datetime"] < since)]
                window = pd.concat([kept, new], ignore_index=True)
        if full:
            window = load_market(config, start=first, end=end, store=store)
            self.full_reads += 1
            self._runs_since_full = 0
        window = window.sort_values(["symbol", "datetime"], kind="stable", ignore_index=True)
        self.window, self._config = window, config
        return window


def read_minute_bars(store: MarketStore, universe: list[str], start: pd.Timestamp,
                     end: pd.Timestamp) -> pd.DataFrame:
    """Stored 1m candles of ``universe`` opening in ``[start, end)``: one time-range query.

    The readers query symbol by symbol (right for long histories); the newest
    few bars of hundreds of symbols are one small read on the ``datetime``
    index instead (symbols outside the universe are dropped here). Same
    columns and dtypes as :func:`research.pipeline.load_market`.
    """
    cursor = store.collection("1m").find(
        {"datetime": {"$gte": start.to_pydatetime(), "$lt": end.to_pydatetime()}},
        {"_id": 0, "datetime": 1, "symbol": 1, **dict.fromkeys(OHLCV_FIELDS, 1)},
    ).hint(MARKET_1M_TIME_INDEX)
    frame = pd.DataFrame(list(cursor), columns=list(MARKET_COLUMNS))
    frame = frame[frame["symbol"].isin(universe)]
    frame["datetime"] = pd.to_datetime(frame["datetime"], utc=True)
    return frame.astype({"datetime": "datetime64[ms, UTC]", "symbol": object,
                         **dict.fromkeys(OHLCV_FIELDS, "float64")}).reset_index(drop=True)
