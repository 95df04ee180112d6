"""A real ``freqtrade trade --dry-run`` on incremental reads trades a signal written mid-candle.

The collection has the change index and every document carries ``updated_at`` (as
the exporter writes them), so after the first loop of each 1m candle the bot reads
only what changed and re-decides only the pairs it touched. An enter written into
the middle of a candle (after that candle's full read) must still open a trade in
the same candle, through Freqtrade's own hooks (fresh frames every loop, its tag
resets between the hooks), and an exit written into a later candle must close it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pymongo
import pytest
from strategy_helpers import PAIRS
from test_dry_run_replay import last_closed_minute, start_dry_run_bot

from devservers.freqtrade_harness import leave_at_least
from signal_export.contract import UPDATED_AT_FIELD
from signal_export.store import ensure_signal_indexes

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]


def stamped(pair: str, ts: datetime, action: str) -> dict:
    return {"ts": ts, "timeframe": "1m", "symbol": "BINANCE:" + pair.replace("/", ""),
            "pair": pair, "strategy_id": "replay", "action": action, "version": 1,
            UPDATED_AT_FIELD: datetime.now(UTC)}


def test_dry_run_trades_a_signal_written_mid_candle_on_incremental_reads(tmp_path, standin):
    from devservers.mongo.process import LocalMongoProcess

    server = LocalMongoProcess(data_dir=tmp_path / "mongo").start()
    writer = pymongo.MongoClient(server.uri, tz_aware=True)
    coll = writer["replay"]["crypto_signals"]
    ensure_signal_indexes(coll)
    # an older stamped signal in the window: the full reads find stamps, no fallback
    coll.insert_one(stamped(PAIRS[2], last_closed_minute() - timedelta(minutes=2), "exit_long"))
    bot = start_dry_run_bot(tmp_path, standin, server.uri, "replay")
    try:
        bot.wait_for(lambda: "ExternalSignalStrategy reads" in bot.log_text(), 120, "bot start")
        leave_at_least(25)
        bot.wait_for(lambda: datetime.now(UTC).second >= 8, 60, "this candle's full read")
        entry_ts = last_closed_minute()
        candle_end = entry_ts + timedelta(minutes=2)  # the candle after entry_ts closes then
        coll.insert_one(stamped("BTC/USDT", entry_ts, "enter_long"))
        opened = bot.wait_for(lambda: [t for t in bot.trades() if t["pair"] == "BTC/USDT"],
                              20, "BTC trade to open")
        assert opened[0]["enter_tag"] == "ext:replay:v1"
        open_date = datetime.fromisoformat(opened[0]["open_date"]).replace(tzinfo=UTC)
        assert open_date < candle_end  # in the same candle: a change read found it

        bot.wait_for(lambda: last_closed_minute() > entry_ts, 65, "next candle")
        leave_at_least(25)
        bot.wait_for(lambda: datetime.now(UTC).second >= 8, 60, "this candle's full read")
        coll.insert_one(stamped("BTC/USDT", last_closed_minute(), "exit_long"))
        closed = bot.wait_for(lambda: [t for t in bot.trades()
                                       if t["pair"] == "BTC/USDT" and t["is_open"] == 0],
                              20, "BTC trade to close")
        assert closed[0]["exit_reason"] == "ext:replay:v1"
        assert bot.running
        assert "Traceback" not in bot.log_text()
    finally:
        bot.stop()
        writer.close()
        server.stop()
