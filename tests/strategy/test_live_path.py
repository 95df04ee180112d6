"""The live read path in-process, against the local MongoDB server over the wire.

One query per bot loop for all pairs (counted with pymongo command monitoring),
one query per backtest range, late signals acted on in the same candle, and
outage safety (server stopped: no exception, nothing opened, one warning and
one message per outage, recovery by itself).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pandas as pd
import pymongo
import pytest
from strategy_helpers import PAIRS, constructed_candles

from signal_export.consumer.logic import ExternalSignalLogic, apply_entry, apply_exit

H = timedelta(hours=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
N = 24
LAST_ROW = T0 + (N - 1) * H  # last closed candle; it closes at T0 + N*H


def doc(pair: str, ts: datetime, action: str, sid: str = "demo") -> dict:
    return {"ts": ts, "timeframe": "1h", "symbol": "BINANCE:" + pair.replace("/", ""),
            "pair": pair, "strategy_id": sid, "action": action, "version": 1}


def make_logic(uri: str, db: str, live: bool, client=None, notify=None, **settings):
    ft_config = {"timeframe": "1h", "ext_signals": {"strategy_ids": ["demo"],
                                                   "server_selection_timeout_ms": 300,
                                                   "socket_timeout_ms": 1000,
                                                   "connect_timeout_ms": 300, **settings}}
    env = {"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": db}
    return ExternalSignalLogic(ft_config, live=live, client=client, notify=notify, env=env)


def analyse(logic: ExternalSignalLogic, pair: str) -> pd.DataFrame:
    frame = constructed_candles(pair, "2026-01-01", N)
    return apply_exit(apply_entry(logic.populate(frame, pair, PAIRS)))


def test_one_query_per_bot_loop_for_all_pairs(mongo_uri, mongo_db, counted_client):
    client, listener = counted_client
    mongo_db["crypto_signals"].insert_many([doc(p, LAST_ROW, "enter_long") for p in PAIRS])
    logic = make_logic(mongo_uri, mongo_db.name, live=True, client=client)
    for loop in range(3):
        logic.bot_loop_start(PAIRS, T0 + N * H + timedelta(seconds=5 + loop))
        frames = {p: analyse(logic, p) for p in PAIRS}
    assert len(listener.finds) == 3
    flt = listener.finds[-1]["filter"]
    assert sorted(flt["pair"]["$in"]) == sorted(PAIRS) and flt["timeframe"] == "1h"
    assert flt["ts"]["$gte"] >= T0 + N * H - logic.cfg.lookback_bars * H  # only the window
    assert all(f["enter_long"].iloc[-1] == 1 for f in frames.values())
    assert logic.stats.snapshot()["counts"]["BTC/USDT"]["matched"] == 1


def test_steady_state_stays_one_find_per_loop_with_unknown_pairs_stored(
        mongo_uri, mongo_db, counted_client):
    """Counting what the find leaves out costs one aggregate per candle, not one per loop."""
    client, listener = counted_client
    mongo_db["crypto_signals"].insert_many(
        [doc(p, LAST_ROW, "enter_long") for p in PAIRS]
        + [doc("BTC-USDT", LAST_ROW, "enter_long"), doc("DOGE/USDT", LAST_ROW, "enter_long")])
    logic = make_logic(mongo_uri, mongo_db.name, live=True, client=client)
    per_loop = []
    for now in [T0 + N * H + timedelta(seconds=s) for s in (5, 10, 15, 20)] + [
            T0 + (N + 1) * H + timedelta(seconds=s) for s in (5, 10)]:
        before = len(listener.reads)
        logic.bot_loop_start(PAIRS, now)
        for p in PAIRS:
            analyse(logic, p)
        per_loop.append(listener.reads[before:])
    assert per_loop == [["find", "aggregate"], ["find"], ["find"], ["find"],
                        ["find", "aggregate"], ["find"]]
    assert logic.stats.snapshot()["by_strategy"]["demo"]["unknown_pair"] == 2


def test_backtest_reads_all_pairs_in_one_query(mongo_uri, mongo_db, counted_client):
    client, listener = counted_client
    mongo_db["crypto_signals"].insert_many([doc(p, T0 + 3 * H, "enter_long") for p in PAIRS])
    logic = make_logic(mongo_uri, mongo_db.name, live=False, client=client)
    for _ in range(100):  # Freqtrade calls bot_loop_start once per candle in backtesting
        logic.bot_loop_start(PAIRS, T0)
    frames = {p: analyse(logic, p) for p in PAIRS}
    assert len(listener.finds) == 1
    assert all(f["enter_long"].tolist().index(1) == 3 for f in frames.values())


def test_late_signal_acts_in_the_same_candle_live(mongo_uri, mongo_db):
    logic = make_logic(mongo_uri, mongo_db.name, live=True)
    close = T0 + N * H
    logic.bot_loop_start(PAIRS, close + timedelta(seconds=10))
    assert analyse(logic, "BTC/USDT")["enter_long"].iloc[-1] == 0
    # the exporter finishes 40 s after the close, after the bot first looked at the row
    mongo_db["crypto_signals"].insert_one(doc("BTC/USDT", LAST_ROW, "enter_long"))
    logic.bot_loop_start(PAIRS, close + timedelta(seconds=40))
    frame = analyse(logic, "BTC/USDT")
    assert frame["enter_long"].iloc[-1] == 1 and frame["enter_tag"].iloc[-1] == "ext:demo:v1"
    # but not once it is older than max_delay (3 bars) at decision time
    logic.bot_loop_start(PAIRS, close + 3 * H + timedelta(seconds=1))
    assert analyse(logic, "BTC/USDT")["enter_long"].iloc[-1] == 0


def test_unreachable_store_no_exception_no_entries_one_warning(caplog):
    messages: list[str] = []
    logic = make_logic("mongodb://127.0.0.1:9", "x", live=True, notify=messages.append,
                       missing_signal_policy="exit")
    with caplog.at_level(logging.WARNING, logger="signal_export.consumer.source"):
        for i in range(3):
            logic.bot_loop_start(PAIRS, T0 + N * H + timedelta(seconds=i))
            frame = analyse(logic, "BTC/USDT")
    assert frame["enter_long"].sum() == 0
    assert frame["exit_long"].iloc[-1] == 1 and frame["exit_long"].sum() == 1  # policy: exit
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1 and len(messages) == 1
    assert "mongodb://127.0.0.1:9" in warnings[0].getMessage()


def test_outage_then_recovery_with_hold_policy(tmp_path, caplog):
    from devservers.mongo.process import LocalMongoProcess

    messages: list[str] = []
    with LocalMongoProcess(data_dir=tmp_path / "m") as server:
        writer = pymongo.MongoClient(server.uri, tz_aware=True)
        writer["sig"]["crypto_signals"].insert_one(doc("BTC/USDT", LAST_ROW, "enter_long"))
        logic = make_logic(server.uri, "sig", live=True, notify=messages.append)
        now = T0 + N * H + timedelta(seconds=5)
        logic.bot_loop_start(PAIRS, now)
        assert analyse(logic, "BTC/USDT")["enter_long"].iloc[-1] == 1

        server.stop()
        with caplog.at_level(logging.INFO, logger="signal_export.consumer.source"):
            for i in range(3):
                logic.bot_loop_start(PAIRS, now + timedelta(seconds=i))
                frame = analyse(logic, "BTC/USDT")
                assert frame["enter_long"].sum() == 0 and frame["exit_long"].sum() == 0  # hold
            server.start()
            logic.bot_loop_start(PAIRS, now + timedelta(seconds=10))
            assert analyse(logic, "BTC/USDT")["enter_long"].iloc[-1] == 1
        writer.close()
        logic.source.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    recovered = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(warnings) == 1 and len(recovered) == 1
    assert len(messages) == 2 and "unreachable" in messages[0] and "again" in messages[1]


def test_backtest_fails_loudly_without_its_signals():
    logic = make_logic("mongodb://127.0.0.1:9", "x", live=False)
    with pytest.raises(pymongo.errors.PyMongoError):
        analyse(logic, "BTC/USDT")


def test_summary_logged_once_per_candle(mongo_uri, mongo_db, caplog):
    mongo_db["crypto_signals"].insert_one(doc("BTC/USDT", LAST_ROW, "enter_long"))
    logic = make_logic(mongo_uri, mongo_db.name, live=True)
    close = T0 + N * H
    with caplog.at_level(logging.INFO, logger="signal_export.consumer.logic"):
        for seconds in (5, 10, 15):  # three loops in the same candle
            logic.bot_loop_start(PAIRS, close + timedelta(seconds=seconds))
            analyse(logic, "BTC/USDT")
        logic.bot_loop_start(PAIRS, close + H + timedelta(seconds=1))  # next candle
    summaries = [r.getMessage() for r in caplog.records if "ext_signals summary" in r.getMessage()]
    assert len(summaries) == 1 and "matched=1" in summaries[0] and "(BTC/USDT)" in summaries[0]


@pytest.mark.parametrize(("tag", "fraction", "expected"), [
    ("ext:demo:v1:w0.25", 1.0, 25.0),  # weight x proposed stake
    ("ext:demo:v1", 1.0, 100.0),  # no weight: the proposed stake
    ("ext:demo:v1:w1", 0.5, 60.0),  # capped at max_stake_fraction x max_stake (120)
    ("manual", 1.0, 100.0),  # a tag we did not write (e.g. forceenter)
])
def test_stake_from_weight_is_capped(tag, fraction, expected):
    logic = make_logic("mongodb://127.0.0.1:9", "x", live=True, max_stake_fraction=fraction)
    assert logic.stake(100.0, 120.0, tag) == pytest.approx(expected)


def test_weight_ignored_for_stake_when_disabled():
    logic = make_logic("mongodb://127.0.0.1:9", "x", live=True, use_weight_for_stake=False)
    assert logic.stake(100.0, 1000.0, "ext:demo:v1:w0.25") == pytest.approx(100.0)


def test_metrics_served_for_the_monitor(mongo_uri, mongo_db):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mongo_db["crypto_signals"].insert_one(doc("ETH/USDT", LAST_ROW, "enter_long"))
    logic = make_logic(mongo_uri, mongo_db.name, live=True, metrics_port=port)
    logic.bot_loop_start(PAIRS, T0 + N * H + timedelta(seconds=30))
    analyse(logic, "ETH/USDT")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert ('signal_bridge_strategy_last_evaluation_signals{outcome="matched",pair="ETH/USDT"} '
            '1.0') in body
    assert 'signal_bridge_strategy_signal_lag_seconds{pair="ETH/USDT"} 30.0' in body
    assert ('signal_bridge_strategy_unusable_signals{reason="unknown_pair",strategy_id="demo"} '
            '0.0') in body
    assert "python_gc" not in body  # the strategy's own registry: nothing but its gauges


def test_empty_window_is_not_an_outage(mongo_uri, mongo_db, caplog):
    logic = make_logic(mongo_uri, mongo_db.name, live=True)
    with caplog.at_level(logging.WARNING):
        assert logic.source.refresh(PAIRS, T0 + N * H) is True
    assert logic.source.available
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert analyse(logic, "BTC/USDT")["enter_long"].sum() == 0


def test_live_names_an_id_without_signals_once_per_candle(mongo_uri, mongo_db, caplog,
                                                          counted_client):
    client, listener = counted_client
    mongo_db["crypto_signals"].insert_many([doc("BTC/USDT", LAST_ROW, "enter_long"),
                                            doc("ETH/USDT", T0, "enter_long", sid="quiet")])
    logic = make_logic(mongo_uri, mongo_db.name, live=True, client=client,
                       strategy_ids=["demo", "quiet", "typo"])
    close = T0 + N * H
    with caplog.at_level(logging.INFO, logger="signal_export.consumer.logic"):
        for now in (close + timedelta(seconds=5), close + timedelta(seconds=10),
                    close + H + timedelta(seconds=5)):
            logic.bot_loop_start(PAIRS, now)
    found = [r for r in caplog.records if "signals found per strategy id" in r.getMessage()]
    assert len(found) == 2  # once per candle
    assert found[0].getMessage().endswith(": demo=1, quiet=0, typo=0")
    missing = [r for r in caplog.records if "no signals for strategy id" in r.getMessage()]
    assert len(missing) == 2 and listener.reads.count("distinct") == 2  # one distinct per candle
    # 'typo' is stored for no window at all: a warning; 'quiet' is just quiet in this window
    assert missing[0].levelno == logging.WARNING
    assert "'quiet', 'typo'" in missing[0].getMessage()
    assert missing[0].getMessage().endswith("strategy ids stored for timeframe 1h: demo, quiet")
