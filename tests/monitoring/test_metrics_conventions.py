"""Every Prometheus exporter of the project follows one set of conventions, and the shipped
Grafana dashboard and Prometheus alert rules query only metrics that exist.

The three exporters (the monitor, the ingest API, the strategy inside Freqtrade) are
populated with realistic readings, scraped as text, parsed with ``prometheus_client``'s
own parser and checked: one prefix ``signal_bridge_``; counters end in ``_total``; time
in seconds (``_seconds``, never ``ms``); latencies are histograms (no pre-computed
quantile gauges); no ``+Inf``/``NaN`` sample (a pair that never had a signal has no lag
series); no ``job``/``instance`` label (Prometheus' own target labels). Then every PromQL
expression of docker/prometheus/alerts.yml and docker/grafana/signal-bridge.json must name
only those metrics (and their labels).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from monitoring_data import MIN, T0
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from signal_export.consumer import stats as strategy_stats
from signal_export.ingest.metrics import IngestMetrics
from signal_export.monitoring.health import ExporterHealth, JobHealth, MongoHealth
from signal_export.monitoring.lag import signal_lag
from signal_export.monitoring.metrics import MonitorMetrics
from signal_export.monitoring.monitor import BotState, Snapshot
from signal_export.monitoring.reconcile import OUTCOME_COLUMNS

REPO = Path(__file__).resolve().parents[2]
PREFIX = "signal_bridge_"
TIME_WORDS = re.compile(r"latency|duration|lag|ping|timestamp|delay|uptime|age\b")
LATENCY_WORDS = re.compile(r"latency|duration|ping")


# --- the exporters, populated --------------------------------------------------------


def _export_record(run_id: str, outcome: str, latency_s: float, **counts: int) -> dict:
    return {"run_id": run_id, "outcome": outcome, "latency_s": latency_s,
            "counts": counts, "finished_at": T0 + MIN}


def _job_record(bar_min: int, status: str = "ok", latency: float = 4.0,
                over: bool = False) -> dict:
    bar = T0 + bar_min * MIN
    return {"_id": f"alpha_1m|{bar.isoformat()}", "job": "alpha_1m", "bar": bar,
            "status": status, "latency_s": latency, "over_budget": over,
            "finished_at": bar + MIN, "counts": {"submitted": 3}}


def _snapshot(now, exports: list[dict], job_records: list[dict], deliveries: dict
              ) -> Snapshot:
    latest = pd.DataFrame([{"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1m",
                            "ts": now - 2 * MIN}])
    lags = signal_lag(latest, now, {("alpha", "1m"): ["BTC/USDT", "SOL/USDT"]})
    assert math.isinf(lags.set_index("pair").loc["SOL/USDT", "lag_s"])  # never had a signal
    exporter = ExporterHealth(runs=len(exports), ok=len(exports), records=exports,
                              write_latency_p50_s=0.02, write_latency_p99_s=0.2)
    job = JobHealth(job="alpha_1m", strategy_id="alpha", runs=len(job_records),
                    ok=len(job_records), failed=0, signals=9, last_bar=T0,
                    last_export=T0 + MIN, last_latency_s=4.0, over_budget=0,
                    records=job_records)
    bot = BotState("bot1", True, "running", open_trades=[{"trade_id": 1}], free_balance=900.0,
                   rate_limit_lines=[(now, "429 Too Many Requests")],
                   unusable={"alpha": {"unknown_pair": 2, "stale": 0}})
    outcomes = pd.DataFrame([{c: None for c in OUTCOME_COLUMNS} | {
        "strategy_id": "alpha", "kind": "missed", "pair": "BTC/USDT"}])
    freshness = pd.DataFrame([{"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1m",
                               "ts": now - 2 * MIN, "known_at": now - MIN + pd.Timedelta(
                                   seconds=4), "freshness_s": 4.0, "bar_s": 60.0,
                               "budget_s": 30.0}])
    return Snapshot(now, MongoHealth(True, 0.0012), exporter, [job], lags, [bot], outcomes,
                    [], [], {"missing_signals": 1}, None, now - pd.Timedelta(hours=24),
                    deliveries, freshness)


def monitor_registry() -> tuple[CollectorRegistry, MonitorMetrics]:
    metrics = MonitorMetrics()
    now = T0 + 10 * MIN
    first = [_export_record("r1", "ok", 0.05, submitted=5, inserted=5)]
    metrics.update(_snapshot(now, first, [_job_record(1)], {("ops", "sent"): 1}))
    # the next cycle sees two new export runs and two new scheduled runs
    second = first + [_export_record("r2", "partial", 0.3, submitted=4, inserted=3, rejected=1),
                      _export_record("r3", "failed", 2.0, submitted=6, failed=6)]
    jobs = [_job_record(1), _job_record(2, latency=40.0, over=True), _job_record(3, "failed")]
    metrics.update(_snapshot(now + MIN, second, jobs,
                             {("ops", "sent"): 3, ("ops", "failed"): 1}))
    return metrics.registry, metrics


def ingest_registry() -> CollectorRegistry:
    metrics = IngestMetrics()
    metrics.latency.labels(outcome="ok").observe(0.012)
    metrics.signals.labels(producer="desk", status="accepted").inc(3)
    metrics.requests.labels(code="200").inc()
    return metrics.registry


def strategy_registry() -> CollectorRegistry:
    from collections import Counter as Counts

    stats = strategy_stats.SignalStats(("alpha",))
    stats.record("BTC/USDT", Counts(matched=1, stale=2), {"alpha": Counts(stale=2)})
    stats.record_lag("BTC/USDT", 30.0)
    stats.record_lag("SOL/USDT", float("inf"))  # never: must not be exported as +Inf
    assert strategy_stats.REGISTRY is not None
    return strategy_stats.REGISTRY


EXPORTERS = {"monitor": lambda: monitor_registry()[0], "ingest": ingest_registry,
             "strategy": strategy_registry}


def scrape(registry: CollectorRegistry) -> list:
    return list(text_string_to_metric_families(generate_latest(registry).decode()))


# --- conventions ---------------------------------------------------------------------


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
def test_every_metric_follows_the_naming_and_unit_conventions(exporter):
    families = scrape(EXPORTERS[exporter]())
    assert families
    problems = []
    # prometheus_client's own ``<counter|histogram>_created`` (creation time, unix s) families
    created = {f"{f.name}_created" for f in families if f.type in ("counter", "histogram")}
    for f in families:
        name = f.name
        if name in created:
            continue
        if not name.startswith(PREFIX):
            problems.append(f"{name}: not prefixed {PREFIX}")
        if re.search(r"(^|_)(ms|millis|milliseconds|msec)(_|$)", name):
            problems.append(f"{name}: milliseconds; use seconds")
        if TIME_WORDS.search(name) and not name.endswith("_seconds"):
            problems.append(f"{name}: a time metric without the _seconds unit suffix")
        if f.type == "summary" or any("quantile" in s.labels for s in f.samples):
            problems.append(f"{name}: pre-computed quantiles; use a Histogram")
        if LATENCY_WORDS.search(name) and f.type != "histogram":
            problems.append(f"{name}: a latency as {f.type}; use a Histogram")
        if f.type == "counter":
            odd = [s.name for s in f.samples if not s.name.endswith(("_total", "_created"))]
            if odd:
                problems.append(f"{name}: counter samples without _total: {odd}")
        elif name.endswith("_total"):
            problems.append(f"{name}: a {f.type} named like a counter")
        if not f.documentation:
            problems.append(f"{name}: no help text")
        for s in f.samples:
            if math.isinf(s.value) or math.isnan(s.value):
                problems.append(f"{s.name}{s.labels}: value {s.value}")
            if {"job", "instance"} & set(s.labels):
                problems.append(f"{s.name}: label job/instance clashes with Prometheus'")
    assert problems == []


def test_a_pair_that_never_had_a_signal_has_no_lag_series_only_its_watch_marker():
    families = {f.name: f for f in scrape(monitor_registry()[0])}
    pairs = lambda name: {s.labels["pair"] for s in families[name].samples}  # noqa: E731
    assert pairs("signal_bridge_watched_pair_info") == {"BTC/USDT", "SOL/USDT"}
    assert pairs("signal_bridge_signal_lag_seconds") == {"BTC/USDT"}
    assert pairs("signal_bridge_signal_last_seen_timestamp_seconds") == {"BTC/USDT"}
    (lag,) = families["signal_bridge_signal_lag_seconds"].samples
    assert lag.value == 60.0
    (seen,) = families["signal_bridge_signal_last_seen_timestamp_seconds"].samples
    assert seen.value == (T0 + 10 * MIN).timestamp()  # the newest signal's bar close
    strategy = {f.name: f for f in scrape(strategy_registry())}
    lag_pairs = {s.labels["pair"] for s in
                 strategy["signal_bridge_strategy_signal_lag_seconds"].samples}
    assert "BTC/USDT" in lag_pairs and "SOL/USDT" not in lag_pairs


def test_a_lag_that_becomes_unknown_drops_its_series_instead_of_keeping_the_old_value():
    stats = strategy_stats.SignalStats(("alpha",))
    stats.record_lag("DOT/USDT", 42.0)

    def lags() -> dict[str, float]:
        families = {f.name: f for f in scrape(strategy_stats.REGISTRY)}
        return {s.labels["pair"]: s.value
                for s in families[strategy_stats.LAG_METRIC].samples}

    assert lags()["DOT/USDT"] == 42.0
    stats.record_lag("DOT/USDT", float("inf"))
    assert "DOT/USDT" not in lags()
    stats.record_lag("DOT/USDT", float("inf"))  # already absent: still no error, no series
    assert "DOT/USDT" not in lags()


def test_counters_and_histograms_count_only_what_happened_after_the_first_cycle():
    registry, _ = monitor_registry()

    def value(name, **labels):
        return registry.get_sample_value(name, labels)

    # the first cycle is the baseline: r1 and the 12:01 run are not counted
    assert value("signal_bridge_exporter_runs_total", outcome="ok") == 0
    assert value("signal_bridge_exporter_runs_total", outcome="partial") == 1
    assert value("signal_bridge_exporter_runs_total", outcome="failed") == 1
    assert value("signal_bridge_exporter_signals_total", result="rejected") == 1
    assert value("signal_bridge_exporter_signals_total", result="failed") == 6
    assert value("signal_bridge_exporter_run_duration_seconds_count") == 2
    assert value("signal_bridge_exporter_run_duration_seconds_sum") == pytest.approx(2.3)
    job = {"scheduler_job": "alpha_1m"}
    assert value("signal_bridge_job_runs_total", status="ok", **job) == 1
    assert value("signal_bridge_job_runs_total", status="failed", **job) == 1
    assert value("signal_bridge_job_signals_total", **job) == 6
    assert value("signal_bridge_job_over_budget_runs_total", **job) == 1
    assert value("signal_bridge_job_latency_seconds_bucket", le="45.0", **job) == 2
    assert value("signal_bridge_job_latency_seconds_bucket", le="30.0", **job) == 1
    assert value("signal_bridge_bot_rate_limit_errors_total", bot="bot1") == 2
    assert value("signal_bridge_alert_notifications_total", channel="ops", result="sent") == 3
    assert value("signal_bridge_alert_notifications_total", channel="ops", result="failed") == 1
    assert value("signal_bridge_mongo_ping_seconds_count") == 2
    assert value("signal_bridge_exporter_success_ratio") == 1.0


# --- dashboards and alert rules ------------------------------------------------------


@dataclass
class Exported:
    """Sample names a PromQL query can use, and the labels of each."""

    labels: dict[str, set[str]] = field(default_factory=dict)

    def add(self, registry: CollectorRegistry) -> None:
        for f in scrape(registry):
            assert f.samples, f"{f.name}: populate it in this test's exporters"
            for s in f.samples:
                self.labels.setdefault(s.name, set()).update(s.labels)


@pytest.fixture(scope="module")
def exported() -> Exported:
    out = Exported()
    for build in EXPORTERS.values():
        out.add(build())
    return out


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset", "inf", "nan", "atan2"}
CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"(?<![\w.:])([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
NAME = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)")


def promql_references(expr: str) -> tuple[set[str], list[tuple[str, str]], set[str]]:
    """``(metric names, (metric, label) pairs of selectors, labels of by/on clauses)``.

    A deliberately small reading of PromQL: enough for dashboards and rules (selectors,
    functions, aggregations with by/without, vector matching with on/ignoring/group_*),
    not a parser. Grafana's ``label_values(metric, label)`` is understood too.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    pairs: list[tuple[str, str]] = []
    m = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)\s*", text)
    if m:
        return {m[1]}, [(m[1], m[2])], set()
    for metric, matchers in SELECTOR.findall(text):
        for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers):
            pairs.append((metric, label))
    clause_labels = {lab.strip() for _, labs in CLAUSE.findall(text)
                     for lab in labs.split(",") if lab.strip()}
    text = SELECTOR.sub(lambda mm: f" {mm[1]} ", text)
    text = CLAUSE.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    names = set()
    for mm in NAME.finditer(text):
        word = mm[1]
        rest = text[mm.end():].lstrip()
        if word in PROMQL_WORDS or rest.startswith("("):  # keyword, function, aggregation
            continue
        names.add(word)
    return names, pairs, clause_labels


