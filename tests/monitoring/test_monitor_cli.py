"""``signal-monitor status`` prints the table; the metrics endpoint serves Prometheus text."""

from __future__ import annotations

import socket

import httpx
import pytest
import yaml
from monitoring_data import MIN, T0

from signal_export.contract import EXPORT_RUNS_COLLECTION, SIGNALS_COLLECTION
from signal_export.exporter import export_signals
from signal_export.monitoring.cli import main
from signal_export.monitoring.config import MonitorConfigError, parse_monitor_config
from signal_export.monitoring.metrics import MonitorMetrics, serve_metrics


def test_status_prints_one_row_per_strategy_and_pair(mongo_uri, mongo_db, tmp_path, capsys,
                                                    monkeypatch):
    docs = [{"strategy_id": "alpha", "pair": p, "timeframe": "1m", "ts": T0, "score": 0.5}
            for p in ("BTC/USDT", "ETH/USDT")]
    export_signals(docs, mongo_db[SIGNALS_COLLECTION],
                   runs_collection=mongo_db[EXPORT_RUNS_COLLECTION], now=T0 + MIN)
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump({"strategies": [
        {"strategy_id": "alpha", "timeframe": "1m", "pairs": ["BTC/USDT", "ETH/USDT",
                                                             "SOL/USDT"]}]}))
    monkeypatch.setenv("EXT_SIG_MONGO_URI", mongo_uri)
    monkeypatch.setenv("EXT_SIG_DB", mongo_db.name)
    assert main(["status", "--config", str(config), "--env-file", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines()}
    assert rows[("alpha", "BTC/USDT")][4:6] == ["2026-03-02", "12:00:00"]
    assert rows[("alpha", "SOL/USDT")][3] == "never"
    assert "mongo up" in out and "exporter runs 1 ok 1" in out


def test_unknown_config_keys_are_errors_naming_the_key():
    with pytest.raises(MonitorConfigError, match="thresholds.max_lag: unknown key"):
        parse_monitor_config({"thresholds": {"max_lag": 3}})
    with pytest.raises(MonitorConfigError, match="use url_env"):
        parse_monitor_config({"channels": [{"kind": "webhook",
                                            "url": "https://hooks.slack.com/services/T/B/x"}]})


def test_metrics_endpoint_serves_prometheus_text():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = MonitorMetrics()
    metrics.mongo_up.set(1)
    serve_metrics(metrics, port)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "# TYPE signal_bridge_signal_lag_seconds gauge" in text
    assert "signal_bridge_mongo_up 1.0" in text


def test_run_once_sends_the_alerts_of_one_cycle(mongo_uri, mongo_db, tmp_path, monkeypatch):
    from receivers import webhook_receiver

    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump({
        "strategies": [{"strategy_id": "alpha", "timeframe": "1m", "pairs": ["SOL/USDT"]}],
        "channels": [{"kind": "webhook", "style": "slack", "url_env": "TEST_RUN_HOOK"}]}))
    monkeypatch.setenv("EXT_SIG_MONGO_URI", mongo_uri)
    monkeypatch.setenv("EXT_SIG_DB", mongo_db.name)
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("TEST_RUN_HOOK", url)
        assert main(["run", "--once", "--config", str(config), "--env-file",
                     str(tmp_path / "none")]) == 0
    texts = [r["json"]["text"] for r in received]
    assert any(t.startswith("[FIRING] missing_signals alpha SOL/USDT") for t in texts), texts
    assert mongo_db["monitor_alerts"].count_documents({"rule": "missing_signals"}) == 1
