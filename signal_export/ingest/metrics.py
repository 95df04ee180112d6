"""Prometheus metrics of the ingest API, for the monitoring side (served at ``/metrics``).

* ``signal_bridge_ingest_latency_seconds`` (Histogram, label ``outcome``: ok /
  partial / rejected / error): receive -> stored, per ``POST /v1/signals``.
* ``signal_bridge_ingest_signals_total`` (Counter, labels ``producer``, ``status``:
  accepted / rejected / forbidden): items.
* ``signal_bridge_ingest_requests_total`` (Counter, label ``code``): HTTP answers.

The project's one metric prefix (``signal_bridge_``), as the monitor's and the
strategy's metrics (tests/monitoring/test_metrics_conventions.py).

Each app has its own :class:`~prometheus_client.CollectorRegistry`, so several
apps in one process (tests) never collide. Not for: alerting rules.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE  # noqa: N811
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

PREFIX = "signal_bridge_ingest"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

__all__ = ["IngestMetrics", "PROMETHEUS_CONTENT_TYPE"]


class IngestMetrics:
    """The ingest API's collectors in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.latency = Histogram(f"{PREFIX}_latency_seconds",
                                 "POST /v1/signals: request received -> signals stored",
                                 ["outcome"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.signals = Counter(f"{PREFIX}_signals", "Signals received, by producer and "
                               "status", ["producer", "status"], registry=self.registry)
        self.requests = Counter(f"{PREFIX}_requests", "HTTP answers by status code",
                                ["code"], registry=self.registry)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
