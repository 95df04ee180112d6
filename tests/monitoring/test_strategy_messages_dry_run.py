"""The strategy's outage and recovery messages reach a Freqtrade webhook with the shipped config.

``ExternalSignalStrategy`` reports a signal-store outage and its end with
``self.dp.send_msg``; Freqtrade forwards such strategy messages to an RPC
channel (Telegram, webhook, Discord) only when that channel says
``allow_custom_messages: true``. The shipped dry-run config says so for
Telegram and webhooks; this test turns its webhook on the way an operator
would (``FREQTRADE__WEBHOOK__ENABLED`` / ``FREQTRADE__WEBHOOK__URL``: nothing
else is layered over the config's ``webhook`` block), runs a real ``freqtrade
trade --dry-run`` against the exchange stand-in and a MongoDB dev server of its
own, stops the server (outage) and starts it again (recovery), and reads both
messages from a local webhook receiver. The control run sets
``allow_custom_messages: false``: Freqtrade logs the strategy message and the
webhook receives nothing, which is what every shipped config did before.
"""

from __future__ import annotations

import json
import time

import pytest
from receivers import webhook_receiver

from devservers.freqtrade_harness import REPO, DryRunBot, freqtrade_env, write_config

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

PAIRS = ("BTC/USDT", "ETH/USDT")


@pytest.mark.parametrize("shipped", ["config.dry-run.json", "config.live.json"])
def test_shipped_configs_let_strategy_messages_through(shipped):
    config = json.loads((REPO / "configs" / shipped).read_text())
    for channel in ("telegram", "webhook"):
        assert config[channel]["allow_custom_messages"] is True, (shipped, channel)
        assert config[channel]["enabled"] is False  # turned on by the operator, with secrets
    assert "{msg}" in json.dumps(config["webhook"]["strategy_msg"])


@pytest.mark.parametrize("allowed", [True, False], ids=["shipped", "control-without"])
def test_outage_and_recovery_messages_reach_a_freqtrade_webhook(tmp_path, allowed):
    from devservers.exchange.server import ExchangeStandIn
    from devservers.mongo.process import LocalMongoProcess

    server = LocalMongoProcess(data_dir=tmp_path / "mongo").start()
    standin = ExchangeStandIn(pairs=PAIRS).__enter__()
    db_path = tmp_path / "trades.sqlite"
    cfg_path = write_config(tmp_path / "config.json", "config.dry-run.json", standin.overlay(), {
        "timeframe": "1m", "db_url": f"sqlite:///{db_path}",
        "internals": {"process_throttle_secs": 1},
        "exchange": {"pair_whitelist": list(PAIRS)},
        "ext_signals": {"strategy_ids": ["notify"], "server_selection_timeout_ms": 500,
                        "socket_timeout_ms": 1000, "connect_timeout_ms": 500}},
        {} if allowed else {"webhook": {"allow_custom_messages": False}})
    assert json.loads(cfg_path.read_text())["webhook"]["allow_custom_messages"] is allowed

    def texts(received: list[dict], needle: str) -> list[str]:
        return [r["json"]["text"] for r in received if needle in r["json"].get("text", "")]

    with webhook_receiver() as (url, received):
        env = freqtrade_env(EXT_SIG_MONGO_URI=server.uri, EXT_SIG_DB="notify",
                            FREQTRADE__WEBHOOK__ENABLED="true", FREQTRADE__WEBHOOK__URL=url)
        bot = DryRunBot(cfg_path, tmp_path, db_path, env).start()
        try:
            bot.wait_for(lambda: "ExternalSignalStrategy reads" in bot.log_text(), 150,
                         "bot start")
            assert received == []  # no message while the store answers
            server.stop()
            if not allowed:
                bot.wait_for(lambda: "Sending rpc strategy_msg: ExternalSignalStrategy: signal "
                             "store unreachable" in bot.log_text(), 60, "the outage message")
                time.sleep(3)  # several loops: had it been forwarded, it would be here
                assert received == []
                return
            outage = bot.wait_for(lambda: texts(received, "signal store unreachable"), 60,
                                  "the outage message at the webhook")
            server.start()
            recovery = bot.wait_for(lambda: texts(received, "reachable again"), 60,
                                    "the recovery message at the webhook")
            assert bot.running
        finally:
            bot.stop()
            standin.__exit__(None, None, None)
            server.stop()
    (outage_text,) = outage  # once per outage, not once per bot loop
    assert outage_text.startswith("ExternalSignalStrategy: signal store unreachable")
    assert "no new trades until it is back, open trades: hold" in outage_text
    assert recovery == ["ExternalSignalStrategy: signal store reachable again, trading on "
                        "signals resumes"]
    assert [r["path"] for r in received] == ["/hook/secret-token-123"] * len(received)
    assert len(received) == 2, [r["json"] for r in received]
