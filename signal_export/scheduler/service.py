"""The scheduler process: APScheduler jobs at bar close + offset, graceful shutdown.

Each job of the jobs file becomes one APScheduler job calling
:meth:`JobRunner.tick` with ``coalesce=True`` (missed fire times collapse into
one run, which back-fills every missed bar anyway), ``max_instances=1`` and the
job's ``misfire_grace_time``; the lease in MongoDB covers a second process.
Every job also runs once right at start-up (a one-shot catch-up job; the
lease keeps it from overlapping the regular one), so a restarted scheduler
catches up before the next bar. SIGTERM/SIGINT shut down after the running bar
finishes. Not the per-bar logic (:mod:`signal_export.scheduler.runner`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.date import DateTrigger

from signal_export.scheduler.runner import JobRunner
from signal_export.scheduler.timing import make_trigger

log = logging.getLogger(__name__)


def build_scheduler(runners: Sequence[JobRunner], *, blocking: bool = False,
                    run_at_start: bool = True) -> BaseScheduler:
    """An APScheduler scheduler (not started) with one job per runner."""
    scheduler: BaseScheduler = (BlockingScheduler if blocking else BackgroundScheduler)(
        timezone=UTC)
    for runner in runners:
        job = runner.job
        scheduler.add_job(runner.tick, trigger=make_trigger(runner.timeframe, job.offset_seconds),
                          id=job.name, name=job.name, coalesce=True, max_instances=1,
                          misfire_grace_time=job.misfire_grace_seconds, replace_existing=True)
        if run_at_start:
            # a separate one-shot job: giving the interval job a next_run_time of "now" would
            # shift its grid (interval triggers count from the previous fire time)
            scheduler.add_job(runner.tick, trigger=DateTrigger(datetime.now(UTC)),
                              id=f"{job.name}:catch-up", name=f"{job.name} catch-up",
                              misfire_grace_time=None, replace_existing=True)
    return scheduler


def install_shutdown(scheduler: BaseScheduler) -> threading.Event:
    """SIGTERM/SIGINT -> ``scheduler.shutdown(wait=True)`` (the running bar completes)."""
    stopped = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: shutting the scheduler down after running jobs finish", signum)
        stopped.set()
        threading.Thread(target=lambda: scheduler.shutdown(wait=True), daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stopped
