"""Bad documents written straight into ``crypto_signals`` (bypassing the exporter).

The strategy's read path (``ExternalSignalLogic`` live, as Freqtrade drives it:
``bot_loop_start`` once per loop, then ``populate`` per pair) must never raise,
never act on a malformed document, count it, and warn once however many loops
read it. A good document next to it must still be traded.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from corpus import BAD_PAIR, BAD_SIGNALS, STRATEGY, H, T, good_signal
from strategy_helpers import constructed_candles

from signal_export.consumer.logic import ExternalSignalLogic

PAIRS = ("BTC/USDT", "ETH/USDT", BAD_PAIR)
LOOP_NOW = T + H + timedelta(seconds=10)  # row T closed 10 s ago
STORABLE = [c for c in BAD_SIGNALS if c.reader is not None]


def make_logic(mongo_client, db_name: str) -> ExternalSignalLogic:
    ft_config = {"timeframe": "1h", "ext_signals": {"strategy_ids": [STRATEGY]}}
    env = {"EXT_SIG_MONGO_URI": "mongodb://unused:1", "EXT_SIG_DB": db_name}
    return ExternalSignalLogic(ft_config, live=True, client=mongo_client, env=env)


def run_loops(logic: ExternalSignalLogic, loops: int = 3) -> dict[str, object]:
    """``loops`` bot loops over all pairs; the candle frames of the last one."""
    frames = {}
    for _ in range(loops):
        logic.bot_loop_start(PAIRS, LOOP_NOW)
        for pair in PAIRS:
            candles = constructed_candles(pair, str(T - 8 * H), 9)
            frames[pair] = logic.populate(candles, pair, PAIRS)
    return frames


def acted(frame) -> bool:
    return bool(np.any(frame["ext_enter_long"].to_numpy()) or np.any(
        frame["ext_exit_long"].to_numpy()))


def outcome(logic: ExternalSignalLogic, frames) -> str:
    counts = logic.stats.snapshot()["counts"]
    bad = Counter(counts.get(BAD_PAIR, {})) + Counter(logic.source.read_counts.get("?", {}))
    if acted(frames[BAD_PAIR]):
        return "acted"
    if bad["malformed"]:
        return "malformed"
    if bad["pending"]:
        return "pending"
    assert not bad, bad
    return "not_read"


def consumer_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("signal_export.consumer")]


@pytest.mark.parametrize("case", STORABLE, ids=[c.name for c in STORABLE])
def test_a_bad_document_in_the_collection_is_ignored_counted_and_warned_once(
        mongo_client, signals, caplog, case):
    signals.coll.insert_one(good_signal(pair="BTC/USDT"))
    signals.coll.insert_one(dict(case.doc))
    logic = make_logic(mongo_client, signals.db.name)
    with caplog.at_level(logging.WARNING):
        run_loops(logic, 1)
        after_first = consumer_warnings(caplog)
        frames = run_loops(logic, 3)
    assert logic.source.available and logic.source.queries == 4
    assert acted(frames["BTC/USDT"]), "the good document next to the bad one was not traded"
    assert outcome(logic, frames) == case.reader, (
        f"read path outcome for a stored {case.name!r} document")
    assert consumer_warnings(caplog) == after_first  # nothing new after the first loop
    if case.reader == "malformed":
        assert len(after_first) == 1 and after_first[0].startswith("ignoring 1 ")


def test_the_whole_corpus_at_once_without_indexes_never_crashes(mongo_client, mongo_db, caplog):
    """Someone else's collection (no unique index): every storable defect plus duplicates."""
    coll = mongo_db["crypto_signals"]
    copies = [good_signal(pair="BTC/USDT") for _ in range(3)]
    coll.insert_many([dict(c.doc) for c in STORABLE] + copies)
    logic = make_logic(mongo_client, mongo_db.name)
    with caplog.at_level(logging.WARNING):
        run_loops(logic, 1)
        first = consumer_warnings(caplog)
        frames = run_loops(logic, 4)
    assert consumer_warnings(caplog) == first
    malformed = sum(c.reader == "malformed" for c in STORABLE)
    assert logic.stats.snapshot()["counts"][BAD_PAIR]["malformed"] == malformed
    assert frames["BTC/USDT"]["ext_enter_long"].sum() == 1  # three copies, one enter
    assert not acted(frames["ETH/USDT"])
