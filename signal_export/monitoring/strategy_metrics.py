"""The strategy's own counts, read from its Prometheus endpoint (``ext_signals.metrics_port``).

Why scrape: what the bot could not use (pairs outside its whitelist, malformed
documents, stale/expired signals) is known only inside the bot; Freqtrade's
REST API has no endpoint for strategy data, while ``ExternalSignalStrategy``
already serves gauges for Prometheus. The monitor reads
``signal_bridge_strategy_unusable_signals{strategy_id,reason}`` once per cycle
(one small HTTP GET) so ``signal-monitor status`` shows per strategy id and
reason what the producer sent in vain. Not the place the counts are made
(:mod:`signal_export.consumer.stats`).
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from signal_export.consumer.stats import UNUSABLE_METRIC
from signal_export.errors import BridgeError

__all__ = ["UNUSABLE_METRIC", "StrategyMetricsError", "parse_unusable", "read_unusable"]


class StrategyMetricsError(BridgeError, RuntimeError):
    """The endpoint did not answer with Prometheus text."""


def parse_unusable(text: str) -> dict[str, dict[str, int]]:
    """``{strategy_id: {reason: count}}`` from Prometheus exposition text."""
    out: dict[str, dict[str, int]] = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name != UNUSABLE_METRIC:
                continue
            for sample in family.samples:
                sid, reason = sample.labels.get("strategy_id"), sample.labels.get("reason")
                if sid is not None and reason is not None:
                    out.setdefault(sid, {})[reason] = int(sample.value)
    except ValueError as exc:
        raise StrategyMetricsError(f"not Prometheus text: {exc}") from None
    return out


def read_unusable(url: str, timeout_s: float = 3.0) -> dict[str, dict[str, int]]:
    """GET ``url`` (the bot's ``/metrics``) and parse :data:`UNUSABLE_METRIC`."""
    try:
        reply = httpx.get(url, timeout=timeout_s)
        reply.raise_for_status()
    except httpx.HTTPError as exc:
        raise StrategyMetricsError(f"{url}: {type(exc).__name__}: {exc}") from None
    return parse_unusable(reply.text)
