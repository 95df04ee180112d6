"""Prometheus metrics of the monitor: one registry, gauges set from each cycle's snapshot.

Served by :func:`serve_metrics` (``prometheus_client``'s HTTP server, a
background thread) at ``/metrics``. Label sets are replaced every cycle, so a
pair that disappeared does not keep a stale value. Not where values are read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, generate_latest, start_http_server

if TYPE_CHECKING:
    from signal_export.monitoring.monitor import Snapshot

PREFIX = "signal_bridge"


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry

        def g(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, labels, registry=r)

        self.lag = g("signal_lag_seconds", "now - newest signal ts - one bar",
                     ("strategy_id", "pair", "timeframe"))
        self.mongo_up = g("mongo_up", "1 if the signal store answers ping")
        self.mongo_ping = g("mongo_ping_ms", "ping round trip in ms")
        self.export_runs = g("exporter_runs", "export runs in the look-back window", ("status",))
        self.export_success = g("exporter_success_rate", "ok / all export runs in the window")
        self.write_latency = g("exporter_write_latency_ms", "export write latency percentiles",
                               ("quantile",))
        self.job_runs = g("job_runs", "scheduled runs in the window", ("job", "status"))
        self.job_signals = g("job_signals", "signals submitted by the job in the window", ("job",))
        self.job_latency = g("job_latency_seconds", "newest run: bar close -> acknowledged",
                             ("job",))
        self.job_over_budget = g("job_over_budget_runs", "runs over the latency budget", ("job",))
        self.bot_up = g("bot_up", "1 if the Freqtrade REST API answers", ("bot",))
        self.bot_open = g("bot_open_trades", "open trades", ("bot",))
        self.bot_balance = g("bot_free_balance", "free stake-currency balance", ("bot",))
        self.rate_limits = g("bot_rate_limit_errors", "rate-limit errors in the bot's log",
                             ("bot",))
        self.unusable = g("bot_unusable_signals", "signals the bot's strategy could not use "
                          "(scraped from its ext_signals_unusable gauge)",
                          ("bot", "strategy_id", "reason"))
        self.recon = g("reconciliation_outcomes", "signals vs trades in the window",
                       ("strategy_id", "kind"))
        self.alerts = g("alerts_active", "alerts currently firing", ("rule",))

    def update(self, snap: Snapshot) -> None:
        for gauge in (self.lag, self.export_runs, self.write_latency, self.job_runs,
                      self.job_signals, self.job_latency, self.job_over_budget, self.bot_up,
                      self.bot_open, self.bot_balance, self.rate_limits, self.unusable, self.recon,
                      self.alerts):
            gauge.clear()
        for r in snap.lags.itertuples(index=False):
            self.lag.labels(r.strategy_id, r.pair, r.timeframe).set(r.lag_s)
        self.mongo_up.set(1 if snap.mongo.reachable else 0)
        self.mongo_ping.set(snap.mongo.ping_ms or 0.0)
        if snap.exporter is not None:
            e = snap.exporter
            self.export_runs.labels("ok").set(e.ok)
            self.export_runs.labels("failed").set(e.failed)
            self.export_success.set(e.success_rate)
            if e.write_latency_p50_ms is not None:
                self.write_latency.labels("0.5").set(e.write_latency_p50_ms)
                self.write_latency.labels("0.99").set(e.write_latency_p99_ms or 0.0)
        for j in snap.jobs:
            self.job_runs.labels(j.job, "ok").set(j.ok)
            self.job_runs.labels(j.job, "failed").set(j.failed)
            self.job_signals.labels(j.job).set(j.signals)
            self.job_latency.labels(j.job).set(j.last_latency_s or 0.0)
            self.job_over_budget.labels(j.job).set(j.over_budget)
        for b in snap.bots:
            self.bot_up.labels(b.name).set(1 if b.reachable else 0)
            self.bot_open.labels(b.name).set(len(b.open_trades))
            if b.free_balance is not None:
                self.bot_balance.labels(b.name).set(b.free_balance)
            self.rate_limits.labels(b.name).set(len(b.rate_limit_lines))
            for sid, counts in (b.unusable or {}).items():
                for reason, n in counts.items():
                    self.unusable.labels(b.name, sid, reason).set(n)
        if not snap.outcomes.empty:
            counts = snap.outcomes.assign(strategy_id=snap.outcomes["strategy_id"].fillna("-"))
            for (sid, kind), n in counts.groupby(["strategy_id", "kind"]).size().items():
                self.recon.labels(sid, kind).set(n)
        for rule, n in snap.active_rules.items():
            self.alerts.labels(rule).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve_metrics(metrics: MonitorMetrics, port: int, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
    start_http_server(port, addr=addr, registry=metrics.registry)
