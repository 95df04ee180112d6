"""The scheduled job's run: due bars -> newest-bar pipeline -> idempotent export -> run record.

:class:`JobRunner.tick` is what APScheduler calls at every bar close + offset
(and once at start-up). Under the job's lease it finds the last bar exported
successfully (from the scheduler's runs collection), computes the bars due
since then (the bar that just closed, plus missed bars after a restart or an
outage, bounded by ``max_backfill_bars``) and runs each through the job's
``job_fn`` (by default the research pipeline's newest-bar run,
:func:`research.pipeline.scheduled.run_job`: incremental factors for that bar
only, exported with :func:`signal_export.exporter.export_signals`).
Each bar leaves one run record keyed by job and bar, with the counts, the
exporter's run id and the latency "bar close -> signals acknowledged by
MongoDB" measured with the injected clock against the job's budget (a run
that was slow is ``over_budget``; one that started after the budget had
passed - back-fill, start-up catch-up - is ``late_start``, and the lag rules
report it). So a bar
is exported once however often ``tick`` is called, a re-run after a crash
stores nothing twice (the exporter is idempotent), and tests run under a fake
clock. Not the process (see :mod:`signal_export.scheduler.service`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from signal_export.contract import timeframe_delta
from signal_export.errors import BridgeError
from signal_export.logs import redact_text
from signal_export.scheduler.jobs import JobSpec, budget_seconds, load_job_module
from signal_export.scheduler.lease import JobLease
from signal_export.scheduler.timing import bar_close, bars_due
from signal_export.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class JobConfig(Protocol):
    """What the runner reads of a job's config (a research ``PipelineConfig`` is one)."""

    timeframe: str
    export: Any  # has ``strategy_id``


class JobResult(Protocol):
    """What the runner reads of one bar's export (a research ``ExportSummary`` is one)."""

    run_id: str | None
    failed: int
    errors: list[str]

    def counts(self) -> dict[str, int]: ...


#: ``(config, bar, now) -> result``: one bar's pipeline run and export.
JobFn = Callable[[Any, pd.Timestamp, datetime], "JobResult | None"]


def system_clock() -> datetime:
    return datetime.now(UTC)


def run_job(config: Any, bar: datetime, now: datetime, *, db: Database | None = None,
            client: MongoClient | None = None, settings: Settings | None = None
            ) -> JobResult | None:
    """The research pipeline's one-bar run (:func:`research.pipeline.scheduled.run_job`).

    Imported when called (it needs the ``research`` extra), so this package does not
    import ``research``.
    """
    return load_job_module().run_job(config, bar, now, db=db, client=client,
                                     settings=settings)


@dataclass
class RunRecord:
    """One bar of one job, as stored in the scheduler's runs collection."""

    job: str
    strategy_id: str
    timeframe: str
    bar: datetime
    bar_close: datetime
    started_at: datetime
    finished_at: datetime
    status: str  # "ok" | "failed"
    latency_s: float
    budget_s: float
    over_budget: bool
    backfill: bool
    late_start: bool
    duration_s: float
    owner: str
    #: The lease epoch the bar ran under: a record is only ever replaced by an equal or newer one.
    epoch: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    export_run_id: str | None = None
    error: str | None = None

    def as_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = f"{self.job}|{self.bar.isoformat()}"
        return doc


