"""The jobs file is validated up front; triggers fire at bar close + offset; the CLI runs once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from fakes import RecordingChannel
from scheduler_data import PIPELINE, T0, job_spec, pipeline_config

from signal_export.contract import SIGNALS_COLLECTION
from signal_export.monitoring.config import load_monitor_config
from signal_export.scheduler import JobRunner, bars_due, load_jobs, next_fire_time
from signal_export.scheduler.cli import main
from signal_export.scheduler.jobs import JobsFileError, job_pipeline_config, parse_jobs
from signal_export.scheduler.service import build_scheduler

REPO = Path(__file__).resolve().parents[2]


def test_example_jobs_and_alerts_files_load_and_name_their_pipelines():
    jobs = load_jobs(REPO / "configs/jobs.example.yaml")
    assert [j.name for j in jobs.jobs] == ["minute_rank_1m", "demo_daily"]
    configs = [job_pipeline_config(j) for j in jobs.jobs]
    assert [c.timeframe for c in configs] == ["1m", "1d"]
    alerts = load_monitor_config(REPO / "configs/alerts.example.yaml")
    assert [c.kind for c in alerts.channels] == ["webhook", "email"]


def test_unknown_keys_and_duplicate_names_are_errors_naming_job_and_key():
    with pytest.raises(JobsFileError, match=r"jobs\.\[a\]\.offset: unknown key"):
        parse_jobs({"jobs": [{"name": "a", "pipeline": "p.yaml", "offset": 3}]})
    with pytest.raises(JobsFileError, match="job names listed twice: \\['a'\\]"):
        parse_jobs({"jobs": [{"name": "a", "pipeline": "p.yaml"},
                             {"name": "a", "pipeline": "q.yaml"}]})
    with pytest.raises(JobsFileError, match="timeframe"):
        parse_jobs({"jobs": [{"name": "a", "pipeline": "p.yaml", "timeframe": "7m"}]})


def test_job_overrides_of_timeframe_and_universe_are_revalidated(tmp_path):
    base = pipeline_config(tmp_path)
    job = job_spec(universe=["BTC/USDT"], timeframe="5m")
    config = job_pipeline_config(job, base)
    assert config.universe == ["BINANCE:BTCUSDT"] and config.timeframe == "5m"


@pytest.mark.parametrize(("timeframe", "offset", "now", "expected"), [
    ("1m", 2, "2026-03-02T12:00:30Z", "2026-03-02T12:01:02Z"),
    ("1m", 2, "2026-03-02T12:00:01Z", "2026-03-02T12:00:02Z"),
    ("1d", 300, "2026-03-02T12:00:00Z", "2026-03-03T00:05:00Z"),
    ("1w", 60, "2026-03-04T00:00:00Z", "2026-03-09T00:01:00Z"),  # Monday 00:00 UTC + 1 min
])
def test_triggers_fire_at_bar_close_plus_offset(timeframe, offset, now, expected):
    fire = next_fire_time(timeframe, offset, datetime.fromisoformat(now))
    assert fire == datetime.fromisoformat(expected)


def test_due_bars_start_after_the_offset_and_cover_missed_bars():
    assert bars_due(None, T0 + timedelta(seconds=1), "1m", offset_seconds=2) == [
        T0 - timedelta(minutes=2)]
    assert bars_due(None, T0 + timedelta(seconds=2), "1m", offset_seconds=2) == [
        T0 - timedelta(minutes=1)]
    assert bars_due(T0 - timedelta(minutes=4), T0 + timedelta(seconds=2), "1m",
                    offset_seconds=2) == [T0 - timedelta(minutes=m) for m in (3, 2, 1)]


def test_one_apscheduler_job_per_job_coalesced_single_instance_catching_up_at_start(
        mongo_db, tmp_path):
    runner = JobRunner(job_spec(misfire_grace_seconds=17), pipeline_config(tmp_path), mongo_db)
    scheduler = build_scheduler([runner])
    scheduler.start(paused=True)
    try:
        [job] = scheduler.get_jobs()  # the catch-up is this job's first run, not a second job
        assert job.id == "sched_test_1m"
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time == 17
        assert job.trigger.interval == timedelta(minutes=1)
        assert job.next_run_time <= datetime.now(UTC)  # first run: now (the catch-up)
        # ... and every later run on the bar grid, hh:mm:02, however late the first one was
        first = job.next_run_time.replace(second=31, microsecond=123)
        after = job.trigger.get_next_fire_time(first, first)
        assert after.second == 2 and after.microsecond == 0 and after > first
        assert job.trigger.get_next_fire_time(after, after) == after + timedelta(minutes=1)
    finally:
        scheduler.shutdown(wait=False)


def test_a_started_scheduler_runs_the_catch_up_at_once(mongo_db, tmp_path):
    from research.pipeline.run import ExportSummary

    done = threading.Event()
    runner = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db,
                       job_fn=lambda cfg, bar, now: ExportSummary("x", False, run_id="r"),
                       on_record=lambda record: done.set())
    scheduler = build_scheduler([runner])
    scheduler.start()
    try:
        assert done.wait(30)
    finally:
        scheduler.shutdown(wait=True)
    (record,) = list(mongo_db["scheduler_runs"].find())
    assert record["status"] == "ok" and record["job"] == "sched_test_1m"


def test_cli_once_exports_the_newest_bar_and_records_the_run(mongo_uri, mongo_client, tmp_path,
                                                             monkeypatch):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({**PIPELINE, "end": "2030-01-01T00:00:00Z",
                                        "report": {"output_dir": str(tmp_path / "r")}}))
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": [{"name": "cli_job", "pipeline": "pipeline.yaml",
                                              "offset_seconds": 0}]}))
    db = f"t_sched_cli_{datetime.now(UTC).strftime('%H%M%S%f')}"
    monkeypatch.setenv("EXT_SIG_MONGO_URI", mongo_uri)
    monkeypatch.setenv("EXT_SIG_DB", db)
    try:
        assert main(["--jobs", str(jobs), "--once", "--env-file", str(tmp_path / "none")]) == 0
        runs = list(mongo_client[db]["scheduler_runs"].find())
        assert [r["status"] for r in runs] == ["ok"] and runs[0]["job"] == "cli_job"
        assert mongo_client[db][SIGNALS_COLLECTION].count_documents({}) == 3
        assert main(["--jobs", str(jobs), "--once", "--env-file", str(tmp_path / "none")]) == 0
        assert mongo_client[db][SIGNALS_COLLECTION].count_documents({}) <= 6
    finally:
        mongo_client.drop_database(db)


def test_cli_rejects_a_bad_jobs_file_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "jobs.yaml"
    bad.write_text("jobs: [{name: x, pipeline: nowhere.yaml}]\n")
    assert main(["--jobs", str(bad), "--once"]) == 2
    assert "nowhere.yaml: cannot read" in capsys.readouterr().err


def test_cli_checks_alert_channels_and_mongodb_at_start_up(tmp_path, capsys, monkeypatch):
    """A webhook whose URL variable is unset is exit 2 before anything runs; an unreachable
    MongoDB is one line, exit 3."""
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({**PIPELINE, "report": {"output_dir": str(tmp_path)}}))
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": [{"name": "j", "pipeline": str(pipeline)}]}))
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(yaml.safe_dump({"channels": [{"kind": "webhook", "name": "ops",
                                                    "url_env": "NO_SUCH_HOOK_VAR"}]}))
    monkeypatch.delenv("NO_SUCH_HOOK_VAR", raising=False)
    monkeypatch.setenv("EXT_SIG_MONGO_URI", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    none = str(tmp_path / "none")
    assert main(["--jobs", str(jobs), "--alerts", str(alerts), "--once",
                 "--env-file", none]) == 2
    err = capsys.readouterr().err
    assert "NO_SUCH_HOOK_VAR" in err and "Traceback" not in err
    assert main(["--jobs", str(jobs), "--once", "--env-file", none]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: MongoDB at start-up") and len(err.splitlines()) == 1


def test_over_budget_and_failed_runs_raise_alerts_that_resolve(mongo_db, tmp_path, clock):
    from research.pipeline.run import ExportSummary
    from signal_export.monitoring.manager import AlertManager
    from signal_export.scheduler.cli import run_alert_hook

    rec = RecordingChannel()
    outcomes = iter(["slow", "fail", "ok", "ok"])

    def job_fn(cfg, bar, now):
        outcome = next(outcomes)
        if outcome == "fail":
            raise RuntimeError("market data missing for BINANCE:SOLUSDT")
        if outcome == "slow":
            clock.advance(38)  # the run itself took 38 s
        return ExportSummary("x", False, run_id="r")

    runner = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                       job_fn=job_fn, on_record=run_alert_hook(AlertManager([rec], clock=clock)))
    clock.now = T0 + timedelta(seconds=2)
    runner.tick()  # finishes 40 s after the close: over the 30 s budget
    clock.now = T0 + timedelta(seconds=63 + 38)
    runner.tick()  # fails
    clock.now = T0 + timedelta(seconds=125 + 38)
    runner.tick()  # retries the failed bar (backfill, ok) and runs the newest (ok)
    # one grouped notification per run record: the failed run fires export_failure and
    # clears export_latency in the same message
    titles = [n.title for n in rec.sent]
    assert titles == ["[FIRING] export_latency sched_test sched_test_1m",
                      "[FIRING 1, RESOLVED 1] signal-bridge: export_failure, export_latency",
                      "[RESOLVED] export_failure sched_test sched_test_1m"], titles
    assert "took 40.000 s (budget 30.0 s)" in rec.sent[0].message()
    assert "market data missing for BINANCE:SOLUSDT" in rec.sent[1].message()


def test_sigterm_stops_a_long_backfill_after_the_running_bar(mongo_uri, mongo_client, tmp_path):
    """50 bars due; SIGTERM after a few: the process ends within one more bar, exit 0."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({**PIPELINE, "end": "2030-01-01T00:00:00Z",
                                        "report": {"output_dir": str(tmp_path)}}))
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": [{"name": "term_job", "pipeline": str(pipeline),
                                              "max_backfill_bars": 60}]}))
    db = f"t_sched_term_{os.getpid()}"
    runs = mongo_client[db]["scheduler_runs"]
    long_ago = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=50)
    runs.insert_one({"_id": "seed", "job": "term_job", "status": "ok", "bar": long_ago})
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_SIG_")}
    env |= {"EXT_SIG_MONGO_URI": mongo_uri, "EXT_SIG_DB": db, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "signal_export.scheduler.cli", "--jobs",
                             str(jobs), "--env-file", str(tmp_path / "none")], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and runs.count_documents({}) < 4:
            time.sleep(0.05)
        assert runs.count_documents({}) >= 4, "the back-fill never got going"
        proc.send_signal(signal.SIGTERM)
        at_term = runs.count_documents({})
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "stopping after the running bar" in out
        assert runs.count_documents({}) <= at_term + 1  # at most the bar it was on
        assert runs.count_documents({}) < 1 + 50  # and certainly not the whole back-fill
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        mongo_client.drop_database(db)
