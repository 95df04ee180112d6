"""A scheduled job exports each bar exactly once, back-fills after a restart, never runs twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
from fakes import FakeClock
from scheduler_data import T0, job_spec, pipeline_config

from research.pipeline.run import ExportSummary
from signal_export.contract import SIGNALS_COLLECTION
from signal_export.scheduler import JobRunner
from signal_export.scheduler.runner import run_job


def _runner(mongo_db, tmp_path, clock, **kwargs) -> JobRunner:
    config = pipeline_config(tmp_path)
    return JobRunner(job_spec(**kwargs.pop("job", {})), config, mongo_db, clock=clock,
                     job_fn=lambda cfg, bar, now: run_job(cfg, bar, now, db=mongo_db), **kwargs)


def _signal_bars(mongo_db) -> list[pd.Timestamp]:
    return sorted(pd.Timestamp(t) for t in mongo_db[SIGNALS_COLLECTION].distinct("ts"))


def test_each_bar_is_exported_exactly_once_however_often_the_job_ticks(mongo_db, tmp_path,
                                                                       clock):
    runner = _runner(mongo_db, tmp_path, clock)
    clock.now = T0 + timedelta(seconds=2)
    exported: list = []
    for _ in range(4 * 3):  # 3 minutes, a tick every 15 s
        exported.extend(runner.tick())
        clock.advance(15)
    bars = [r.bar for r in exported]
    assert bars == [T0 - timedelta(minutes=1), T0, T0 + timedelta(minutes=1)]
    assert all(r.status == "ok" for r in exported)
    assert [r.counts["inserted"] for r in exported] == [3, 3, 3]  # one signal per pair and bar
    assert mongo_db[SIGNALS_COLLECTION].count_documents({}) == 9
    assert mongo_db["scheduler_runs"].count_documents({"job": "sched_test_1m"}) == 3
    assert _signal_bars(mongo_db) == [pd.Timestamp(b) for b in bars]


def test_latency_is_bar_close_to_acknowledgement_and_a_slow_run_is_over_budget(mongo_db, tmp_path,
                                                                              clock):
    slow = {"seconds": 0}

    def job_fn(cfg, bar, now):
        summary = run_job(cfg, bar, now, db=mongo_db)
        clock.advance(slow["seconds"])  # the export took this long (fake clock)
        return summary

    runner = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                       job_fn=job_fn)
    clock.now = T0 + timedelta(seconds=7)
    (on_time,) = runner.tick()
    assert on_time.bar_close == T0 and on_time.latency_s == 7.0
    assert on_time.budget_s == 30.0 and not on_time.over_budget and not on_time.late_start
    clock.now = T0 + timedelta(seconds=60 + 3)  # next bar: fired 3 s after its close ...
    slow["seconds"] = 42                         # ... and took 42 s
    (late,) = runner.tick()
    assert late.latency_s == 45.0 and late.over_budget and not late.late_start
    stored = mongo_db["scheduler_runs"].find_one({"_id": late.as_doc()["_id"]})
    assert stored["over_budget"] is True and stored["latency_s"] == 45.0
    assert stored["export_run_id"] and mongo_db["export_runs"].count_documents(
        {"run_id": stored["export_run_id"]}) == 1


def test_a_run_that_starts_after_the_budget_is_late_start_not_over_budget(mongo_db, tmp_path,
                                                                          clock):
    runner = _runner(mongo_db, tmp_path, clock)
    clock.now = T0 + timedelta(seconds=50)  # e.g. the scheduler process started just now
    (record,) = runner.tick()
    assert record.latency_s == 50.0 and record.late_start and not record.over_budget


def test_restarted_scheduler_backfills_missed_bars_without_duplicates(mongo_db, tmp_path, clock):
    first = _runner(mongo_db, tmp_path, clock)
    clock.now = T0 + timedelta(seconds=3)
    assert [r.bar for r in first.tick()] == [T0 - timedelta(minutes=1)]
    # the process dies; 5 minutes later a new process (new owner) starts
    clock.advance(5 * 60)
    second = _runner(mongo_db, tmp_path, clock)
    assert second.owner != first.owner
    records = second.tick()
    assert [r.bar for r in records] == [T0 + timedelta(minutes=i) for i in range(5)]
    assert [r.backfill for r in records] == [True, True, True, True, False]
    assert second.tick() == []  # nothing left
    assert mongo_db[SIGNALS_COLLECTION].count_documents({}) == 3 * 6
    per_key = mongo_db[SIGNALS_COLLECTION].aggregate([
        {"$group": {"_id": {"p": "$pair", "t": "$ts"}, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}}])
    assert list(per_key) == []


def test_backfill_is_bounded_by_max_backfill_bars(mongo_db, tmp_path, clock):
    runner = _runner(mongo_db, tmp_path, clock, job={"max_backfill_bars": 2})
    clock.now = T0 + timedelta(seconds=3)
    runner.tick()
    clock.advance(10 * 60)
    assert [r.bar for r in runner.tick()] == [T0 + timedelta(minutes=i) for i in (7, 8, 9)]


def test_a_failed_bar_is_recorded_and_retried_at_the_next_tick(mongo_db, tmp_path, clock):
    calls: list = []

    def flaky(cfg, bar, now):
        calls.append(bar)
        if len(calls) == 1:
            raise ConnectionError("mongodb://u:hunter22@db down")
        return ExportSummary(target="x", dry_run=False, submitted=0, run_id="r")

    runner = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                       job_fn=flaky)
    clock.now = T0 + timedelta(seconds=3)
    (failed,) = runner.tick()
    assert failed.status == "failed" and "down" in failed.error
    assert "hunter22" not in failed.error  # secrets never reach records or logs
    clock.advance(60)
    assert [(r.bar, r.status) for r in runner.tick()] == [
        (T0 - timedelta(minutes=1), "ok"), (T0, "ok")]


def test_two_schedulers_never_run_the_same_job_at_once(mongo_db, tmp_path):
    clock = FakeClock(T0 + timedelta(seconds=3))
    inside = threading.Event()
    proceed = threading.Event()
    running: list[str] = []

    def slow(cfg, bar, now):
        running.append(bar.isoformat())
        inside.set()
        proceed.wait(10)
        return ExportSummary(target="x", dry_run=False, run_id="r")

    a = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock, job_fn=slow)
    b = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock, job_fn=slow)
    result_a: list = []
    worker = threading.Thread(target=lambda: result_a.extend(a.tick()))
    worker.start()
    assert inside.wait(10)
    assert b.tick() == []  # lease held by a: b does not run the job
    proceed.set()
    worker.join(10)
    assert len(result_a) == 1 and running == [result_a[0].bar.isoformat()]
    assert b.tick() == []  # a released the lease, and the bar is done: nothing due


def test_an_expired_lease_of_a_crashed_owner_is_taken_over(mongo_db, tmp_path, clock):
    crashed = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                        lease_seconds=60)
    assert crashed.lease.acquire()  # and never released
    other = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                      job_fn=lambda cfg, bar, now: ExportSummary("x", False, run_id="r"))
    clock.now = T0 + timedelta(seconds=3)
    assert other.tick() == []
    clock.advance(61)
    assert [r.bar for r in other.tick()] == [T0]  # no history yet: the newest closed bar


def test_two_schedulers_ticking_together_export_each_bar_once_and_own_their_records(
        mongo_db, tmp_path):
    """Two processes (runners with their own owners) tick at the same moments over a long
    back-fill: every bar is run exactly once, and each record names the runner that ran it."""
    clock = FakeClock(T0 + timedelta(seconds=3))
    ran: list[tuple[str, pd.Timestamp]] = []
    lock = threading.Lock()

    def fn_for(name):
        def fn(cfg, bar, now):
            with lock:
                ran.append((name, bar))
            return ExportSummary(target="x", dry_run=False, run_id=f"{name}-{bar}")
        return fn

    mongo_db["scheduler_runs"].insert_one({"_id": "seed", "job": "sched_test_1m",
                                           "status": "ok", "bar": T0 - timedelta(minutes=21)})
    runners = [JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                         owner=name, job_fn=fn_for(name)) for name in ("a", "b")]
    barrier = threading.Barrier(2)

    def loop(runner):
        for _ in range(5):
            barrier.wait(10)
            runner.tick()

    threads = [threading.Thread(target=loop, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bars = [bar for _, bar in ran]
    assert len(bars) == len(set(bars)) == 20  # T0-20 .. T0-1 min, each exactly once
    records = {r["bar"]: r["owner"] for r in mongo_db["scheduler_runs"].find({"_id": {"$ne":
                                                                               "seed"}})}
    assert {pd.Timestamp(b): o for b, o in records.items()} == {
        pd.Timestamp(bar): name for name, bar in ran}


def test_a_holder_paused_past_its_lease_stops_instead_of_rerunning_stale_bars(mongo_db,
                                                                           tmp_path):
    """A holder that sleeps through its lease (SIGSTOP) loses it: the other instance takes a
    newer epoch and runs the rest; the paused one recomputes nothing stale, cannot overwrite
    the newer records, and stops."""
    clock = FakeClock(T0 + timedelta(seconds=3))
    mongo_db["scheduler_runs"].insert_one({"_id": "seed", "job": "sched_test_1m",
                                           "status": "ok", "bar": T0 - timedelta(minutes=6)})
    ran: list[tuple[str, pd.Timestamp]] = []
    other: list = []

    def paused_fn(cfg, bar, now):
        ran.append(("paused", bar))
        if len(ran) == 1:  # paused mid-bar for longer than the lease: the other one takes over
            clock.advance(121)
            other.extend(fresh.tick())
        return ExportSummary(target="x", dry_run=False, run_id="paused")

    def fresh_fn(cfg, bar, now):
        ran.append(("fresh", bar))
        return ExportSummary(target="x", dry_run=False, run_id="fresh")

    paused = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                       owner="paused", lease_seconds=120, job_fn=paused_fn)
    fresh = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                      owner="fresh", lease_seconds=120, job_fn=fresh_fn)
    records = paused.tick()
    first = T0 - timedelta(minutes=5)
    # the paused holder ran only its first bar; the fresh holder ran everything after it
    # (and the first bar again, since it was not recorded yet when it took over)
    assert [b for who, b in ran if who == "paused"] == [first]
    fresh_bars = [b for who, b in ran if who == "fresh"]
    assert fresh_bars[0] == first and len(fresh_bars) == len(set(fresh_bars))
    assert records == []  # its record of the first bar was refused: a newer epoch wrote it
    stored = mongo_db["scheduler_runs"].find_one({"job": "sched_test_1m", "bar": first})
    assert stored["owner"] == "fresh" and stored["epoch"] == 2
    assert all(r["owner"] == "fresh" for r in mongo_db["scheduler_runs"].find(
        {"_id": {"$ne": "seed"}}))


def test_the_lease_epoch_only_grows_across_release_and_reacquire(mongo_db, tmp_path, clock):
    runner = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock,
                       owner="x", job_fn=lambda cfg, bar, now: None)
    epochs = []
    for _ in range(3):
        assert runner.lease.acquire()
        epochs.append(runner.lease.epoch)
        runner.lease.release()
    assert epochs == [1, 2, 3]


def test_stop_is_honoured_between_bars(mongo_db, tmp_path):
    clock = FakeClock(T0 + timedelta(seconds=3))
    mongo_db["scheduler_runs"].insert_one({"_id": "seed", "job": "sched_test_1m",
                                           "status": "ok", "bar": T0 - timedelta(minutes=11)})
    runner = JobRunner(job_spec(), pipeline_config(tmp_path), mongo_db, clock=clock)

    def fn(cfg, bar, now):
        runner.stopping.set()  # SIGTERM arrives while the first bar runs
        return ExportSummary(target="x", dry_run=False, run_id="r")

    runner.job_fn = fn
    assert len(runner.tick()) == 1
    assert runner.tick() == []  # and no new tick starts once stopping
