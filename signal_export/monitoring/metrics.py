"""Prometheus metrics of the monitor: one registry, updated from each cycle's snapshot.

Conventions (checked by tests/monitoring/test_metrics_conventions.py for every
exporter of the project): one prefix ``signal_bridge_``; base units (seconds,
ratios 0..1, ``_timestamp_seconds`` for points in time); latencies are
``Histogram``\\ s; things that happen are ``Counter``\\ s ending in ``_total``; a
pair that never had a signal has no lag series (no ``+Inf``): it shows as a
``signal_bridge_watched_pair_info`` series without a
``signal_bridge_signal_last_seen_timestamp_seconds`` partner.

Counters and histograms count what the monitor observed while it ran: export
and scheduler run records that finished after its first cycle (the first cycle
takes a baseline; a restart starts at 0, which ``rate()``/``increase()``
handle), rate-limit log lines, alert notifications. Gauges are the current
reading; label sets are replaced every cycle, so a pair that disappeared does
not keep a stale value. Served by :func:`serve_metrics` (``prometheus_client``'s
HTTP server, a background thread) at ``/metrics``. Not where values are read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from signal_export.contract import timeframe_seconds
from signal_export.monitoring.health import EXPORT_OUTCOMES

if TYPE_CHECKING:
    from signal_export.monitoring.monitor import Snapshot

PREFIX = "signal_bridge"
#: MongoDB ping round trip (s)
PING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: One export run, start -> audit record (s)
EXPORT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: Scheduled job: bar close -> signals acknowledged (s)
JOB_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
#: Freshness of a signal: its first version's available_at - its bar close (s)
FRESHNESS_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                     7200.0, 21600.0, 86400.0)
#: Export result fields counted per signal (``counts`` of the audit record)
SIGNAL_RESULTS = ("inserted", "updated", "unchanged", "stale_version", "rejected", "failed")


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry

        def g(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, labels, registry=r)

        def c(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=r)

        def h(name: str, doc: str, buckets: tuple[float, ...],
              labels: tuple[str, ...] = ()) -> Histogram:
            return Histogram(f"{PREFIX}_{name}", doc, labels, buckets=buckets, registry=r)

        pair = ("strategy_id", "pair", "timeframe")
        # signals
        self.lag = g("signal_lag_seconds", "now - newest signal ts - one bar (absent: never "
                     "had a signal)", pair)
        self.last_seen = g("signal_last_seen_timestamp_seconds", "close time (unix s) of the "
                           "bar of the newest stored signal", pair)
        self.watched = g("watched_pair_info", "1 for every strategy/pair the monitor expects "
                         "signals for", pair)
        self.timeframe = g("timeframe_seconds", "length of a bar of the timeframe",
                           ("timeframe",))
        strategy = ("strategy_id", "timeframe")
        self.freshness = h("signal_freshness_seconds", "available_at (server clock) of a "
                           "signal's first version - its bar close, once per signal",
                           FRESHNESS_BUCKETS, strategy)
        self.freshness_budget = g("signal_freshness_budget_seconds", "the producer's freshness "
                                  "budget: the SLO quantile (p95) may not exceed it", strategy)
        # MongoDB
        self.mongo_up = g("mongo_up", "1 if the signal store answers ping")
        self.mongo_ping = h("mongo_ping_seconds", "ping round trip", PING_BUCKETS)
        # exporter (audit records)
        self.export_runs = c("exporter_runs_total", "finished export runs by outcome (partial: "
                             "rows rejected by validation; failed: valid rows not stored)",
                             ("outcome",))
        self.export_signals = c("exporter_signals_total", "signals of finished export runs by "
                                "result", ("result",))
        self.export_duration = h("exporter_run_duration_seconds", "one export run, start -> "
                                 "audit record", EXPORT_BUCKETS)
        self.export_success = g("exporter_success_ratio", "runs that stored every valid "
                                "signal / finished runs, in the look-back window")
        # scheduled jobs
        job = ("scheduler_job",)  # not "job": Prometheus' own target label
        self.job_runs = c("job_runs_total", "scheduled runs by status", (*job, "status"))
        self.job_signals = c("job_signals_total", "signals submitted by scheduled runs", job)
        self.job_latency = h("job_latency_seconds", "scheduled run: bar close -> signals "
                             "acknowledged", JOB_BUCKETS, job)
        self.job_over_budget = c("job_over_budget_runs_total", "scheduled runs over their "
                                 "latency budget", job)
        self.job_last_success = g("job_last_success_timestamp_seconds", "finish time (unix s) "
                                  "of the job's newest ok run in the look-back window", job)
        # bots
        self.bot_up = g("bot_up", "1 if the Freqtrade REST API answers and the bot runs",
                        ("bot",))
        self.bot_open = g("bot_open_trades", "open trades", ("bot",))
        self.bot_balance = g("bot_free_balance", "free stake-currency balance",
                             ("bot", "currency"))
        self.rate_limits = c("bot_rate_limit_errors_total", "rate-limit errors seen in the "
                             "bot's log", ("bot",))
        self.unusable = g("bot_unusable_signals", "stored signals the bot's strategy could not "
                          "use, latest evaluation (scraped from its "
                          "signal_bridge_strategy_unusable_signals)",
                          ("bot", "strategy_id", "reason"))
        # reconciliation and alerts
        self.recon = g("reconciliation_outcomes", "signals vs trades in the look-back window",
                       ("strategy_id", "kind"))
        self.alerts = g("alerts_active", "alerts firing now (inhibited ones included)",
                        ("rule",))
        self.notifications = c("alert_notifications_total", "grouped alert messages by channel "
                               "and result", ("channel", "result"))
        self.last_cycle = g("monitor_last_cycle_timestamp_seconds", "time (unix s) of the "
                            "newest monitor cycle")
        for outcome in EXPORT_OUTCOMES:
            self.export_runs.labels(outcome)
        for result in SIGNAL_RESULTS:
            self.export_signals.labels(result)
        #: records already counted (or part of the baseline), with their finish time
        self._seen_exports: dict[Any, datetime | None] = {}
        self._seen_jobs: dict[Any, datetime | None] = {}
        #: signals already observed in the freshness histogram, by key, with their bar close
        self._seen_signals: dict[Any, datetime | None] = {}
        self._baselined = False
        self._deliveries: dict[tuple[str, str], int] = {}

    def update(self, snap: Snapshot) -> None:
        for gauge in (self.lag, self.last_seen, self.watched, self.timeframe, self.bot_up,
                      self.bot_open, self.bot_balance, self.unusable, self.recon, self.alerts,
                      self.job_last_success, self.freshness_budget):
            gauge.clear()
        self.last_cycle.set(snap.now.timestamp())
        for r in snap.lags.itertuples(index=False):
            self.watched.labels(r.strategy_id, r.pair, r.timeframe).set(1)
            self.timeframe.labels(r.timeframe).set(timeframe_seconds(r.timeframe))
            if math.isfinite(r.lag_s):
                self.lag.labels(r.strategy_id, r.pair, r.timeframe).set(r.lag_s)
                self.last_seen.labels(r.strategy_id, r.pair, r.timeframe).set(
                    r.ts.timestamp() + r.bar_s)
        self.mongo_up.set(1 if snap.mongo.reachable else 0)
        if snap.mongo.ping_s is not None:
            self.mongo_ping.observe(snap.mongo.ping_s)
        if snap.exporter is not None:  # MongoDB was read this cycle
            self.export_success.set(snap.exporter.success_rate)
            self._count_exports(snap.exporter.records)
            self._count_jobs(snap.jobs)
            self._count_freshness(snap.freshness)
            self._baselined = True
            for seen in (self._seen_exports, self._seen_jobs):
                self._forget_before(seen, snap.since)
        for b in snap.bots:
            self.bot_up.labels(b.name).set(1 if b.reachable and b.state == "running" else 0)
            self.bot_open.labels(b.name).set(len(b.open_trades))
            if b.free_balance is not None:
                self.bot_balance.labels(b.name, b.currency).set(b.free_balance)
            self.rate_limits.labels(b.name).inc(len(b.rate_limit_lines))
            for sid, counts in (b.unusable or {}).items():
                for reason, n in counts.items():
                    self.unusable.labels(b.name, sid, reason).set(n)
        if not snap.outcomes.empty:
            counts = snap.outcomes.assign(strategy_id=snap.outcomes["strategy_id"].fillna("-"))
            for (sid, kind), n in counts.groupby(["strategy_id", "kind"]).size().items():
                self.recon.labels(sid, kind).set(n)
        for rule, n in snap.active_rules.items():
            self.alerts.labels(rule).set(n)
        for (channel, result), total in snap.deliveries.items():
            delta = total - self._deliveries.get((channel, result), 0)
            self.notifications.labels(channel, result).inc(max(delta, 0))
            self._deliveries[(channel, result)] = total

    def _count_exports(self, records: Iterable[Mapping[str, Any]]) -> None:
        for rec in records:
            if self._new(self._seen_exports, rec["run_id"], rec.get("finished_at")):
                self.export_runs.labels(rec["outcome"]).inc()
                counts = rec.get("counts") or {}
                for result in SIGNAL_RESULTS:
                    if counts.get(result):
                        self.export_signals.labels(result).inc(int(counts[result]))
                if rec.get("latency_s") is not None:
                    self.export_duration.observe(rec["latency_s"])

    def _count_jobs(self, jobs: Iterable[Any]) -> None:
        for j in jobs:
            self.job_runs.labels(j.job, "ok")  # zero series, so increase() sees the first
            self.job_signals.labels(j.job)
            self.job_over_budget.labels(j.job)
            if j.last_export is not None:
                self.job_last_success.labels(j.job).set(j.last_export.timestamp())
            for doc in j.records:
                # a failed bar retried later keeps its _id (job|bar) but finishes again
                key = (doc.get("_id") or f"{j.job}|{doc.get('bar')}", doc.get("finished_at"))
                if not self._new(self._seen_jobs, key, doc.get("finished_at")):
                    continue
                self.job_runs.labels(j.job, str(doc.get("status"))).inc()
                submitted = int((doc.get("counts") or {}).get("submitted") or 0)
                self.job_signals.labels(j.job).inc(submitted)
                if doc.get("latency_s") is not None:
                    self.job_latency.labels(j.job).observe(float(doc["latency_s"]))
                if doc.get("over_budget"):
                    self.job_over_budget.labels(j.job).inc()

    def _count_freshness(self, fresh: Any) -> None:
        """Each signal of the SLO window once (after the baseline); forget those whose bar
        closed before the oldest one still in the window (they never come back)."""
        if fresh is None or fresh.empty:
            return
        for r in fresh.drop_duplicates(["strategy_id", "timeframe"]).itertuples(index=False):
            self.freshness_budget.labels(r.strategy_id, r.timeframe).set(r.budget_s)
            self.freshness.labels(r.strategy_id, r.timeframe)  # zero series for increase()
        closes = pd.to_datetime(fresh["ts"], utc=True) + pd.to_timedelta(fresh["bar_s"], "s")
        for r, close in zip(fresh.itertuples(index=False), closes, strict=True):
            if self._new(self._seen_signals, (r.strategy_id, r.pair, r.timeframe, r.ts), close):
                self.freshness.labels(r.strategy_id, r.timeframe).observe(r.freshness_s)
        self._forget_before(self._seen_signals, closes.min())

    def _new(self, seen: dict[Any, datetime | None], key: Any,
             finished_at: datetime | None) -> bool:
        """True once per record, and never during the baseline (first) update."""
        if key in seen:
            return False
        seen[key] = finished_at
        return self._baselined

    @staticmethod
    def _forget_before(seen: dict[Any, datetime | None], since: datetime | None) -> None:
        """Records that finished before the window's start never come back from a query."""
        if since is None:
            return
        for key in [k for k, t in seen.items() if t is not None and t < since]:
            del seen[key]

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve_metrics(metrics: MonitorMetrics, port: int, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
    start_http_server(port, addr=addr, registry=metrics.registry)
