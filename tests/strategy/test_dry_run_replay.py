"""Dry-run replay: signals exported while ``freqtrade trade --dry-run`` runs are traded.

Real Freqtrade against the exchange stand-in (real clock, 1m candles) and a
local MongoDB server of its own. Checked through the bot's trades database:
an enter for the last closed candle opens a trade within a few bot loops; an
exit for a later candle closes it with the strategy's tag; then the MongoDB
server is stopped: the bot stays up, logs one warning, opens nothing; after a
restart an enter is traded again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymongo
import pytest
from strategy_helpers import PAIRS

from devservers.freqtrade_harness import DryRunBot, freqtrade_env, leave_at_least, write_config

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]


def last_closed_minute() -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=1)


def doc(pair: str, ts: datetime, action: str) -> dict:
    return {"ts": ts, "timeframe": "1m", "symbol": "BINANCE:" + pair.replace("/", ""),
            "pair": pair, "strategy_id": "replay", "action": action, "version": 1}


def outage_lines(log: Path) -> tuple[int, int]:
    lines = [ln for ln in log.read_text().splitlines() if "signal store unreachable" in ln]
    warnings = sum(" - WARNING - " in ln for ln in lines)
    messages = sum("Sending rpc strategy_msg" in ln for ln in lines)
    return warnings, messages


def start_dry_run_bot(tmp_path: Path, standin, mongo_uri: str, db: str) -> DryRunBot:
    """A 1m dry-run bot on the stand-in, reading strategy ``replay`` from ``mongo_uri``/``db``
    with low timeouts, so an outage shows within a loop or two."""
    db_path = tmp_path / "trades.sqlite"
    cfg_path = write_config(tmp_path / "config.json", "config.dry-run.json", standin.overlay(), {
        "timeframe": "1m", "db_url": f"sqlite:///{db_path}",
        "internals": {"process_throttle_secs": 1},
        "exchange": {"pair_whitelist": list(PAIRS)},
        "ext_signals": {"strategy_ids": ["replay"], "server_selection_timeout_ms": 500,
                        "socket_timeout_ms": 1000, "connect_timeout_ms": 500},
    })
    return DryRunBot(cfg_path, tmp_path, db_path,
                     freqtrade_env(EXT_SIG_MONGO_URI=mongo_uri, EXT_SIG_DB=db)).start()


def test_dry_run_trades_exported_signals_and_survives_an_outage(tmp_path, standin):
    from devservers.mongo.process import LocalMongoProcess

    server = LocalMongoProcess(data_dir=tmp_path / "mongo").start()
    writer = pymongo.MongoClient(server.uri, tz_aware=True)
    coll = writer["replay"]["crypto_signals"]
    bot = start_dry_run_bot(tmp_path, standin, server.uri, "replay")
    log = bot.log_path
    try:
        bot.wait_for(lambda: "ExternalSignalStrategy reads" in bot.log_text(), 120, "bot start")
        time.sleep(3)  # a few loops with no signal: nothing may open
        assert bot.trades() == []

        leave_at_least(15)
        entry_ts = last_closed_minute()
        coll.insert_one(doc("BTC/USDT", entry_ts, "enter_long"))
        opened = bot.wait_for(lambda: [t for t in bot.trades() if t["pair"] == "BTC/USDT"],
                              20, "BTC trade to open")
        assert opened[0]["is_open"] == 1 and opened[0]["enter_tag"] == "ext:replay:v1"

        # an exit needs a later candle: wait for the next minute to close
        bot.wait_for(lambda: last_closed_minute() > entry_ts, 65, "next candle")
        coll.insert_one(doc("BTC/USDT", last_closed_minute(), "exit_long"))
        closed = bot.wait_for(lambda: [t for t in bot.trades()
                                       if t["pair"] == "BTC/USDT" and t["is_open"] == 0],
                              20, "BTC trade to close")
        assert closed[0]["exit_reason"] == "ext:replay:v1"

        # outage: the bot keeps running, warns once, opens nothing on unknown signals
        server.stop()
        time.sleep(6)
        assert bot.running
        assert outage_lines(log) == (1, 1)  # one warning, one strategy message (dp.send_msg)
        assert [t["pair"] for t in bot.trades()] == ["BTC/USDT"]

        server.start()
        writer.close()
        writer = pymongo.MongoClient(server.uri, tz_aware=True)
        coll = writer["replay"]["crypto_signals"]
        leave_at_least(30)  # recovery and the trade happen while this candle is the newest
        coll.insert_one(doc("ETH/USDT", last_closed_minute(), "enter_long"))
        bot.wait_for(lambda: "signal store reachable again" in bot.log_text(), 20, "recovery")
        bot.wait_for(lambda: [t for t in bot.trades() if t["pair"] == "ETH/USDT"], 20,
                     "ETH trade after recovery")
        assert bot.running
        assert outage_lines(log) == (1, 1)
    finally:
        bot.stop()
        writer.close()
        server.stop()
