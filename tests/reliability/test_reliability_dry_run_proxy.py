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

import time

import pymongo
import pytest
from strategy_helpers import PAIRS
from test_dry_run_replay import doc, last_closed_minute, outage_lines, start_dry_run_bot

from devservers.faults import FaultProxy
from devservers.freqtrade_harness import leave_at_least

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]


@pytest.fixture(scope="module")
def standin():
    from devservers.exchange.server import ExchangeStandIn

    with ExchangeStandIn(pairs=PAIRS) as server:
        yield server


def test_dry_run_behind_a_hung_then_slow_server_opens_nothing_blind_and_recovers(
        tmp_path, standin, own_server):
    writer = pymongo.MongoClient(own_server.uri, tz_aware=True)
    coll = writer["proxied"]["crypto_signals"]
    proxy = FaultProxy.for_uri(own_server.uri).start()
    bot = start_dry_run_bot(tmp_path, standin, proxy.uri, "proxied")

    def pairs_traded() -> list[str]:
        return sorted(t["pair"] for t in bot.trades())

    try:
        bot.wait_for(lambda: "ExternalSignalStrategy reads" in bot.log_text(), 120, "bot start")
        leave_at_least(15)
        coll.insert_one(doc("BTC/USDT", last_closed_minute(), "enter_long"))
        bot.wait_for(lambda: "BTC/USDT" in pairs_traded(), 30, "BTC trade")

        leave_at_least(40)  # the blind phase (6 s) and the recovery fit in this minute
        proxy.pause()                                       # hung server
        coll.insert_one(doc("ETH/USDT", last_closed_minute(), "enter_long"))
        time.sleep(6)                                       # several bot loops, all blind
        assert bot.running
        assert pairs_traded() == ["BTC/USDT"]               # nothing opened on unknown signals
        assert outage_lines(bot.log_path) == (1, 1)         # one warning, one strategy message

        proxy.resume()
        bot.wait_for(lambda: "signal store reachable again" in bot.log_text(), 30, "recovery")
        bot.wait_for(lambda: "ETH/USDT" in pairs_traded(), 30, "ETH trade after recovery")

        proxy.set_latency(0.1)                              # slow, round trip inside the
        # 500 ms connect timeout (pymongo's heartbeats use it: a slower server reads as down)
        leave_at_least(25)
        coll.insert_one(doc("SOL/USDT", last_closed_minute(), "enter_long"))
        bot.wait_for(lambda: "SOL/USDT" in pairs_traded(), 30, "SOL trade while slow")
        assert bot.running
        assert pairs_traded() == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
        assert outage_lines(bot.log_path) == (1, 1)         # the slow phase was no outage
    finally:
        bot.stop()
        proxy.close()
        writer.close()
