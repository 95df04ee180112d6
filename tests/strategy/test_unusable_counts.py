"""Signals the bot cannot use are counted per strategy id and reason, never vanish silently.

Against the local MongoDB server over the wire, in-process as Freqtrade drives
``ExternalSignalLogic`` (live: ``bot_loop_start`` then ``populate`` per pair;
backtest: ``populate`` per pair, then the simulation's first ``bot_loop_start``),
plus one run of the real ``freqtrade backtesting`` CLI. Checked: the counts per
strategy id (pairs outside the whitelist, unmappable pairs, documents without a
readable pair or ts, stale/expired), the ``signal_bridge_strategy_unusable_signals`` gauge, the
warn-once text naming the offending values, the per-candle and backtest summary
lines. That the steady state stays one ``find`` per loop with such documents
present is in test_live_path.py, next to the other query-count tests.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pandas as pd
import pymongo
import pytest
from pymongo import monitoring
from strategy_helpers import PAIRS, constructed_candles

from signal_export.consumer.logic import ExternalSignalLogic, apply_entry, apply_exit
from signal_export.consumer.normalise import normalise_signals
from signal_export.consumer.stats import REGISTRY, UNUSABLE_REASONS

H = timedelta(hours=1)
MIN = timedelta(minutes=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
N = 24
LAST_ROW = T0 + (N - 1) * H
CLOSE = T0 + N * H  # the last row closes here
SID, ALT = "uc_demo", "uc_alt"  # ids of their own: the gauges are process-wide
READS = frozenset({"find", "aggregate", "count", "distinct", "getMore"})


class ReadCounter(monitoring.CommandListener):
    """Every read command the client sends (find, aggregate, count, ...)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in READS:
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def doc(pair, ts, sid: str = SID, **fields) -> dict:
    out = {"ts": ts, "timeframe": "1h", "pair": pair, "strategy_id": sid, "version": 1,
           "action": "enter_long"}
    out.update(fields)
    return {k: v for k, v in out.items() if v is not _DROP}


_DROP = object()


def make_logic(uri: str, db: str, live: bool, client=None, ids=(SID,), **settings):
    ft_config = {"timeframe": "1h", "ext_signals": {"strategy_ids": list(ids), **settings}}
    env = {"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": db}
    return ExternalSignalLogic(ft_config, live=live, client=client, env=env)


def analyse(logic: ExternalSignalLogic, pair: str, pairs=PAIRS) -> pd.DataFrame:
    frame = constructed_candles(pair, "2026-01-01", N)
    return apply_exit(apply_entry(logic.populate(frame, pair, pairs)))


def loop(logic: ExternalSignalLogic, now: datetime, pairs=PAIRS) -> dict[str, pd.DataFrame]:
    logic.bot_loop_start(pairs, now)
    return {p: analyse(logic, p, pairs) for p in pairs}


def gauge(sid: str, reason: str) -> float | None:
    return REGISTRY.get_sample_value("signal_bridge_strategy_unusable_signals",
                                     {"strategy_id": sid, "reason": reason})


def consumer_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("signal_export.consumer")]


#: The frame still ends at LAST_ROW three bars after its close (as in test_live_path): the
#: last row's signals are stale by then, older rows' signals are judged at their own close.
LATE = CLOSE + 3 * H + timedelta(seconds=5)


def bad_corpus() -> list[dict]:
    """One good enter, and every way a stored signal of SID can be unusable."""
    return [
        doc("BTC/USDT", LAST_ROW - 2 * H),  # matched
        doc("ETH/USDT", LAST_ROW),  # stale: acted on 3 bars + 5 s after its bar closed
        doc("SOL/USDT", LAST_ROW - 2 * H, valid_until=LAST_ROW - 2 * H + 30 * MIN),  # expired
        doc("BTC-USDT", LAST_ROW),  # not a pair
        doc("BTC-USDT", LAST_ROW - H),
        doc("DOGE/USDT", LAST_ROW),  # a pair, not whitelisted
        doc(_DROP, LAST_ROW),  # no pair at all
        doc(7, LAST_ROW - H),  # pair not a string
        doc("SOL/USDT", "2026-01-01T23:00:00Z"),  # ts as a string: no window contains it
        doc("SOL/USDT", LAST_ROW, action="buy"),  # read by the find, malformed
        doc("ETH-USDT", LAST_ROW, sid=ALT),  # the other producer's unknown pair
        doc("BTC-USDT", LAST_ROW - 20 * H),  # before the read window: not counted
        doc("BTC-USDT", LAST_ROW, sid="someone-else"),  # not our strategy: never counted
        {**doc("BTC-USDT", LAST_ROW), "timeframe": "1d"},  # not our timeframe
    ]


