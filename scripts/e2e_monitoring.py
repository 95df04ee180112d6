"""End to end on the 1m timeframe: scheduler + Freqtrade dry-run + monitor, with one outage.

Starts, all on 127.0.0.1: a MongoDB dev server, the exchange stand-in, a local
webhook receiver (the alert channel), ``signal-scheduler`` (as a subprocess,
jobs file with ``configs/pipeline.1m.yaml``), ``freqtrade trade --dry-run``
with ``ExternalSignalStrategy`` and its REST API, and the monitor in this
process every ``--interval`` seconds, printing signal lag per strategy/pair.
After ``--outage-after`` seconds the scheduler is stopped on purpose (SIGTERM)
for ``--outage`` seconds: the lag passes the budget and alerts fire to the
webhook; the restarted scheduler back-fills the missed bars and the alerts
resolve. Alerts arrive grouped: one message per monitor cycle listing what
fired and what resolved. Prints a summary (lag figures, messages and the alerts
they carried, reconciliation) and exits non-zero when no alert fired, none
resolved, or a cycle sent more than one message to the channel.

Usage: ``python scripts/e2e_monitoring.py [--minutes 5] [--outage-after 90] [--outage 150]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devservers.exchange.server import ExchangeStandIn  # noqa: E402
from devservers.mongo.process import LocalMongoProcess  # noqa: E402
from signal_export.monitoring.cli import status_table  # noqa: E402
from signal_export.monitoring.config import parse_monitor_config  # noqa: E402
from signal_export.monitoring.monitor import Monitor  # noqa: E402
from signal_export.settings import Settings  # noqa: E402
from signal_export.store import connect  # noqa: E402

BIN = Path(sys.executable).parent
PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
API_USER, API_PASSWORD = "ops", "e2e-api-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def webhook_receiver(received: list[dict]) -> tuple[str, ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            received.append(body)
            print(f"  webhook <- {body['title']} ({len(body['alerts'])} alerts)", flush=True)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/alerts", server


def env(mongo_uri: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("EXT_SIG_", "FREQTRADE__"))}
    out["PYTHONPATH"] = str(ROOT)
    return out | {"EXT_SIG_MONGO_URI": mongo_uri, "EXT_SIG_DB": "e2e"}


def start_scheduler(tmp: Path, mongo_uri: str) -> subprocess.Popen:
    log = (tmp / "scheduler.log").open("a")
    return subprocess.Popen([str(BIN / "python"), "-m", "signal_export.scheduler.cli",
                             "--jobs", str(tmp / "jobs.yaml"), "--env-file", str(tmp / "none")],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env(mongo_uri))


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--outage-after", type=float, default=90.0)
    p.add_argument("--outage", type=float, default=150.0)
    p.add_argument("--interval", type=float, default=10.0)
    args = p.parse_args(argv)
    received: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        hook_url, hook_server = webhook_receiver(received)
        os.environ["E2E_WEBHOOK_URL"] = hook_url
        os.environ["E2E_FT_PASSWORD"] = API_PASSWORD
        (tmp / "jobs.yaml").write_text(yaml.safe_dump({"jobs": [{
            "name": "minute_rank_1m", "pipeline": str(ROOT / "configs/pipeline.1m.yaml"),
            "offset_seconds": 2, "max_backfill_bars": 30}]}))
        mongo = LocalMongoProcess(data_dir=tmp / "mongo").start()
        standin = ExchangeStandIn(pairs=PAIRS).__enter__()
        port = free_port()
        base = json.loads((ROOT / "configs/config.dry-run.json").read_text())
        cfg = merge(merge(base, standin.overlay()), {
            "timeframe": "1m", "db_url": f"sqlite:///{tmp / 'trades.sqlite'}",
            "internals": {"process_throttle_secs": 2},
            "exchange": {"pair_whitelist": list(PAIRS)},
            "api_server": {"enabled": True, "listen_ip_address": "127.0.0.1",
                           "listen_port": port, "username": API_USER, "password": API_PASSWORD,
                           "jwt_secret_key": "e" * 40, "CORS_origins": [],
                           "verbosity": "error"}})
        cfg["ext_signals"] = {"strategy_ids": ["minute_rank"]}
        (tmp / "ft.json").write_text(json.dumps(cfg))
        ft_log = (tmp / "freqtrade.log").open("w")
        bot = subprocess.Popen(
            [str(BIN / "freqtrade"), "trade", "--dry-run", "-c", str(tmp / "ft.json"),
             "--userdir", str(tmp), "--strategy-path", str(ROOT / "user_data/strategies")],
            cwd=tmp, stdout=ft_log, stderr=subprocess.STDOUT, env=env(mongo.uri))
        scheduler = start_scheduler(tmp, mongo.uri)
        client = connect(mongo.uri, app_name="e2e-monitor", timeout_ms=2000)
        config = parse_monitor_config({
            "strategies": [{"strategy_id": "minute_rank", "timeframe": "1m",
                            "pairs": list(PAIRS), "every_bar": True}],
            "bots": [{"name": "dry-run", "url": f"http://127.0.0.1:{port}",
                      "username": API_USER, "password_env": "E2E_FT_PASSWORD"}],
            "thresholds": {"missing_bars": 2, "late_bars": 2},
            "alerts": {"cooldown_seconds": 600},
            "channels": [{"kind": "webhook", "name": "local", "style": "generic",
                          "url_env": "E2E_WEBHOOK_URL"}]})
        monitor = Monitor(config, client, Settings(db="e2e"))
        api = next(iter(monitor.apis.values()))
        deadline = time.monotonic() + 180
        while not api.ping() and time.monotonic() < deadline:  # Freqtrade starts in ~10-30 s
            time.sleep(1)
        lags: list[float] = []
        per_cycle: list[int] = []  # webhook messages per monitor cycle
        started = time.monotonic()
        outage_started = outage_ended = None
        try:
            while time.monotonic() - started < args.minutes * 60:
                elapsed = time.monotonic() - started
                if outage_started is None and elapsed >= args.outage_after:
                    print(f"--- {elapsed:.0f}s: stopping the scheduler on purpose", flush=True)
                    stop(scheduler)
                    outage_started = elapsed
                elif (outage_started is not None and outage_ended is None
                      and elapsed >= outage_started + args.outage):
                    print(f"--- {elapsed:.0f}s: restarting the scheduler", flush=True)
                    scheduler = start_scheduler(tmp, mongo.uri)
                    outage_ended = elapsed
                before = len(received)
                snap = monitor.cycle()
                per_cycle.append(len(received) - before)
                finite = snap.lags["lag_s"][snap.lags["lag_s"] < float("inf")]
                lags.extend(finite.tolist())
                print(f"=== {datetime.now(UTC).isoformat(timespec='seconds')} "
                      f"(+{elapsed:.0f}s)\n{status_table(snap)}", flush=True)
                time.sleep(args.interval)
            snap = monitor.cycle()
        finally:
            stop(scheduler)
            stop(bot)
            ft_log.close()
            client.close()
            standin.__exit__(None, None, None)
            mongo.stop()
            hook_server.shutdown()
    alerts = [a for message in received for a in message["alerts"]]
    fired = [a for a in alerts if a["status"] == "firing"]
    resolved = [a for a in alerts if a["status"] == "resolved"]
    print("\n=== summary")
    if lags:
        lag_sorted = sorted(lags)
        print(f"signal lag over {len(lags)} readings: min {lag_sorted[0]:.1f} s, median "
              f"{lag_sorted[len(lags) // 2]:.1f} s, max {lag_sorted[-1]:.1f} s")
    print(f"webhook messages: {len(received)} over {len(per_cycle)} monitor cycles "
          f"(at most {max(per_cycle, default=0)} per cycle)")
    print(f"alerts fired: {len(fired)} ({sorted({a['rule'] for a in fired})}); "
          f"resolved: {len(resolved)} ({sorted({a['rule'] for a in resolved})})")
    if not snap.outcomes.empty:
        print("reconciliation:", snap.outcomes["kind"].value_counts().to_dict())
    grouped = max(per_cycle, default=0) <= 1
    return 0 if fired and resolved and grouped else 1


if __name__ == "__main__":
    sys.exit(main())