def test_the_promql_reader_finds_metrics_and_labels():
    names, pairs, labels = promql_references(
        'histogram_quantile(0.95, sum by (scheduler_job, le) (rate(a_bucket{x="1",y=~"b|c"}'
        '[5m]))) > on (timeframe) group_left () (3 * b_seconds) unless c offset 5m')
    assert names == {"a_bucket", "b_seconds", "c"}
    assert pairs == [("a_bucket", "x"), ("a_bucket", "y")]
    assert labels == {"scheduler_job", "le", "timeframe"}


def _rule_expressions() -> list[tuple[str, str]]:
    doc = yaml.safe_load((REPO / "docker/prometheus/alerts.yml").read_text())
    out = []
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            out.append((f"alerts.yml {rule['alert']}", rule["expr"]))
    return out


def _dashboard_expressions() -> list[tuple[str, str]]:
    dash = json.loads((REPO / "docker/grafana/signal-bridge.json").read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((f"dashboard panel {panel['title']!r}", target["expr"]))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"dashboard variable {var['name']}", var["query"]["query"]))
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    return out


def test_alert_rules_and_dashboard_query_only_exported_metrics(exported):
    expressions = _rule_expressions() + _dashboard_expressions()
    assert len(expressions) > 40
    problems = []
    used: Counter = Counter()
    all_labels = set().union(*exported.labels.values()) | {"le"}
    for where, expr in expressions:
        names, pairs, clause_labels = promql_references(expr)
        if not names:
            problems.append(f"{where}: no metric in {expr!r}")
        for name in names:
            used[name] += 1
            if name not in exported.labels:
                problems.append(f"{where}: {name} is not exported")
        for metric, label in pairs:
            if metric in exported.labels and label not in exported.labels[metric]:
                problems.append(f"{where}: {metric} has no label {label}")
        for label in clause_labels - all_labels:
            problems.append(f"{where}: no exported metric has the label {label}")
    assert problems == []
    # the shipped files cover every family the project exports
    families = {re.sub(r"_(bucket|count|sum|total|created)$", "", n) for n in exported.labels}
    covered = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in used}
    assert families - covered == set()