EXPECTED_SID = {"matched": 1, "stale": 1, "expired": 1, "unknown_pair": 3, "malformed": 4}


def test_live_counts_every_unusable_signal_per_strategy_and_reason(mongo_uri, mongo_db, caplog):
    mongo_db["crypto_signals"].insert_many(bad_corpus())
    logic = make_logic(mongo_uri, mongo_db.name, live=True, ids=(SID, ALT))
    with caplog.at_level(logging.WARNING):
        frames = loop(logic, LATE)
        first = consumer_warnings(caplog)
        for seconds in (10, 15):  # the same candle
            loop(logic, LATE + timedelta(seconds=seconds))
        loop(logic, LATE + H)  # next candle: counted again, not warned again
    assert frames["BTC/USDT"]["enter_long"].iloc[-3] == 1  # the good signal still trades

    by_strategy = logic.stats.snapshot()["by_strategy"]
    assert {k: by_strategy[SID].get(k, 0) for k in EXPECTED_SID} == EXPECTED_SID
    assert by_strategy[ALT] == {"unknown_pair": 1}
    assert "someone-else" not in by_strategy
    for reason in UNUSABLE_REASONS:
        assert gauge(SID, reason) == by_strategy[SID].get(reason, 0), reason
    assert gauge(ALT, "unknown_pair") == 1 and gauge(ALT, "stale") == 0

    assert consumer_warnings(caplog) == first, "warned again in later loops"
    text = "\n".join(first)
    assert f"producer sends 'BTC-USDT' for strategy {SID}: not a pair" in text
    assert f"producer sends 'DOGE/USDT' for strategy {SID}: not in the whitelist" in text
    assert f"producer sends 'ETH-USDT' for strategy {ALT}: not a pair" in text
    assert f"producer sends ts as string for strategy {SID}" in text
    assert f"producer sends no pair for strategy {SID}" in text
    assert f"producer sends pair 7 for strategy {SID}" in text
    assert sum("BTC-USDT" in w for w in first) == 1  # two documents, one line


def test_a_pair_leaving_the_whitelist_is_recounted_not_lost_or_doubled(mongo_uri, mongo_db):
    mongo_db["crypto_signals"].insert_many([doc("BTC/USDT", LAST_ROW), doc("ETH/USDT", LAST_ROW)])
    logic = make_logic(mongo_uri, mongo_db.name, live=True)
    loop(logic, CLOSE + timedelta(seconds=5))
    assert logic.stats.snapshot()["by_strategy"][SID] == {"matched": 2}
    loop(logic, CLOSE + timedelta(seconds=10), pairs=("BTC/USDT", "SOL/USDT"))  # ETH dropped
    assert logic.stats.snapshot()["by_strategy"][SID] == {"matched": 1, "unknown_pair": 1}
    assert logic.source.count_queries == 2  # the whitelist changed: counted again


