"""Scheduled export jobs: a jobs file, bar-close timing, a Mongo lease, and the runner.

``signal-scheduler --jobs configs/jobs.example.yaml`` runs every job of the
file at each bar close (+ offset) with APScheduler; :class:`JobRunner` is the
clock-injected core that the tests drive under a fake clock.
"""

from signal_export.scheduler.jobs import JobsFile, JobsFileError, JobSpec, load_jobs
from signal_export.scheduler.lease import JobLease
from signal_export.scheduler.runner import JobRunner, RunRecord, run_job
from signal_export.scheduler.timing import bar_close, bars_due, next_fire_time

__all__ = [
    "JobLease", "JobRunner", "JobSpec", "JobsFile", "JobsFileError", "RunRecord", "bar_close",
    "bars_due", "load_jobs", "next_fire_time", "run_job",
]
