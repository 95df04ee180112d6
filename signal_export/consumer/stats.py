"""Counters of what the consumer did with each signal, and a warn-once logger.

Every signal the strategy reads ends in exactly one bucket per evaluation:
``matched`` (mapped onto a row), ``stale``, ``expired``, ``malformed``,
``unknown_pair``, ``unmatched`` (no candle row within the tolerance, e.g. a gap
or before the frame), ``pending`` (newer than the last closed row: not usable
yet), ``no_action`` (a score between the thresholds), ``superseded`` (a newer
or higher-priority signal won the same row), ``deduped`` and ``debounced``.
The monitoring side reads :meth:`SignalStats.snapshot`; optional Prometheus
gauges mirror it. Not a metrics server: exposing the registry is the monitor's
job.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any

BUCKETS: tuple[str, ...] = (
    "matched", "stale", "expired", "malformed", "unknown_pair", "unmatched", "pending",
    "no_action", "superseded", "deduped", "debounced",
)

try:  # optional dependency (pinned in the project, but keep the consumer importable without it)
    from prometheus_client import Gauge

    _SIGNALS_GAUGE = Gauge(
        "ext_signals_last_evaluation", "Signals per outcome in the latest evaluation of a pair",
        ["pair", "outcome"],
    )
    _LAG_GAUGE = Gauge("ext_signals_lag_seconds", "now - latest signal ts - one bar", ["pair"])
except Exception:  # pragma: no cover - prometheus_client missing or gauge already registered
    _SIGNALS_GAUGE = None
    _LAG_GAUGE = None


class SignalStats:
    """Per-pair outcome counts of the latest evaluation (not cumulative: live re-evaluates)."""

    def __init__(self) -> None:
        self.last: dict[str, Counter] = defaultdict(Counter)
        self.lag_seconds: dict[str, float] = {}

    def record(self, pair: str, counts: Counter) -> None:
        self.last[pair] = Counter(counts)
        if _SIGNALS_GAUGE is not None:
            for bucket in BUCKETS:
                _SIGNALS_GAUGE.labels(pair=pair, outcome=bucket).set(counts.get(bucket, 0))

    def record_lag(self, pair: str, seconds: float) -> None:
        self.lag_seconds[pair] = seconds
        if _LAG_GAUGE is not None:
            _LAG_GAUGE.labels(pair=pair).set(seconds)

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": {pair: dict(c) for pair, c in self.last.items()},
            "lag_seconds": dict(self.lag_seconds),
        }


class WarnOnce:
    """Log each distinct warning key once per process (bad documents must not flood the log)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[str] = set()

    def __call__(self, key: str, msg: str, *args: object) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        self._logger.warning(msg, *args)
        return True


def serve_metrics(port: int, address: str = "127.0.0.1") -> bool:
    """Expose the gauges over HTTP (Prometheus text format) for the monitor; False on failure."""
    try:
        from prometheus_client import start_http_server

        start_http_server(port, addr=address)
    except Exception as exc:  # noqa: BLE001 - metrics must never stop the bot
        logging.getLogger(__name__).warning("ext_signals metrics not served on %s:%s: %s",
                                            address, port, exc)
        return False
    return True
