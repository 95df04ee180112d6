"""The jobs file is validated up front; triggers fire at bar close + offset; the CLI runs once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
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


def test_apscheduler_jobs_coalesce_single_instance_and_catch_up_at_start(mongo_db, tmp_path):
    runner = JobRunner(job_spec(misfire_grace_seconds=17), pipeline_config(tmp_path), mongo_db)
    scheduler = build_scheduler([runner])
    scheduler.start(paused=True)
    try:
        (job,) = scheduler.get_jobs()
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time == 17
        assert job.next_run_time <= datetime.now(UTC)  # runs right away: restart catch-up
        assert job.trigger.interval == timedelta(minutes=1)
    finally:
        scheduler.shutdown(wait=False)


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