def default_owner() -> str:
    """``host:pid:random`` - unique per scheduler process."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def ensure_runs_indexes(db: Database, runs_collection: str) -> None:
    db[runs_collection].create_index([("job", ASCENDING), ("status", ASCENDING),
                                      ("bar", DESCENDING)], name="job_status_bar")


class Fenced(BridgeError):
    """A newer lease epoch wrote this bar's record: this holder's view is stale."""


class JobRunner:
    """Runs one job's due bars under its lease; ``tick()`` is safe to call at any time.

    One tick at a time per runner (an in-process lock: a tick that finds another
    running returns at once), one process at a time per job (the lease), and
    between bars the lease is renewed, the due bars recomputed if it changed
    hands, and :attr:`stopping` honoured (shutdown within one bar).
    """

    def __init__(self, job: JobSpec, config: JobConfig, db: Database, *,
                 clock: Clock = system_clock, owner: str | None = None,
                 lease_seconds: float = 120.0, runs_collection: str = "scheduler_runs",
                 leases_collection: str = "scheduler_leases", job_fn: JobFn | None = None,
                 on_record: Callable[[RunRecord], None] | None = None) -> None:
        self.job = job
        self.config = config
        self.db = db
        self.clock = clock
        self.owner = owner or default_owner()
        self.runs = db[runs_collection]
        self.lease = JobLease(db[leases_collection], job.name, self.owner,
                              ttl_seconds=lease_seconds, clock=clock)
        self.job_fn = job_fn or (lambda cfg, bar, now: run_job(cfg, bar, now))
        self.on_record = on_record
        self.budget_s = budget_seconds(job, config.timeframe)
        self.stopping = threading.Event()
        self._running = threading.Lock()
        ensure_runs_indexes(db, runs_collection)

    @property
    def timeframe(self) -> str:
        return self.config.timeframe

    def last_done_bar(self) -> pd.Timestamp | None:
        """The bar after which exporting resumes (survives restarts).

        The newest bar exported successfully; with none yet, the bar before the
        oldest failed one (so a first run that failed is retried, not forgotten).
        """
        doc = self.runs.find_one({"job": self.job.name, "status": "ok"}, sort=[("bar", -1)],
                                 projection={"bar": 1})
        if doc is not None:
            return pd.Timestamp(doc["bar"]).tz_convert(UTC)
        failed = self.runs.find_one({"job": self.job.name, "status": "failed"},
                                    sort=[("bar", 1)], projection={"bar": 1})
        if failed is None:
            return None
        return pd.Timestamp(failed["bar"]).tz_convert(UTC) - timeframe_delta(self.timeframe)

    def due(self) -> list[pd.Timestamp]:
        return bars_due(self.last_done_bar(), self.clock(), self.timeframe,
                        offset_seconds=self.job.offset_seconds,
                        max_backfill=self.job.max_backfill_bars)

    def tick(self) -> list[RunRecord]:
        """Export every due bar (oldest first) if this process gets the lease; the records."""
        if not self._running.acquire(blocking=False):  # this job is already running here
            return []
        try:
            if self.stopping.is_set() or not self.lease.acquire():
                return []
            records: list[RunRecord] = []
            try:
                due = self.due()
                while due and not self.stopping.is_set():
                    bar = due.pop(0)
                    epoch = self.lease.epoch
                    records.append(self.run_bar(bar, backfill=bool(due), epoch=epoch))
                    if not self.lease.acquire():  # renew between bars; lost to another holder
                        break
                    if self.lease.epoch != epoch:  # lost and taken again: others may have run
                        due = [b for b in self.due() if b > bar]
            except Fenced as exc:
                log.warning("job %s: %s; stopping this tick", self.job.name, exc,
                            extra={"job": self.job.name})
            finally:
                self.lease.release()
            return records
        finally:
            self._running.release()

    def run_bar(self, bar: pd.Timestamp, *, backfill: bool = False,
                epoch: int | None = None) -> RunRecord:
        """One bar: pipeline + export, timed against the budget, recorded under ``epoch``."""
        started = self.clock()
        t0 = time.perf_counter()
        summary: JobResult | None = None
        error: str | None = None
        try:
            summary = self.job_fn(self.config, bar, started)
            if summary is not None and summary.failed:
                error = f"{summary.failed} signals not stored: {'; '.join(summary.errors[:3])}"
        except Exception as exc:  # a failed run is recorded and alerted, never kills the loop
            error = redact_text(f"{type(exc).__name__}: {exc}")
            log.exception("job %s bar %s failed", self.job.name, bar.isoformat(),
                          extra={"job": self.job.name, "bar": bar.isoformat()})
        finished = self.clock()
        close = bar_close(bar, self.timeframe).to_pydatetime()
        latency = (finished - close).total_seconds()
        # started after the budget had already passed (a back-fill, a start-up catch-up, a
        # stalled scheduler): the lag rules report that; "over budget" means a slow run
        late_start = (started - close).total_seconds() > self.budget_s
        record = RunRecord(
            job=self.job.name, strategy_id=self.config.export.strategy_id,
            timeframe=self.timeframe, bar=bar.to_pydatetime(), bar_close=close,
            started_at=started, finished_at=finished, status="failed" if error else "ok",
            latency_s=round(latency, 6), budget_s=self.budget_s,
            over_budget=(error is None and not backfill and not late_start
                         and latency > self.budget_s),
            backfill=backfill, late_start=late_start,
            duration_s=round(time.perf_counter() - t0, 6), owner=self.owner,
            epoch=epoch if epoch is not None else (self.lease.epoch or 0),
            counts={} if summary is None else summary.counts(),
            export_run_id=None if summary is None else summary.run_id, error=error)
        doc = record.as_doc()
        try:  # the fence: never replace a record written under a newer epoch
            self.runs.replace_one({"_id": doc["_id"], "$or": [
                {"epoch": {"$lte": record.epoch}}, {"epoch": {"$exists": False}}]}, doc,
                upsert=True)
        except DuplicateKeyError:
            raise Fenced(f"bar {bar.isoformat()} was recorded under a newer lease epoch than "
                         f"ours ({record.epoch}); our record is discarded") from None
        log.info("job %s bar %s %s latency %.3fs (budget %.1fs)%s", self.job.name,
                 bar.isoformat(), record.status, latency, self.budget_s,
                 " backfill" if backfill else "",
                 extra={"job": self.job.name, "bar": bar.isoformat(), "status": record.status,
                        "latency_s": latency, **record.counts})
        if self.on_record is not None:
            self.on_record(record)
        return record
