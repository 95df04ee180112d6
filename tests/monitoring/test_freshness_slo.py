"""Freshness SLO against the real dev server: ``available_at - bar close`` per strategy id as a
histogram, and an alert when its p95 over the window exceeds the producer's budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from fakes import FakeClock, RecordingChannel

from signal_export.contract import SIGNALS_COLLECTION, floor_to_bar
from signal_export.exporter import export_signals
from signal_export.monitoring.alerts import Rule
from signal_export.monitoring.config import parse_monitor_config
from signal_export.monitoring.manager import AlertManager
from signal_export.monitoring.metrics import MonitorMetrics
from signal_export.monitoring.monitor import Monitor
from signal_export.monitoring.rules import freshness_conditions
from signal_export.point_in_time import AVAILABLE_AT_FIELD
from signal_export.settings import Settings
from signal_export.store import ensure_signal_indexes

MIN = timedelta(minutes=1)
PAIRS = ("BTC/USDT", "ETH/USDT")


def _export(db, strategy_id: str, bars: list[datetime], version: int = 1) -> None:
    docs = [{"strategy_id": strategy_id, "pair": p, "timeframe": "1m", "ts": ts, "score": 0.5,
             "version": version} for ts in bars for p in PAIRS]
    assert export_signals(docs, db[SIGNALS_COLLECTION]).stored == len(docs)


def _freshness_of(db, strategy_id: str, since_close: datetime) -> np.ndarray:
    """The definition, from what is stored: first version's available_at - bar close."""
    rows = list(db[SIGNALS_COLLECTION].find({"strategy_id": strategy_id}))
    rows += list(db[f"{SIGNALS_COLLECTION}_history"].find({"strategy_id": strategy_id}))
    first: dict[tuple, datetime] = {}
    for r in rows:
        key = (r["pair"], r["ts"])
        first[key] = min(first.get(key, r[AVAILABLE_AT_FIELD]), r[AVAILABLE_AT_FIELD])
    out = [max(0.0, (t - (ts + MIN)).total_seconds()) for (_, ts), t in first.items()
           if ts + MIN >= since_close]
    return np.array(out)


@pytest.fixture
def setup(mongo_client, mongo_db):
    ensure_signal_indexes(mongo_db[SIGNALS_COLLECTION])
    now = floor_to_bar(datetime.now(UTC), "1m").to_pydatetime()
    late_bars = [now - k * MIN for k in range(20, 10, -1)]  # exported 10-20 min after close
    _export(mongo_db, "alpha", late_bars)
    _export(mongo_db, "beta", late_bars)
    config = parse_monitor_config({
        "strategies": [{"strategy_id": "alpha", "timeframe": "1m", "pairs": list(PAIRS)},
                       {"strategy_id": "beta", "timeframe": "1m", "pairs": list(PAIRS),
                        "freshness_budget_seconds": 7200},
                       {"strategy_id": "gamma", "timeframe": "1h"}],
        "thresholds": {"freshness_window_bars": 30}, "writeback": False})
    clock = FakeClock(datetime.now(UTC))
    rec = RecordingChannel()
    monitor = Monitor(config, mongo_client, Settings(db=mongo_db.name), apis={}, clock=clock,
                      manager=AlertManager([rec], clock=clock))
    return monitor, rec, clock, mongo_db, now


def _slo(snap) -> dict[str, object]:
    return {c.strategy_id: c for c in snap.conditions if c.rule == Rule.FRESHNESS_SLO}


def test_p95_over_the_window_against_each_producers_budget(setup):
    monitor, rec, _clock, db, _now = setup
    snap = monitor.cycle()
    slo = _slo(snap)
    want = np.quantile(_freshness_of(db, "alpha", snap.now - 30 * MIN), 0.95)
    assert slo["alpha"].firing and slo["alpha"].threshold == 30.0  # default: 1m / 2
    assert slo["alpha"].value == pytest.approx(want)
    assert slo["beta"].value == pytest.approx(
        np.quantile(_freshness_of(db, "beta", snap.now - 30 * MIN), 0.95))
    assert not slo["beta"].firing and slo["beta"].threshold == 7200.0
    assert not slo["gamma"].firing and slo["gamma"].value is None  # no signal: checked, clear
    assert len(snap.freshness) == 2 * 10 * len(PAIRS)
    (note,) = rec.sent  # the existing grouping: one message for the cycle
    lines = note.message()
    assert "freshness_slo alpha 1m" in lines and "freshness_slo beta" not in lines


def test_a_revision_does_not_make_a_signal_look_late_its_first_version_counts(setup):
    monitor, _rec, _clock, db, now = setup
    before = _slo(monitor.cycle())["alpha"].value
    _export(db, "alpha", [now - 15 * MIN], version=2)  # revised long after the close
    assert db[f"{SIGNALS_COLLECTION}_history"].count_documents({"strategy_id": "alpha"}) == 2
    assert _slo(monitor.cycle())["alpha"].value == pytest.approx(before)


def test_the_histogram_counts_each_new_signal_once_after_the_baseline(setup):
    monitor, _rec, clock, db, now = setup
    metrics = MonitorMetrics()
    metrics.update(monitor.cycle())  # baseline: the window's signals are not counted

    def value(name, **labels):
        return metrics.registry.get_sample_value(name, {"strategy_id": "alpha",
                                                        "timeframe": "1m", **labels})

    assert value("signal_bridge_signal_freshness_seconds_count") == 0
    assert value("signal_bridge_signal_freshness_budget_seconds") == 30.0
    _export(db, "alpha", [now - 2 * MIN, now - MIN])  # 4 new signals, 0-2 min late
    clock.now = datetime.now(UTC)
    snap = monitor.cycle()
    metrics.update(snap)
    metrics.update(monitor.cycle())  # seen already: not counted twice
    assert value("signal_bridge_signal_freshness_seconds_count") == 4
    new = snap.freshness[(snap.freshness["strategy_id"] == "alpha")
                         & (pd.to_datetime(snap.freshness["ts"], utc=True) >= now - 2 * MIN)]
    assert value("signal_bridge_signal_freshness_seconds_sum") == pytest.approx(
        new["freshness_s"].sum())
    assert value("signal_bridge_signal_freshness_seconds_bucket", le="300.0") == int(
        (new["freshness_s"] <= 300.0).sum())


def test_the_rule_reads_the_quantile_and_the_budget_it_is_given():
    now = datetime(2026, 3, 2, tzinfo=UTC)
    frame = pd.DataFrame({"strategy_id": "s", "timeframe": "1h", "pair": "BTC/USDT",
                          "ts": [now] * 20, "freshness_s": np.arange(20.0),
                          "budget_s": 1800.0})
    (c,) = freshness_conditions(frame, now, quantile=0.5)
    assert c.value == pytest.approx(9.5) and not c.firing and c.threshold == 1800.0
    (c,) = freshness_conditions(frame.assign(budget_s=10.0), now, quantile=0.95)
    assert c.firing and c.value == pytest.approx(np.quantile(np.arange(20.0), 0.95))
    assert "p95" in c.detail and "20 1h signals" in c.detail
