"""Dry-run replay: signals exported while ``freqtrade trade --dry-run`` runs are traded.

Real Freqtrade against the exchange stand-in (real clock, 1m candles) and a
local MongoDB server of its own. Checked through the bot's trades database:
an enter for the last closed candle opens a trade within a few bot loops; an
exit for a later candle closes it with the strategy's tag; then the MongoDB
server is stopped: the bot stays up, logs one warning, opens nothing; after a
restart an enter is traded again.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymongo
import pytest
from strategy_helpers import FREQTRADE, PAIRS, REPO, deep_merge, freqtrade_env

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]


def last_closed_minute() -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=1)


def doc(pair: str, ts: datetime, action: str) -> dict:
    return {"ts": ts, "timeframe": "1m", "symbol": "BINANCE:" + pair.replace("/", ""),
            "pair": pair, "strategy_id": "replay", "action": action, "version": 1}


def trades(db_path: Path) -> list[dict]:
    if not db_path.exists():
        return []
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            "select pair, is_open, open_date, close_date, enter_tag, exit_reason from trades")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def outage_lines(log: Path) -> tuple[int, int]:
    lines = [ln for ln in log.read_text().splitlines() if "signal store unreachable" in ln]
    warnings = sum(" - WARNING - " in ln for ln in lines)
    messages = sum("Sending rpc strategy_msg" in ln for ln in lines)
    return warnings, messages


def wait_for(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:]}")


def test_dry_run_trades_exported_signals_and_survives_an_outage(tmp_path, standin):
    from devservers.mongo.process import LocalMongoProcess

    server = LocalMongoProcess(data_dir=tmp_path / "mongo").start()
    writer = pymongo.MongoClient(server.uri, tz_aware=True)
    coll = writer["replay"]["crypto_signals"]
    db_path = tmp_path / "trades.sqlite"
    base = json.loads((REPO / "configs" / "config.dry-run.json").read_text())
    cfg = deep_merge(deep_merge(base, standin.overlay()), {
        "timeframe": "1m", "db_url": f"sqlite:///{db_path}",
        "internals": {"process_throttle_secs": 1},
        "exchange": {"pair_whitelist": list(PAIRS)},
    })
    cfg["ext_signals"] = {"strategy_ids": ["replay"], "server_selection_timeout_ms": 500,
                          "socket_timeout_ms": 1000, "connect_timeout_ms": 500}
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(cfg))
    log = tmp_path / "freqtrade.log"
    cmd = [FREQTRADE, "trade", "--dry-run", "-c", str(cfg_path), "--userdir", str(tmp_path),
           "--strategy-path", str(REPO / "user_data" / "strategies")]
    log_file = log.open("w")
    bot = subprocess.Popen(cmd, cwd=tmp_path, stdout=log_file, stderr=subprocess.STDOUT,
                           env=freqtrade_env(EXT_SIG_MONGO_URI=server.uri, EXT_SIG_DB="replay"))
    try:
        wait_for(lambda: "ExternalSignalStrategy reads" in log.read_text(), 120, "bot start", log)
        time.sleep(3)  # a few loops with no signal: nothing may open
        assert trades(db_path) == []

        entry_ts = last_closed_minute()
        coll.insert_one(doc("BTC/USDT", entry_ts, "enter_long"))
        opened = wait_for(lambda: [t for t in trades(db_path) if t["pair"] == "BTC/USDT"],
                          20, "BTC trade to open", log)
        assert opened[0]["is_open"] == 1 and opened[0]["enter_tag"] == "ext:replay:v1"

        # an exit needs a later candle: wait for the next minute to close
        wait_for(lambda: last_closed_minute() > entry_ts, 65, "next candle", log)
        coll.insert_one(doc("BTC/USDT", last_closed_minute(), "exit_long"))
        closed = wait_for(lambda: [t for t in trades(db_path)
                                   if t["pair"] == "BTC/USDT" and t["is_open"] == 0],
                          20, "BTC trade to close", log)
        assert closed[0]["exit_reason"] == "ext:replay:v1"

        # outage: the bot keeps running, warns once, opens nothing on unknown signals
        server.stop()
        time.sleep(6)
        assert bot.poll() is None
        assert outage_lines(log) == (1, 1)  # one warning, one strategy message (dp.send_msg)
        assert [t["pair"] for t in trades(db_path)] == ["BTC/USDT"]

        server.start()
        writer.close()
        writer = pymongo.MongoClient(server.uri, tz_aware=True)
        coll = writer["replay"]["crypto_signals"]
        coll.insert_one(doc("ETH/USDT", last_closed_minute(), "enter_long"))
        wait_for(lambda: "signal store reachable again" in log.read_text(), 20, "recovery", log)
        wait_for(lambda: [t for t in trades(db_path) if t["pair"] == "ETH/USDT"], 20,
                 "ETH trade after recovery", log)
        assert bot.poll() is None
        assert outage_lines(log) == (1, 1)
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(30)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait()
        log_file.close()
        writer.close()
        server.stop()
