"""Load replay at CI size: every exported signal is read exactly once, one query per loop.

50 pairs x 3 strategies x 60 simulated 1m bars (9,000 signals) through the real
exporter, the session server and the live read path (``SignalSource``), bars back
to back under a simulated clock. The full size (500 pairs) is
bench/bench_load_replay.py (which also runs it with the strategy's live read timeout).
No timing thresholds here: counts only.
"""

from __future__ import annotations

import uuid

import pytest

from devservers.faults.replay import ReplaySize, run_replay

pytestmark = pytest.mark.slow


def test_replay_loses_and_duplicates_nothing_with_one_query_per_loop(mongo_uri, mongo_client):
    size = ReplaySize(pairs=50, strategies=3, minutes=60)
    db = f"replay_{uuid.uuid4().hex[:8]}"
    try:
        # a generous read timeout: this test counts, it does not time (the bench does)
        report = run_replay(mongo_uri, db, size, socket_timeout_ms=30_000)
    finally:
        mongo_client.drop_database(db)
    assert report.failed_loops == 0 and report.loops == size.minutes
    assert (report.missing, report.duplicates) == (0, 0)
    assert report.finds_per_loop == [1] * size.minutes
    assert report.exported == report.stored == report.distinct_keys == size.documents == 9000
    assert report.rejected == 0
    assert len(report.export_s) == len(report.read_s) == size.minutes  # distribution recorded


def test_the_replay_check_sees_a_signal_the_exporter_never_stored(mongo_uri, mongo_client,
                                                                  monkeypatch):
    """Guards the harness: one dropped row must show up as exactly one missing signal."""
    import devservers.faults.replay as replay

    real_export = replay.export_signals

    def export_dropping_one(frame, coll, **kwargs):
        if frame["ts"].iloc[0].minute == 3:
            frame = frame.iloc[1:]
        return real_export(frame, coll, **kwargs)

    monkeypatch.setattr(replay, "export_signals", export_dropping_one)
    size = ReplaySize(pairs=5, strategies=2, minutes=6)
    db = f"replay_{uuid.uuid4().hex[:8]}"
    try:
        report = run_replay(mongo_uri, db, size, socket_timeout_ms=30_000)
    finally:
        mongo_client.drop_database(db)
    assert (report.missing, report.duplicates) == (1, 0)
    assert report.stored == size.documents - 1
