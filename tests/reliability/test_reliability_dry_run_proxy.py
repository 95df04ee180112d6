"""A real ``freqtrade trade --dry-run`` reading signals through a hung, then slow, server.

Freqtrade (unmodified) runs ``ExternalSignalStrategy`` against the exchange
stand-in; its MongoDB URI points at a :class:`devservers.faults.FaultProxy` in
front of a local server of the test's own. An enter read through the healthy
proxy opens a trade. The proxy then hangs (sockets open, no bytes) while an enter
for a second pair is written to the server directly: the bot stays up and opens
nothing on the signals it cannot read, warns once. After the proxy resumes the
second enter is traded. With 100 ms added each way (inside the timeouts) a third
enter is still traded. The stopped-server case is tests/strategy/test_dry_run_replay.py,
whose helpers this test imports.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pymongo
import pytest
from strategy_helpers import FREQTRADE, PAIRS, REPO, deep_merge, freqtrade_env
from test_dry_run_replay import doc, last_closed_minute, outage_lines, trades, wait_for

from devservers.faults import FaultProxy

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]


@pytest.fixture(scope="module")
def standin():
    from devservers.exchange.server import ExchangeStandIn

    with ExchangeStandIn(pairs=PAIRS) as server:
        yield server


def pairs_traded(db_path) -> list[str]:
    return sorted(t["pair"] for t in trades(db_path))


def test_dry_run_behind_a_hung_then_slow_server_opens_nothing_blind_and_recovers(
        tmp_path, standin, own_server):
    writer = pymongo.MongoClient(own_server.uri, tz_aware=True)
    coll = writer["proxied"]["crypto_signals"]
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
    log_file = log.open("w")
    proxy = FaultProxy.for_uri(own_server.uri).start()
    bot = subprocess.Popen(
        [FREQTRADE, "trade", "--dry-run", "-c", str(cfg_path), "--userdir", str(tmp_path),
         "--strategy-path", str(REPO / "user_data" / "strategies")],
        cwd=tmp_path, stdout=log_file, stderr=subprocess.STDOUT,
        env=freqtrade_env(EXT_SIG_MONGO_URI=proxy.uri, EXT_SIG_DB="proxied"))
    try:
        wait_for(lambda: "ExternalSignalStrategy reads" in log.read_text(), 120, "bot start", log)
        coll.insert_one(doc("BTC/USDT", last_closed_minute(), "enter_long"))
        wait_for(lambda: "BTC/USDT" in pairs_traded(db_path), 30, "BTC trade", log)

        proxy.pause()                                       # hung server
        coll.insert_one(doc("ETH/USDT", last_closed_minute(), "enter_long"))
        time.sleep(6)                                       # several bot loops, all blind
        assert bot.poll() is None
        assert pairs_traded(db_path) == ["BTC/USDT"]        # nothing opened on unknown signals
        assert outage_lines(log) == (1, 1)                  # one warning, one strategy message

        proxy.resume()
        wait_for(lambda: "signal store reachable again" in log.read_text(), 30, "recovery", log)
        wait_for(lambda: "ETH/USDT" in pairs_traded(db_path), 30, "ETH trade after recovery",
                 log)

        proxy.set_latency(0.1)                              # slow, round trip inside the
        # 500 ms connect timeout (pymongo's heartbeats use it: a slower server reads as down)
        coll.insert_one(doc("SOL/USDT", last_closed_minute(), "enter_long"))
        wait_for(lambda: "SOL/USDT" in pairs_traded(db_path), 30, "SOL trade while slow", log)
        assert bot.poll() is None
        assert pairs_traded(db_path) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
        assert outage_lines(log) == (1, 1)                  # the slow phase was no outage
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(30)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait()
        log_file.close()
        proxy.close()
        writer.close()
