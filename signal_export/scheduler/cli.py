"""``signal-scheduler``: run the export jobs of a jobs file at every bar close.

``signal-scheduler --jobs configs/jobs.example.yaml`` runs until SIGTERM;
``--once`` runs every job's due bars once and exits (cron-style use, tests);
``--list`` prints each job's next fire time. MongoDB comes from the settings
(``EXT_SIG_MONGO_URI`` or ``EXT_SIG_MONGO_URI_FILE``, ``EXT_SIG_DB``, ``.env``);
alerts for failed or over-budget runs go to the channels of ``--alerts``
(optional). The jobs run through the file's ``job_module`` (default: the
research pipeline, which needs the ``research`` extra).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from signal_export.errors import ConfigError
from signal_export.logs import configure_logging, redact_uri
from signal_export.scheduler.jobs import JobsFileError, load_job_module, load_jobs
from signal_export.scheduler.runner import JobRunner, RunRecord
from signal_export.scheduler.timing import next_fire_time
from signal_export.security.secrets import SecretError
from signal_export.settings import load_settings
from signal_export.store import (
    MongoAccessError,
    connect,
    describe_start_failure,
    ensure_indexes,
)

if TYPE_CHECKING:
    from signal_export.monitoring.manager import AlertManager

log = logging.getLogger("signal_export.scheduler")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="signal-scheduler", description=__doc__.splitlines()[0])
    p.add_argument("--jobs", required=True, type=Path, help="jobs YAML file")
    p.add_argument("--alerts", type=Path, help="alerts YAML (channels, cooldown) for run alerts")
    p.add_argument("--env-file", default=".env")
    p.add_argument("--once", action="store_true", help="run due bars once and exit")
    p.add_argument("--list", action="store_true", help="print jobs and next fire times")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-json", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)
    try:
        jobs_file = load_jobs(args.jobs)
        job_module = load_job_module(jobs_file.job_module)
        configs = {j.name: job_module.job_config(j) for j in jobs_file.jobs if j.enabled}
    except (JobsFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        now = datetime.now(UTC)
        for job in jobs_file.jobs:
            cfg = configs.get(job.name)
            when = next_fire_time(cfg.timeframe, job.offset_seconds, now) if cfg else "disabled"
            print(f"{job.name}\t{cfg.timeframe if cfg else '-'}\t{job.pipeline}\tnext {when}")
        return 0
    try:
        settings = load_settings(args.env_file)
        on_record = _alert_hook(args.alerts) if args.alerts else None
        client = connect(settings.mongo_uri, app_name="signal-scheduler")
    except (ConfigError, SecretError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        ensure_indexes(client, settings)
    except (MongoAccessError, RuntimeError, PyMongoError) as exc:
        client.close()
        cause = exc if isinstance(exc, PyMongoError) else exc.__cause__
        why = (describe_start_failure(cause, settings.mongo_uri, "create the indexes")
               if isinstance(cause, PyMongoError) else redact_uri(str(exc)))
        print(f"error: MongoDB at start-up: {why}", file=sys.stderr)
        return 3
    db = client[settings.db]
    runners = [JobRunner(job, configs[job.name], db, lease_seconds=jobs_file.lease_seconds,
                         runs_collection=jobs_file.runs_collection,
                         leases_collection=jobs_file.leases_collection,
                         job_fn=job_module.job_function(client=client, settings=settings),
                         on_record=on_record)
               for job in jobs_file.jobs if job.enabled]
    try:
        if args.once:
            failed = sum(r.status != "ok" for runner in runners for r in runner.tick())
            return 1 if failed else 0
        from signal_export.scheduler.service import build_scheduler, install_shutdown

        scheduler = build_scheduler(runners, blocking=True)
        install_shutdown(scheduler, runners)
        log.info("scheduler started with %d jobs", len(runners))
        scheduler.start()
        return 0
    finally:
        client.close()


def _alert_hook(path: Path) -> Callable[[RunRecord], None]:
    """The alert hook of ``--alerts FILE``; a channel that could not deliver is a
    :class:`ConfigError` now, at start-up, not at the first alert."""
    from signal_export.monitoring.channels import check_channels
    from signal_export.monitoring.config import load_monitor_config
    from signal_export.monitoring.manager import AlertManager

    manager = AlertManager.from_config(load_monitor_config(path))
    problems = check_channels(manager.channels)
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return run_alert_hook(manager)


def run_alert_hook(manager: AlertManager) -> Callable[[RunRecord], None]:
    """Run records -> EXPORT_FAILURE / EXPORT_LATENCY alerts (fire, dedupe, resolve)."""
    from signal_export.monitoring.alerts import Rule
    from signal_export.monitoring.rules import export_run_conditions

    def hook(record: RunRecord) -> None:
        conditions = export_run_conditions([record.as_doc()])
        if record.backfill:  # a back-filled bar is late by construction: failures only
            conditions = [c for c in conditions if c.rule is Rule.EXPORT_FAILURE]
        manager.process(conditions)

    return hook


if __name__ == "__main__":
    sys.exit(main())