def test_several_ids_on_one_pair_split_what_each_signal_did(mongo_uri, mongo_db):
    mongo_db["crypto_signals"].insert_many([
        doc("BTC/USDT", LAST_ROW),  # SID enters
        doc("BTC/USDT", LAST_ROW, sid=ALT, action="exit_long"),  # ALT ranks second: superseded
        doc("BTC/USDT", LAST_ROW - 2 * H, sid=ALT,
            valid_until=LAST_ROW - 2 * H + 30 * MIN),  # ALT's expired one
    ])
    logic = make_logic(mongo_uri, mongo_db.name, live=True, ids=(SID, ALT))
    frames = loop(logic, CLOSE + timedelta(seconds=5))
    assert frames["BTC/USDT"]["enter_tag"].iloc[-1] == f"ext:{SID}:v1"
    by_strategy = logic.stats.snapshot()["by_strategy"]
    assert by_strategy[ALT] == {"expired": 1}
    assert by_strategy[f"{SID}+{ALT}"] == {"matched": 1, "superseded": 1}
    assert by_strategy[SID] == {}
    assert gauge(ALT, "expired") == 1 and gauge(SID, "expired") == 0


def test_per_candle_summary_names_the_unusable_counts_per_strategy(mongo_uri, mongo_db, caplog):
    mongo_db["crypto_signals"].insert_many(bad_corpus())
    logic = make_logic(mongo_uri, mongo_db.name, live=True, ids=(SID, ALT))
    with caplog.at_level(logging.INFO, logger="signal_export.consumer.logic"):
        for seconds in (0, 5):
            loop(logic, LATE + timedelta(seconds=seconds))
        logic.bot_loop_start(PAIRS, LATE + H)
    summaries = [r for r in caplog.records if "ext_signals summary" in r.getMessage()]
    assert len(summaries) == 1
    line = summaries[0].getMessage()
    assert (f"unusable by strategy: {SID} unknown_pair=3 malformed=4 unmatched=0 stale=1 "
            f"expired=1; {ALT} unknown_pair=1 malformed=0") in line, line
    assert summaries[0].ext_signals_by_strategy[SID]["unknown_pair"] == 3


def test_nothing_unusable_reads_zero_not_absent(mongo_uri, mongo_db):
    sid = "uc_clean"
    mongo_db["crypto_signals"].insert_one(doc("BTC/USDT", LAST_ROW, sid=sid))
    logic = make_logic(mongo_uri, mongo_db.name, live=True, ids=(sid,))
    loop(logic, CLOSE + timedelta(seconds=5))
    assert [gauge(sid, r) for r in UNUSABLE_REASONS] == [0.0] * len(UNUSABLE_REASONS)
    assert logic.stats.snapshot()["by_strategy"][sid] == {"matched": 1}


def test_outage_counts_nothing_and_keeps_the_last_counts(mongo_uri, mongo_db):
    mongo_db["crypto_signals"].insert_many(bad_corpus())
    logic = make_logic(mongo_uri, mongo_db.name, live=True, ids=(SID, ALT))
    loop(logic, LATE)
    logic.source._client = pymongo.MongoClient("mongodb://127.0.0.1:9", tz_aware=True,
                                               serverSelectionTimeoutMS=200)
    before = logic.source.count_queries
    loop(logic, LATE + H)  # a new candle, but the store is down
    assert not logic.source.available and logic.source.count_queries == before
    assert gauge(SID, "unknown_pair") == 3
    logic.source.close()


# --- backtesting ----------------------------------------------------------------------


def backtest_corpus() -> list[dict]:
    return [
        doc("BTC/USDT", T0 + 3 * H),  # matched
        doc("ETH/USDT", T0 + 3 * H, action="exit_long"),  # matched (an exit)
        doc("BTC-USDT", T0 + 5 * H), doc("BTC-USDT", T0 + 6 * H),  # not a pair
        doc("XRP/USDT", T0 + 5 * H),  # not whitelisted
        doc("SOL/USDT", "yesterday"),  # ts as a string
        doc("SOL/USDT", T0 + 4 * H, score=float("nan"), action=None),  # malformed, read
        doc("SOL/USDT", T0 + 60 * H),  # after the range: not read, not counted
    ]


