"""``signal-monitor status`` prints the table (with the signals each bot could not use); the
metrics endpoint serves Prometheus text."""

from __future__ import annotations

import socket
from datetime import timedelta

import httpx
import pandas as pd
import pytest
import yaml
from fake_freqtrade import PASSWORD, USER, fake_freqtrade, new_state
from monitoring_data import MIN, T0

from signal_export.consumer.logic import ExternalSignalLogic
from signal_export.contract import EXPORT_RUNS_COLLECTION, SIGNALS_COLLECTION
from signal_export.exporter import export_signals
from signal_export.monitoring.cli import main, status_table
from signal_export.monitoring.config import MonitorConfigError, parse_monitor_config
from signal_export.monitoring.health import MongoHealth
from signal_export.monitoring.lag import LAG_COLUMNS
from signal_export.monitoring.metrics import MonitorMetrics, serve_metrics
from signal_export.monitoring.monitor import BotState, Snapshot
from signal_export.monitoring.reconcile import OUTCOME_COLUMNS
from signal_export.monitoring.strategy_metrics import StrategyMetricsError, parse_unusable


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
    # SOL/USDT never had a signal: missing_signals fires, so status exits 1
    assert main(["status", "--config", str(config), "--env-file", str(tmp_path / "none")]) == 1
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines()}
    assert rows[("alpha", "BTC/USDT")][4:6] == ["2026-03-02", "12:00:00"]
    assert rows[("alpha", "SOL/USDT")][3] == "never"
    assert "mongo up" in out and "exporter runs 1 ok 1 partial 0 failed 0" in out
    assert "firing: lag_over_budget=3, missing_signals=3" in out


