"""The scheduler process killed with SIGKILL in the middle of a back-fill, then restarted.

A real ``signal-scheduler --once`` process (``python -m signal_export.scheduler.cli``)
against the session server: its history says the last bar done was 4 minutes ago,
so it back-fills several 1m bars of a 300-pair synthetic pipeline. It is killed
right after the first bar is recorded (inside a later bar). The restarted process
takes over once the crashed owner's lease expires and must leave every bar
exported exactly once: each bar's signals complete, one ``ok`` run record per
bar, and the re-run of an interrupted bar inserting only what was not stored
(the rest ``unchanged``), never a second copy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from signal_export.contract import floor_to_bar
from signal_export.scheduler.runner import RunRecord

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
N_PAIRS = 300
JOB = "rel_kill_1m"


def write_files(tmp_path: Path, now: datetime) -> Path:
    pipeline = {
        "name": "rel_kill", "universe": [f"K{i:03d}/USDT" for i in range(N_PAIRS)],
        "timeframe": "1m",
        "start": (now - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:00Z"),
        "end": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:00Z"),
        "data": {"kind": "synthetic", "seed": 11},
        "factors": [{"name": "rsi", "params": {"period": 14}}],
        "generator": {"type": "rank", "params": {"factor": "rsi_14", "top_n": 5,
                                                 "actions": False}},
        "export": {"strategy_id": "rel_kill", "version": 1},
        "report": {"output_dir": str(tmp_path / "report")},
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    jobs = {"lease_seconds": 3, "jobs": [{"name": JOB, "pipeline": str(tmp_path / "pipeline.yaml"),
                                          "offset_seconds": 0, "max_backfill_bars": 30}]}
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump(jobs))
    return path


def scheduler(jobs: Path, uri: str, db: str, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_SIG_")}
    env.update(EXT_SIG_MONGO_URI=uri, EXT_SIG_DB=db,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-m", "signal_export.scheduler.cli", "--jobs",
                             str(jobs), "--once", "--env-file", str(log.parent / "none.env")],
                            cwd=log.parent, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def test_scheduler_killed_mid_backfill_restarts_without_double_export(tmp_path, mongo_uri,
                                                                     mongo_client):
    db_name = f"sched_{uuid.uuid4().hex[:8]}"
    db = mongo_client[db_name]
    now = datetime.now(UTC)
    jobs = write_files(tmp_path, now)
    last_done = floor_to_bar(now, "1m").to_pydatetime() - timedelta(minutes=5)
    db.scheduler_runs.insert_one(RunRecord(
        job=JOB, strategy_id="rel_kill", timeframe="1m", bar=last_done,
        bar_close=last_done + timedelta(minutes=1), started_at=now, finished_at=now,
        status="ok", latency_s=0.0, budget_s=30.0, over_budget=False, backfill=False,
        late_start=False, duration_s=0.0, owner="earlier-run").as_doc())
    procs: list[subprocess.Popen] = []
    try:
        first = scheduler(jobs, mongo_uri, db_name, tmp_path / "first.log")
        procs.append(first)
        deadline = time.monotonic() + 120
        while db.scheduler_runs.count_documents({"status": "ok"}) < 2:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "first bar never finished"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        done_at_kill = db.scheduler_runs.count_documents({"status": "ok"}) - 1
        stored_at_kill = db.crypto_signals.count_documents({})
        lease = db.scheduler_leases.find_one({"_id": JOB})
        assert lease is not None  # the crashed owner's lease, still held
        while datetime.now(UTC) <= lease["expires_at"]:  # a restart waits for it to expire
            time.sleep(0.1)
        second = scheduler(jobs, mongo_uri, db_name, tmp_path / "second.log")
        procs.append(second)
        assert second.wait(180) == 0, (tmp_path / "second.log").read_text()[-3000:]

        records = list(db.scheduler_runs.find({"owner": {"$ne": "earlier-run"}}))
        bars = sorted(r["bar"] for r in records)
        assert all(r["status"] == "ok" for r in records)
        assert len(bars) == len(set(bars)) >= 4          # one record per bar, none twice
        expected = [last_done + timedelta(minutes=i + 1) for i in range(len(bars))]
        assert bars == expected                           # contiguous: nothing skipped
        per_bar = pd.Series([d["ts"] for d in db.crypto_signals.find({}, {"ts": 1})]).value_counts()
        assert sorted(per_bar.index) == expected
        assert set(per_bar.to_numpy()) == {N_PAIRS}       # each bar complete, no copies
        counts = [r["counts"] for r in records]
        partial = stored_at_kill - done_at_kill * N_PAIRS  # of the bar the kill interrupted
        assert done_at_kill >= 1 and 0 <= partial <= N_PAIRS
        assert sum(c["inserted"] for c in counts) == N_PAIRS * len(bars) - partial
        assert sum(c["unchanged"] for c in counts) == partial  # found stored, not re-written
        assert sum(c.get("updated", 0) for c in counts) == 0
        print(f"bars={len(bars)} done_at_kill={done_at_kill} partial_bar_docs={partial}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        mongo_client.drop_database(db_name)