def test_backtest_logs_one_summary_line_once_every_pair_is_populated(mongo_uri, mongo_db,
                                                                      caplog):
    mongo_db["crypto_signals"].insert_many(backtest_corpus())
    listener = ReadCounter()
    client = pymongo.MongoClient(mongo_uri, tz_aware=True, event_listeners=[listener])
    try:
        logic = make_logic(mongo_uri, mongo_db.name, live=False, client=client)
        with caplog.at_level(logging.INFO, logger="signal_export.consumer"):
            frames = {p: analyse(logic, p) for p in PAIRS}
            for hour in range(N):  # the simulation: Freqtrade calls this once per candle
                logic.bot_loop_start(PAIRS, T0 + hour * H)
    finally:
        client.close()
    assert frames["BTC/USDT"]["enter_long"].tolist().index(1) == 3
    assert listener.names == ["find", "aggregate"]  # one read and one count per backtest
    lines = [r.getMessage() for r in caplog.records if "backtest summary" in r.getMessage()]
    assert lines == [f"ext_signals backtest summary: strategy_id={SID} matched=2 stale=0 "
                     "expired=0 malformed=2 unknown_pair=3 unmatched=0 pending=0 no_action=0 "
                     "superseded=0 deduped=0 debounced=0"]
    assert gauge(SID, "unknown_pair") == 3 and gauge(SID, "malformed") == 2
    warnings = "\n".join(consumer_warnings(caplog))
    assert f"producer sends 'BTC-USDT' for strategy {SID}: not a pair" in warnings
    assert f"producer sends 'XRP/USDT' for strategy {SID}: not in the whitelist" in warnings


def test_backtest_summary_at_the_simulation_start_when_a_pair_had_no_data(mongo_uri, mongo_db,
                                                                          caplog):
    """A whitelisted pair without candles is never populated: the first loop logs instead."""
    mongo_db["crypto_signals"].insert_many(backtest_corpus())
    logic = make_logic(mongo_uri, mongo_db.name, live=False)
    with caplog.at_level(logging.INFO, logger="signal_export.consumer.logic"):
        for pair in ("BTC/USDT", "ETH/USDT"):  # SOL/USDT has no data
            analyse(logic, pair)
        assert not [r for r in caplog.records if "backtest summary" in r.getMessage()]
        for hour in range(5):
            logic.bot_loop_start(PAIRS, T0 + hour * H)
    lines = [r.getMessage() for r in caplog.records if "backtest summary" in r.getMessage()]
    assert len(lines) == 1 and "matched=2" in lines[0] and "unknown_pair=3" in lines[0]
    # SOL is never evaluated, but its documents were read: the NaN score and the string ts
    assert "malformed=2" in lines[0]


def test_normalise_counts_per_strategy_and_names_the_pair():
    docs = [doc("BTC/USDT", LAST_ROW), doc("BTC-USDT", LAST_ROW), doc("BTC/USDT", LAST_ROW,
                                                                      action="buy"),
            doc("DOGE/USDT", LAST_ROW, sid=ALT), {**doc("BTC/USDT", LAST_ROW), "strategy_id": 3}]
    messages: list[str] = []
    per_strategy: dict[str, Counter] = {}
    frame = normalise_signals(docs, pairs=PAIRS, strategy_counts=per_strategy,
                              warn=lambda key, msg, *args: messages.append(msg % args))
    assert len(frame) == 1
    assert per_strategy == {SID: Counter(unknown_pair=1, malformed=1),
                            ALT: Counter(unknown_pair=1), "?": Counter(malformed=1)}
    assert f"producer sends 'BTC-USDT' for strategy {SID}: not a pair" in "\n".join(messages)
    assert f"producer sends 'DOGE/USDT' for strategy {ALT}: not in the whitelist" in "\n".join(
        messages)


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_backtesting_prints_the_summary(run_backtest, mongo_db):
    mongo_db["crypto_signals"].insert_many(backtest_corpus())
    candles = {p: constructed_candles(p, "2026-01-01", 30) for p in PAIRS}
    trades = run_backtest(mongo_db.name, candles, {"strategy_ids": [SID]}, "20260101-20260102")
    log = trades.attrs["log"]
    lines = [line for line in log.splitlines() if "ext_signals backtest summary" in line]
    assert len(lines) == 1, log[-3000:]
    assert f"strategy_id={SID} matched=2" in lines[0] and "unknown_pair=3" in lines[0]
    assert "producer sends 'BTC-USDT'" in log
