"""``signal-monitor``: ``status`` prints a table per strategy/pair; ``run`` monitors and alerts.

``signal-monitor status --config configs/alerts.example.yaml`` reads
everything once (no alerts are sent) and prints Mongo/exporter/bot health and
one row per strategy/pair: lag, last signal, last export, open trade; and,
for a bot with ``metrics_url``, the signals its strategy could not use, per
strategy id and reason (read from the strategy's own gauges).
``signal-monitor run`` checks every alert channel (webhook URL variables, SMTP
password, ...), then repeats the cycle every ``interval_seconds``, serves
Prometheus metrics and sends alerts (one grouped message per channel per
cycle), until SIGTERM.

Exit codes: 0 ok (``status``: nothing firing); 1 ``status``: at least one
alert is firing (MongoDB down included), the ``firing:`` line names them;
2 unusable configuration (monitor file, a channel's missing secret, MongoDB URI).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import pandas as pd

from signal_export.consumer.stats import UNUSABLE_REASONS
from signal_export.errors import ConfigError
from signal_export.logs import configure_logging
from signal_export.monitoring.channels import build_channels, check_channels
from signal_export.monitoring.config import load_monitor_config, parse_monitor_config
from signal_export.monitoring.manager import AlertManager
from signal_export.monitoring.metrics import MonitorMetrics, serve_metrics
from signal_export.monitoring.monitor import BotState, Monitor, Snapshot
from signal_export.security.secrets import SecretError
from signal_export.settings import load_settings
from signal_export.store import connect

EXIT_OK, EXIT_FIRING, EXIT_CONFIG = 0, 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="signal-monitor", description=__doc__.splitlines()[0],
        epilog="exit codes: 0 ok (status: nothing firing), 1 status: an alert is firing, "
               "2 unusable configuration")
    p.add_argument("command", choices=("status", "run"))
    p.add_argument("--config", type=Path, help="monitor/alerts YAML (default: built-in defaults)")
    p.add_argument("--env-file", default=".env")
    p.add_argument("--once", action="store_true", help="run: one cycle, then exit")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-json", action="store_true")
    return p.parse_args(argv)


def _fmt_ts(value: object) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return "-"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def status_table(snap: Snapshot) -> str:
    """The ops view: health lines, then one row per strategy/pair."""
    lines = [f"time {snap.now.isoformat(timespec='seconds')}",
             f"mongo {'up' if snap.mongo.reachable else 'DOWN'}"
             + (f" ping {snap.mongo.ping_s * 1000:.1f} ms" if snap.mongo.ping_s is not None
                else f" ({snap.mongo.error})")]
    if snap.exporter is not None:
        e = snap.exporter
        lines.append(f"exporter runs {e.runs} ok {e.ok} partial {e.partial} failed {e.failed} "
                     f"interrupted {e.interrupted} success {e.success_rate:.1%} (rows rejected "
                     f"by validation: {e.rejected_rows}) run p50 "
                     f"{(e.write_latency_p50_s or 0) * 1000:.1f} ms "
                     f"p99 {(e.write_latency_p99_s or 0) * 1000:.1f} ms")
    for j in snap.jobs:
        lines.append(f"job {j.job}: runs {j.runs} failed {j.failed} signals {j.signals} "
                     f"last bar {_fmt_ts(j.last_bar)} latency {j.last_latency_s or 0:.3f} s "
                     f"over budget {j.over_budget}")
    for b in snap.bots:
        lines.append(f"bot {b.name}: {'up' if b.reachable else 'DOWN'} state {b.state} "
                     f"open trades {len(b.open_trades)} free balance {b.free_balance}"
                     + (f" ({b.error})" if b.error else ""))
        lines += _unusable_lines(b)
    last_export = {j.strategy_id: j.last_export for j in snap.jobs}
    open_by = {}
    for b in snap.bots:
        for _, t in b.trades[b.trades["is_open"]].iterrows():
            open_by[(t["strategy_id"], t["pair"])] = f"{b.name}#{t['trade_id']}@{t['open_rate']:g}"
    header = ("strategy_id", "pair", "tf", "lag_s", "last signal", "last export", "open trade")
    rows = [header] + [
        (r.strategy_id, r.pair, r.timeframe, "never" if r.lag_s == float("inf")
         else f"{r.lag_s:.1f}", _fmt_ts(r.ts), _fmt_ts(last_export.get(r.strategy_id)),
         open_by.get((r.strategy_id, r.pair), "-"))
        for r in snap.lags.itertuples(index=False)]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    if snap.active_rules:
        lines.append("firing: " + ", ".join(f"{k}={v}" for k, v in sorted(
            snap.active_rules.items())))
    return "\n".join(lines)


_REASON_ORDER = {r: i for i, r in enumerate(UNUSABLE_REASONS)}


def _unusable_lines(b: BotState) -> list[str]:
    """``bot X unusable signals: demo unknown_pair=3 malformed=0 ...`` per strategy id."""
    if b.unusable_error:
        return [f"bot {b.name} unusable signals: n/a ({b.unusable_error})"]
    if b.unusable is None:
        return []
    if not b.unusable:
        return [f"bot {b.name} unusable signals: none reported"]
    return [f"bot {b.name} unusable signals: {sid} " + " ".join(
        f"{reason}={n}" for reason, n in sorted(
            counts.items(), key=lambda kv: (_REASON_ORDER.get(kv[0], 99), kv[0])))
        for sid, counts in sorted(b.unusable.items())]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)
    try:
        config = load_monitor_config(args.config) if args.config else parse_monitor_config({})
        if args.command == "run":  # a channel that cannot send is a start-up error
            problems = check_channels(build_channels(config.channels))
            if problems:
                raise ConfigError("alert channels: " + "; ".join(problems))
        settings = load_settings(args.env_file)
        client = connect(settings.mongo_uri, app_name="signal-monitor", timeout_ms=2000)
    except (ConfigError, SecretError) as exc:  # monitor file, secrets, a bad MongoDB URI
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.command == "status":
            monitor = Monitor(config, client, settings, manager=AlertManager([]))
            snap = monitor.cycle()
            print(status_table(snap))
            return EXIT_FIRING if snap.active_rules else EXIT_OK
        monitor = Monitor(config, client, settings)
        metrics = MonitorMetrics()
        if config.metrics_port and not args.once:
            serve_metrics(metrics, config.metrics_port, config.metrics_address)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while True:
            snap = monitor.cycle()
            metrics.update(snap)
            if args.once or stop.wait(config.interval_seconds):
                return EXIT_OK
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
