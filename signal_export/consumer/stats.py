"""Counters of what the consumer did with each signal, and a warn-once logger.

Every signal the strategy reads ends in exactly one bucket per evaluation:
``matched`` (mapped onto a row), ``stale``, ``expired``, ``malformed``,
``unknown_pair``, ``unmatched`` (no candle row within the tolerance, e.g. a gap
or before the frame), ``pending`` (newer than the last closed row: not usable
yet), ``no_action`` (a score between the thresholds), ``superseded`` (a newer
or higher-priority signal won the same row), ``deduped`` and ``debounced``.

Two views, because ops ask two questions. Per pair (``last``, gauge
``signal_bridge_strategy_last_evaluation_signals{pair,outcome}``): what happened on this
market. Per strategy id (:meth:`SignalStats.strategy_counts`, gauge
``signal_bridge_strategy_unusable_signals{strategy_id,reason}``): is this producer sending
anything the bot can use. Only the per-strategy view sees documents for pairs
outside the whitelist or without a readable pair/ts: they have no whitelisted
pair to hang a count on, and a ``pair`` label per bogus value would let a
producer grow the label set without bound. The monitoring side reads
:meth:`SignalStats.snapshot`; the gauges mirror it. The gauges live in their own
registry (:data:`REGISTRY`, served by :func:`serve_metrics` on ``ext_signals.metrics_port``),
named like every metric of the project (prefix ``signal_bridge_``, seconds).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from typing import Any

BUCKETS: tuple[str, ...] = (
    "matched", "stale", "expired", "malformed", "unknown_pair", "unmatched", "pending",
    "no_action", "superseded", "deduped", "debounced",
)
#: Outcomes meaning "this stored signal could not be used" (a data or timing problem,
#: not a decision): the reasons of the per-strategy gauge. ``pending`` (used later),
#: ``no_action`` (a neutral score) and the row-level outcomes are decisions, not problems.
UNUSABLE_REASONS: tuple[str, ...] = ("unknown_pair", "malformed", "unmatched", "stale",
                                     "expired")
#: Outcomes that depend on the signal alone (its own ts/valid_until/score against the
#: candles), so they can be told apart per strategy id even when several ids share a pair.
SIGNAL_LEVEL: tuple[str, ...] = ("pending", "unmatched", "stale", "expired", "no_action")

#: Names of the strategy's gauges (the monitor scrapes :data:`UNUSABLE_METRIC`).
LAST_EVALUATION_METRIC = "signal_bridge_strategy_last_evaluation_signals"
LAG_METRIC = "signal_bridge_strategy_signal_lag_seconds"
UNUSABLE_METRIC = "signal_bridge_strategy_unusable_signals"

try:  # optional dependency (pinned in the project, but keep the consumer importable without it)
    from prometheus_client import CollectorRegistry, Gauge

    #: The strategy's own registry: its endpoint serves these gauges and nothing else.
    REGISTRY = CollectorRegistry()
    _SIGNALS_GAUGE = Gauge(
        LAST_EVALUATION_METRIC, "Signals per outcome in the latest evaluation of a pair",
        ["pair", "outcome"], registry=REGISTRY,
    )
    _LAG_GAUGE = Gauge(LAG_METRIC, "now - latest signal ts - one bar (absent: no signal yet)",
                       ["pair"], registry=REGISTRY)
    _UNUSABLE_GAUGE = Gauge(
        UNUSABLE_METRIC,
        "Stored signals of a strategy id the bot could not use, per reason (latest evaluation "
        "of every whitelisted pair plus documents outside the whitelist in the read window)",
        ["strategy_id", "reason"], registry=REGISTRY,
    )
except Exception:  # pragma: no cover - prometheus_client missing
    REGISTRY = None
    _SIGNALS_GAUGE = None
    _LAG_GAUGE = None
    _UNUSABLE_GAUGE = None


class SignalStats:
    """Outcome counts of the latest evaluation (not cumulative: live re-evaluates).

    Per pair as before; per strategy id as the sum of (a) what the reader rejected in
    its latest read (:meth:`record_reader`: malformed documents and pairs outside the
    whitelist) and (b) the matcher outcomes of the latest evaluation of every pair
    (:meth:`record`'s ``by_strategy``). (b) is kept per pair and totalled incrementally,
    so a pair's re-evaluation replaces its share without re-summing 500 pairs per loop.
    """

    def __init__(self, strategy_ids: Iterable[str] = ()) -> None:
        self.last: dict[str, Counter] = defaultdict(Counter)
        self.lag_seconds: dict[str, float] = {}
        self._ids = tuple(strategy_ids)
        self._reader: dict[str, Counter] = {}
        self._by_pair: dict[str, dict[str, Counter]] = {}
        self._matcher: dict[str, Counter] = defaultdict(Counter)
        self._gauged: set[str] = set()
        self._set_strategy_gauges(self._ids)  # 0, not absent: "nothing unusable" is a reading

    def record(self, pair: str, counts: Counter,
               by_strategy: Mapping[str, Counter] | None = None) -> None:
        """The pair's counts of this evaluation; ``by_strategy``: the same split per id."""
        self.last[pair] = Counter(counts)
        if _SIGNALS_GAUGE is not None:
            for bucket in BUCKETS:
                _SIGNALS_GAUGE.labels(pair=pair, outcome=bucket).set(counts.get(bucket, 0))
        if by_strategy is not None:
            old = self._by_pair.pop(pair, {})
            for sid, c in old.items():
                self._matcher[sid].subtract(c)
            if by_strategy:
                self._by_pair[pair] = {sid: Counter(c) for sid, c in by_strategy.items()}
            for sid, c in by_strategy.items():
                self._matcher[sid].update(c)
            self._set_strategy_gauges(set(old) | set(by_strategy))

    def record_reader(self, by_strategy: Mapping[str, Counter]) -> None:
        """What the latest read rejected per strategy id (replaces the previous read's)."""
        changed = set(self._reader) | set(by_strategy)
        self._reader = {sid: Counter(c) for sid, c in by_strategy.items()}
        self._set_strategy_gauges(changed)

    def retain(self, pairs: Collection[str]) -> None:
        """Forget the per-strategy share of pairs that left the whitelist.

        Their documents are now counted by the reader as ``unknown_pair``; keeping the
        old evaluation as well would count them twice.
        """
        keep = pairs if isinstance(pairs, set | frozenset) else set(pairs)
        gone = [p for p in self._by_pair if p not in keep]
        changed: set[str] = set()
        for pair in gone:
            for sid, c in self._by_pair.pop(pair).items():
                self._matcher[sid].subtract(c)
                changed.add(sid)
        if changed:
            self._set_strategy_gauges(changed)

    def strategy_counts(self) -> dict[str, dict[str, int]]:
        """Per strategy id: every non-zero bucket (configured ids always present)."""
        out: dict[str, dict[str, int]] = {sid: {} for sid in self._ids}
        for sid in set(self._reader) | set(self._matcher):
            total = +(self._reader.get(sid, Counter()) + self._matcher.get(sid, Counter()))
            if total or sid in out:
                out[sid] = dict(total)
        return out

    def _strategy_total(self, sid: str) -> Counter:
        return self._reader.get(sid, Counter()) + self._matcher.get(sid, Counter())

    def _set_strategy_gauges(self, ids: Iterable[str]) -> None:
        if _UNUSABLE_GAUGE is None:
            return
        for sid in ids:
            total = self._strategy_total(sid)
            # every reason of an id once it has a series, so a count that drops to 0 reads 0
            if sid in self._ids or sid in self._gauged or any(total[r] for r in UNUSABLE_REASONS):
                self._gauged.add(sid)
                for reason in UNUSABLE_REASONS:
                    _UNUSABLE_GAUGE.labels(strategy_id=sid, reason=reason).set(total[reason])

    def record_lag(self, pair: str, seconds: float) -> None:
        self.lag_seconds[pair] = seconds
        if _LAG_GAUGE is None:
            return
        if math.isfinite(seconds):
            _LAG_GAUGE.labels(pair=pair).set(seconds)
        else:  # no signal: never +Inf, and no stale lag from an earlier one either
            with contextlib.suppress(KeyError):
                _LAG_GAUGE.remove(pair)

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": {pair: dict(c) for pair, c in self.last.items()},
            "lag_seconds": dict(self.lag_seconds),
            "by_strategy": self.strategy_counts(),
        }


def format_counts(counts: Mapping[str, int], order: Iterable[str] = BUCKETS, *,
                  zeros: bool = False) -> str:
    """``matched=3 stale=1`` in bucket order (then any other key by name)."""
    keys = list(order) + sorted(k for k in counts if k not in set(order))
    return " ".join(f"{k}={counts.get(k, 0)}" for k in keys if zeros or counts.get(k, 0))


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

    def first(self, key: str) -> bool:
        """True the first time ``key`` is seen (for callers that word one line for many keys)."""
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def serve_metrics(port: int, address: str = "127.0.0.1") -> bool:
    """Expose the gauges over HTTP (Prometheus text format) for the monitor; False on failure."""
    try:
        from prometheus_client import start_http_server

        start_http_server(port, addr=address, registry=REGISTRY)
    except Exception as exc:  # noqa: BLE001 - metrics must never stop the bot
        logging.getLogger(__name__).warning("strategy metrics not served on %s:%s: %s",
                                            address, port, exc)
        return False
    return True
