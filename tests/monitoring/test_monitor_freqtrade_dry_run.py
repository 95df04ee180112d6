"""The monitor against a real ``freqtrade trade --dry-run``: REST state, a deliberately missed
signal found by reconciliation, and the trade written back with the signal that caused it.

Real Freqtrade (its REST API on 127.0.0.1), the exchange stand-in, a MongoDB
dev server of its own, signals written by the real exporter. The enter for
BTC/USDT is on the last closed candle and trades; the enter for ETH/USDT is
ten bars old when exported, so the strategy ignores it as stale: the missed
signal reconciliation must report.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pymongo
import pytest

from devservers.freqtrade_harness import DryRunBot, freqtrade_env, write_config
from signal_export.contract import EXPORT_RUNS_COLLECTION, SIGNALS_COLLECTION
from signal_export.exporter import export_signals
from signal_export.monitoring.config import parse_monitor_config
from signal_export.monitoring.freqtrade_api import FreqtradeApi
from signal_export.monitoring.manager import AlertManager
from signal_export.monitoring.monitor import Monitor
from signal_export.monitoring.writeback import TRADES_COLLECTION
from signal_export.settings import Settings

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
API_USER, API_PASSWORD = "ops", "dry-run-api-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _closed_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


def test_monitor_reconciles_a_real_dry_run_and_reports_the_missed_signal(tmp_path, monkeypatch):
    from devservers.exchange.server import ExchangeStandIn
    from devservers.mongo.process import LocalMongoProcess

    port = _free_port()
    server = LocalMongoProcess(data_dir=tmp_path / "mongo").start()
    client = pymongo.MongoClient(server.uri, tz_aware=True)
    db = client["recon"]
    standin = ExchangeStandIn(pairs=PAIRS).__enter__()
    cfg_path = write_config(tmp_path / "config.json", "config.dry-run.json", standin.overlay(), {
        "timeframe": "1m", "db_url": f"sqlite:///{tmp_path / 'trades.sqlite'}",
        "internals": {"process_throttle_secs": 1},
        "exchange": {"pair_whitelist": list(PAIRS)},
        "api_server": {"enabled": True, "listen_ip_address": "127.0.0.1", "listen_port": port,
                       "username": API_USER, "password": API_PASSWORD, "verbosity": "error",
                       "jwt_secret_key": "x" * 40, "CORS_origins": []},
        "ext_signals": {"strategy_ids": ["recon"], "server_selection_timeout_ms": 500}})
    bot = DryRunBot(cfg_path, tmp_path, tmp_path / "trades.sqlite",
                    freqtrade_env(EXT_SIG_MONGO_URI=server.uri, EXT_SIG_DB="recon")).start()
    api = FreqtradeApi("dry", f"http://127.0.0.1:{port}", API_USER, API_PASSWORD)
    try:
        bot.wait_for(lambda: "ExternalSignalStrategy reads" in bot.log_text() and api.ping(), 150,
                     "bot start")
        bar = _closed_minute()
        docs = [{"strategy_id": "recon", "pair": "BTC/USDT", "timeframe": "1m", "ts": bar,
                 "action": "enter_long", "version": 1},
                {"strategy_id": "recon", "pair": "ETH/USDT", "timeframe": "1m",
                 "ts": bar - timedelta(minutes=10), "action": "enter_long", "version": 1}]
        res = export_signals(docs, db[SIGNALS_COLLECTION],
                             runs_collection=db[EXPORT_RUNS_COLLECTION])
        assert res.inserted == 2
        bot.wait_for(lambda: [t for t in api.open_trades() if t["pair"] == "BTC/USDT"], 30,
                     "the BTC trade")
        time.sleep(3)  # a few more loops: the stale ETH enter must stay untraded

        monkeypatch.setenv("TEST_DRY_API_PASSWORD", API_PASSWORD)
        config = parse_monitor_config({
            "strategies": [{"strategy_id": "recon", "timeframe": "1m",
                            "pairs": ["BTC/USDT", "ETH/USDT"], "every_bar": False}],
            "bots": [{"name": "dry", "url": api.url, "username": API_USER,
                      "password_env": "TEST_DRY_API_PASSWORD"}],
            "thresholds": {"late_bars": 2}})
        monitor = Monitor(config, client, Settings(db="recon"), manager=AlertManager([]))
        snap = monitor.cycle()
        (state,) = snap.bots
        assert state.reachable and state.state == "running"
        outcomes = snap.outcomes.set_index("pair")
        assert outcomes.loc["ETH/USDT", "kind"] == "missed"
        assert outcomes.loc["BTC/USDT", "kind"] in ("matched", "late")
        btc_trade = int(outcomes.loc["BTC/USDT", "trade_id"])
        firing = {(str(c.rule), c.pair) for c in snap.conditions if c.firing}
        assert ("reconciliation", "ETH/USDT") in firing
        assert ("reconciliation", "BTC/USDT") not in firing
        assert not any(r == "bot_down" for r, _ in firing)
        stored = db[TRADES_COLLECTION].find_one({"bot": "dry", "trade_id": btc_trade})
        assert stored["pair"] == "BTC/USDT" and stored["is_open"] is True
        assert stored["signal"]["strategy_id"] == "recon" and stored["signal"]["version"] == 1
    finally:
        bot.stop()
        standin.__exit__(None, None, None)
        client.close()
        server.stop()
