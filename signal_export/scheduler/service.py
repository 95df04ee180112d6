"""The scheduler process: APScheduler jobs at bar close + offset, graceful shutdown.

Each job of the jobs file becomes one APScheduler job calling
:meth:`JobRunner.tick` with ``coalesce=True`` (missed fire times collapse into
one run, which back-fills every missed bar anyway), ``max_instances=1`` and the
job's ``misfire_grace_time``; the lease in MongoDB covers a second process.
Its first run is right at start-up (the catch-up, folded into the same job:
the trigger computes bar closes from the clock, not from the last run), so a
restarted scheduler catches up before the next bar, and no second job can
overlap it. SIGTERM/SIGINT stop every job after the bar it is on. Not the
per-bar logic (:mod:`signal_export.scheduler.runner`).
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

from signal_export.scheduler.runner import JobRunner
from signal_export.scheduler.timing import BarCloseTrigger

log = logging.getLogger(__name__)


def build_scheduler(runners: Sequence[JobRunner], *, blocking: bool = False,
                    run_at_start: bool = True) -> BaseScheduler:
    """An APScheduler scheduler (not started) with exactly one job per runner."""
    scheduler: BaseScheduler = (BlockingScheduler if blocking else BackgroundScheduler)(
        timezone=UTC)
    for runner in runners:
        job = runner.job
        extra = {"next_run_time": datetime.now(UTC)} if run_at_start else {}
        scheduler.add_job(runner.tick, trigger=BarCloseTrigger(runner.timeframe,
                                                               job.offset_seconds),
                          id=job.name, name=job.name, coalesce=True, max_instances=1,
                          misfire_grace_time=job.misfire_grace_seconds, replace_existing=True,
                          **extra)
    return scheduler


def install_shutdown(scheduler: BaseScheduler,
                     runners: Sequence[JobRunner] = ()) -> threading.Event:
    """SIGTERM/SIGINT: every runner stops after the bar it is on; then the scheduler ends."""
    stopped = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the running bar of each job", signum)
        stopped.set()
        for runner in runners:
            runner.stopping.set()
        threading.Thread(target=lambda: scheduler.shutdown(wait=True), daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stopped
