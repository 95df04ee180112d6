"""Load replay under a simulated clock: exporter -> MongoDB -> the strategy's read path.

For every simulated 1m bar, the signals of ``pairs x strategies`` for that bar
are exported (``export_signals`` with ``now`` = bar close + a few seconds), then
one bot loop of the live read path runs (``SignalSource.refresh`` at bar close
+ a few seconds, then a per-pair slice like ``populate`` takes). Each bar is
checked as soon as a loop succeeds: every (pair, strategy) signal of it is seen
exactly once (missing / duplicate counts). pymongo command monitoring counts the
``find`` commands of each loop (the one-query-per-loop promise) and the
``getMore`` continuations of that one cursor. Wall-clock latencies per bar are
kept for the distribution. The clock is simulated: bars run back to back, as
fast as the machine allows. A dev tool shared by tests/reliability and
bench/bench_load_replay.py; not product code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pymongo
from pymongo import monitoring

from signal_export.consumer.config import load_config
from signal_export.consumer.source import SignalSource
from signal_export.exporter import export_signals
from signal_export.store import ensure_runs_indexes, ensure_signal_indexes

BAR = timedelta(minutes=1)
EXPORT_AFTER_CLOSE = timedelta(seconds=2)
LOOP_AFTER_CLOSE = timedelta(seconds=5)


@dataclass(frozen=True)
class ReplaySize:
    pairs: int
    strategies: int
    minutes: int
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    @property
    def documents(self) -> int:
        return self.pairs * self.strategies * self.minutes


@dataclass
class ReplayReport:
    size: ReplaySize
    socket_timeout_ms: int = 0
    exported: int = 0
    rejected: int = 0
    stored: int = 0
    distinct_keys: int = 0
    missing: int = 0
    duplicates: int = 0
    loops: int = 0
    failed_loops: int = 0
    finds_per_loop: list[int] = field(default_factory=list)
    get_mores: int = 0
    export_s: list[float] = field(default_factory=list)
    read_s: list[float] = field(default_factory=list)
    check_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def end_to_end_s(self) -> list[float]:
        """Per bar: export start -> the loop that reads it has its slices (wall clock)."""
        return [e + r + c for e, r, c in zip(self.export_s, self.read_s, self.check_s,
                                              strict=False)]


class _CommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds = 0
        self.get_mores = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds += 1
        elif event.command_name == "getMore":
            self.get_mores += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def pair_names(n: int) -> list[str]:
    """``n`` distinct valid pairs (``P000/USDT`` ...)."""
    return [f"P{i:03d}/USDT" for i in range(n)]


def strategy_names(n: int) -> list[str]:
    return [f"replay_{i}" for i in range(n)]


def bar_frame(ts: datetime, pairs: list[str], strategies: list[str], rng: np.random.Generator,
              ) -> pd.DataFrame:
    """The signals of one bar: every pair x strategy, a score, the strategy's version."""
    n_p, n_s = len(pairs), len(strategies)
    return pd.DataFrame({
        "ts": pd.Series(pd.Timestamp(ts)).repeat(n_p * n_s).reset_index(drop=True),
        "timeframe": "1m",
        "pair": np.tile(pairs, n_s),
        "strategy_id": np.repeat(strategies, n_p),
        "score": rng.random(n_p * n_s),
        "version": 1,
    })


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max of a latency list (seconds)."""
    return {"p50": _percentile(values, 50), "p95": _percentile(values, 95),
            "p99": _percentile(values, 99), "max": max(values) if values else float("nan")}


def run_replay(uri: str, db_name: str, size: ReplaySize, *, seed: int = 7,
               collection: str = "crypto_signals",
               socket_timeout_ms: int | None = None) -> ReplayReport:
    """Replay ``size`` bars through exporter -> ``uri`` -> read path; see the module doc.

    The reader's client has the strategy's live timeouts (``ext_signals`` defaults);
    ``socket_timeout_ms`` overrides the read timeout (e.g. to measure a slow server).
    """
    pairs, strategies = pair_names(size.pairs), strategy_names(size.strategies)
    rng = np.random.default_rng(seed)
    writer = pymongo.MongoClient(uri, tz_aware=True)
    coll = writer[db_name][collection]
    runs = writer[db_name]["export_runs"]
    ensure_signal_indexes(coll)
    ensure_runs_indexes(runs)
    block: dict = {"strategy_ids": strategies}
    if socket_timeout_ms is not None:
        block["socket_timeout_ms"] = socket_timeout_ms
    cfg = load_config({"timeframe": "1m", "ext_signals": block},
                      env={"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": db_name,
                           "EXT_SIG_COLLECTION": collection})
    counter = _CommandCounter()
    reader = pymongo.MongoClient(  # the options SignalSource gives its own live client
        uri, tz_aware=True, appname="ExternalSignalStrategy", event_listeners=[counter],
        serverSelectionTimeoutMS=cfg.server_selection_timeout_ms,
        socketTimeoutMS=cfg.socket_timeout_ms, connectTimeoutMS=cfg.connect_timeout_ms)
    source = SignalSource(cfg, client=reader, live=True)
    report = ReplayReport(size, socket_timeout_ms=cfg.socket_timeout_ms)
    unverified: list[pd.Timestamp] = []
    started = time.perf_counter()
    for m in range(size.minutes):
        ts = size.start + m * BAR
        close = ts + BAR
        frame = bar_frame(ts, pairs, strategies, rng)
        t0 = time.perf_counter()
        result = export_signals(frame, coll, runs_collection=runs, now=close + EXPORT_AFTER_CLOSE)
        report.export_s.append(time.perf_counter() - t0)
        report.exported += result.stored
        report.rejected += result.rejected
        unverified.append(pd.Timestamp(ts))

        finds_before = counter.finds
        t0 = time.perf_counter()
        ok = source.refresh(pairs, close + LOOP_AFTER_CLOSE)
        report.read_s.append(time.perf_counter() - t0)
        report.finds_per_loop.append(counter.finds - finds_before)
        report.loops += 1
        if not ok:
            report.failed_loops += 1
            report.check_s.append(0.0)
            continue
        t0 = time.perf_counter()
        per_bar = np.zeros(len(unverified), dtype=np.int64)
        wanted = np.array([u.value // 1_000_000 for u in unverified], dtype="int64")
        for pair in pairs:  # what populate() takes per pair: its slice of the cached frame
            signals = source.signals_for(pair)
            stamps = signals["ts"].dt.as_unit("ms").astype("int64").to_numpy()
            per_bar += (stamps[:, None] == wanted[None, :]).sum(axis=0)
        expected = len(pairs) * len(strategies)
        report.missing += int(np.clip(expected - per_bar, 0, None).sum())
        report.duplicates += int(np.clip(per_bar - expected, 0, None).sum())
        unverified = []
        report.check_s.append(time.perf_counter() - t0)
    report.wall_s = time.perf_counter() - started
    report.missing += len(unverified) * len(pairs) * len(strategies)  # never seen by a loop
    report.get_mores = counter.get_mores
    report.stored = coll.count_documents({})
    keys = {(d["strategy_id"], d["pair"], d["ts"]) for d in coll.find(
        {}, {"_id": 0, "strategy_id": 1, "pair": 1, "ts": 1})}
    report.distinct_keys = len(keys)
    source.close()
    writer.close()
    return report


def bulk_export_baseline(uri: str, db_name: str, size: ReplaySize, *, seed: int = 7,
                         chunk_minutes: int = 60) -> float:
    """Seconds to export the same signals in large batches, no reads: the bare write cost."""
    pairs, strategies = pair_names(size.pairs), strategy_names(size.strategies)
    rng = np.random.default_rng(seed)
    client = pymongo.MongoClient(uri, tz_aware=True)
    coll = client[db_name]["crypto_signals"]
    ensure_signal_indexes(coll)
    frames = [bar_frame(size.start + m * BAR, pairs, strategies, rng)
              for m in range(size.minutes)]
    now = size.start + (size.minutes + 1) * BAR
    t0 = time.perf_counter()
    for lo in range(0, len(frames), chunk_minutes):
        export_signals(pd.concat(frames[lo:lo + chunk_minutes], ignore_index=True), coll,
                       now=now)
    elapsed = time.perf_counter() - t0
    client.close()
    return elapsed