def test_status_exits_0_when_nothing_fires_and_1_while_mongo_is_down(mongo_uri, mongo_db,
                                                                    tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setenv("EXT_SIG_DB", mongo_db.name)
    monkeypatch.setenv("EXT_SIG_MONGO_URI", mongo_uri)
    assert main(["status", "--env-file", str(tmp_path / "none")]) == 0
    assert "firing:" not in capsys.readouterr().out
    monkeypatch.setenv("EXT_SIG_MONGO_URI", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
    assert main(["status", "--env-file", str(tmp_path / "none")]) == 1
    out = capsys.readouterr().out
    assert "mongo DOWN" in out and "firing: mongo_down=1" in out


def test_run_refuses_to_start_when_a_channel_cannot_send(tmp_path, capsys, monkeypatch):
    """A missing webhook URL variable is found at start-up, not at the first alert."""
    monkeypatch.delenv("OPS_HOOK_URL", raising=False)
    monkeypatch.setenv("EXT_SIG_MONGO_URI", "mongodb://127.0.0.1:1/")  # never contacted
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump({"metrics_port": None, "channels": [
        {"kind": "webhook", "name": "ops", "style": "slack", "url_env": "OPS_HOOK_URL"}]}))
    assert main(["run", "--once", "--config", str(config), "--env-file",
                 str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("error: alert channels: webhook ops: environment variable "
                           "OPS_HOOK_URL is not set (nor OPS_HOOK_URL_FILE)")


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
    (text,) = [r["json"]["text"] for r in received]  # lag_over_budget: inhibited
    assert text.startswith("[FIRING] missing_signals alpha SOL/USDT"), text
    assert "(newest signal: never)" in text and "value never, limit 3 min" in text
    assert mongo_db["monitor_alerts"].count_documents({"rule": "missing_signals"}) == 1
    assert mongo_db["monitor_alerts"].count_documents({"rule": "lag_over_budget"}) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_shows_the_signals_a_bot_could_not_use(mongo_uri, mongo_db, tmp_path, capsys,
                                                      monkeypatch):
    """The bot's strategy (in-process, live) serves its gauges; ``status`` scrapes and prints
    them per strategy id and reason: a producer sending 'BTC-USDT' is not 'sending nothing'."""
    sid, pairs = "mon_unusable", ("BTC/USDT", "ETH/USDT")
    H = timedelta(hours=1)
    last_row = T0 - H
    mongo_db[SIGNALS_COLLECTION].insert_many([
        {"strategy_id": sid, "pair": "BTC/USDT", "timeframe": "1h", "ts": last_row,
         "action": "enter_long"},
        {"strategy_id": sid, "pair": "BTC-USDT", "timeframe": "1h", "ts": last_row,
         "action": "enter_long"},
        {"strategy_id": sid, "pair": "BTC/USDT", "timeframe": "1h", "ts": last_row - 2 * H,
         "action": "exit_long", "valid_until": last_row - 2 * H + timedelta(minutes=1)},
    ])
    port = _free_port()
    logic = ExternalSignalLogic(
        {"timeframe": "1h", "ext_signals": {"strategy_ids": [sid], "metrics_port": port}},
        live=True, env={"EXT_SIG_MONGO_URI": mongo_uri, "EXT_SIG_DB": mongo_db.name})
    logic.bot_loop_start(pairs, T0 + timedelta(seconds=5))
    dates = pd.date_range(T0 - 6 * H, periods=6, freq="1h", tz="UTC")
    for pair in pairs:
        candles = pd.DataFrame({"date": dates, "open": 1.0, "high": 1.0, "low": 1.0,
                                "close": 1.0, "volume": 1.0})
        logic.populate(candles, pair, pairs)
    logic.source.close()

    monkeypatch.setenv("EXT_SIG_MONGO_URI", mongo_uri)
    monkeypatch.setenv("EXT_SIG_DB", mongo_db.name)
    monkeypatch.setenv("TEST_FT_PASSWORD", PASSWORD)
    with fake_freqtrade(new_state()) as url:
        config = tmp_path / "monitor.yaml"
        config.write_text(yaml.safe_dump({"bots": [
            {"name": "bot1", "url": url, "username": USER, "password_env": "TEST_FT_PASSWORD",
             "metrics_url": f"http://127.0.0.1:{port}/metrics"},
            {"name": "bot2", "url": url, "username": USER, "password_env": "TEST_FT_PASSWORD",
             "metrics_url": f"http://127.0.0.1:{_free_port()}/metrics"}]}))
        assert main(["status", "--config", str(config), "--env-file",
                     str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert (f"bot bot1 unusable signals: {sid} unknown_pair=1 malformed=0 unmatched=0 "
            "stale=0 expired=1") in out, out
    assert "bot bot2 unusable signals: n/a (" in out  # nothing listening there


def test_monitor_metrics_export_the_bots_unusable_counts():
    bot = BotState("bot1", True, "running",
                   unusable={"alpha": {"unknown_pair": 4, "malformed": 0}})
    snap = Snapshot(T0, MongoHealth(True, 1.0), None, [], pd.DataFrame(columns=list(LAG_COLUMNS)),
                    [bot], pd.DataFrame(columns=list(OUTCOME_COLUMNS)), [], [], {})
    metrics = MonitorMetrics()
    metrics.update(snap)
    text = metrics.render().decode()
    assert ('signal_bridge_bot_unusable_signals{bot="bot1",reason="unknown_pair",'
            'strategy_id="alpha"} 4.0') in text
    assert "bot bot1 unusable signals: alpha unknown_pair=4 malformed=0" in status_table(snap)


def test_parse_unusable_reads_only_its_metric():
    text = ("# TYPE signal_bridge_strategy_unusable_signals gauge\n"
            'signal_bridge_strategy_unusable_signals{reason="stale",strategy_id="a"} 2.0\n'
            'signal_bridge_strategy_unusable_signals{reason="unknown_pair",strategy_id="a"} 5.0\n'
            'signal_bridge_strategy_last_evaluation_signals{outcome="stale",pair="BTC/USDT"} 9.0\n')
    assert parse_unusable(text) == {"a": {"stale": 2, "unknown_pair": 5}}
    with pytest.raises(StrategyMetricsError):
        parse_unusable("<html>not metrics</html>{")
