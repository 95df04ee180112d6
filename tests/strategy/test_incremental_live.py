"""The incremental live loop decides exactly what reading and deciding everything would.

Two strategies' logic side by side on the dev server (real pymongo): one with
``live_incremental`` (read only what changed, re-decide only the pairs it touched,
reuse the rest) and one with it off (the whole window read and every pair decided
every loop). Random signal streams: inserts, revisions with a higher version,
late signals, off-grid and future ``ts``, short ``valid_until`` (expiring between
loops), malformed documents, stamps a little in the past (clock skew, within the
overlap), new candles (some arriving a loop late),
random decision settings and two strategy ids. Every loop, every pair: the frames
after Freqtrade's three hooks are identical, column by column, and so are the counts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from strategy_helpers import BASE_PRICE, PAIRS, constructed_candles

from signal_export.consumer.logic import ExternalSignalLogic
from signal_export.consumer.source import CHANGES_INDEX
from signal_export.contract import UPDATED_AT_FIELD
from signal_export.store import SIGNAL_CHANGES_INDEX, ensure_signal_indexes

H = timedelta(hours=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
N0 = 48  # candles before the first simulated candle
IDS = ["model", "risk"]
LOOP_OFFSETS = [timedelta(seconds=s) for s in (5, 20, 45, 70, 400, 1500, 2900, 3590)]


def with_indexes(db):
    """The project's indexes, the one the change query needs among them."""
    coll = db["crypto_signals"]
    ensure_signal_indexes(coll)
    assert any([k for k, _ in ix["key"]] == [f for f, _ in CHANGES_INDEX]
               for ix in coll.index_information().values())
    return coll


def make_logic(uri: str, db: str, incremental: bool, settings: dict) -> ExternalSignalLogic:
    cfg = {"timeframe": "1h", "ext_signals": {"strategy_ids": IDS, "live_incremental": incremental,
                                              **settings}}
    return ExternalSignalLogic(cfg, live=True, env={"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": db})


def run_hooks(logic: ExternalSignalLogic, candles: pd.DataFrame, pair: str) -> pd.DataFrame:
    """What Freqtrade does per pair and loop: a fresh frame, the three hooks, its tag resets."""
    frame = logic.prepare(candles.copy(), pair, PAIRS)
    frame.loc[:, "enter_tag"] = ""
    frame = logic.entry(frame, pair, PAIRS)
    frame.loc[:, "exit_tag"] = ""
    return logic.exit(frame, pair, PAIRS)


class Producer:
    """Random writes the way the exporter (and, sometimes, another tool) would make them."""

    def __init__(self, coll, rng: random.Random) -> None:
        self.coll, self.rng = coll, rng
        self.versions: dict[tuple, int] = {}

    def write(self, last_row: datetime, now: datetime) -> None:
        rng = self.rng
        for _ in range(rng.randint(0, 6)):
            pair, sid = rng.choice(PAIRS), rng.choice(IDS)
            if self.versions and rng.random() < 0.3:  # revise a stored key
                key = rng.choice(sorted(self.versions))
                sid, pair, ts = key
            else:
                back = rng.choice([0, 0, 0, 1, 2, 3, -1])  # -1: a future bar (pending)
                ts = last_row - back * H
                if rng.random() < 0.2:
                    ts += timedelta(minutes=rng.choice([10, 30, 50]))  # off the grid
                key = (sid, pair, ts)
            version = self.versions.get(key, 0) + rng.choice([1, 1, 0])
            version = max(version, 1)
            self.versions[key] = version
            doc: dict = {"strategy_id": sid, "pair": pair, "timeframe": "1h", "ts": ts,
                         "symbol": "BINANCE:" + pair.replace("/", ""), "version": version}
            kind = rng.random()
            if kind < 0.15:
                doc["action"] = rng.choice(["enter_long", "exit_long"])
            elif kind < 0.3:
                doc["weight"] = rng.choice([0.0, 0.5, 1.0])
            elif kind < 0.33:
                doc["score"] = "high"  # malformed: counted, never traded
            else:
                doc["score"] = round(rng.random(), 2)
            if rng.random() < 0.25:
                doc["valid_until"] = now + timedelta(minutes=rng.randint(1, 50))
            unset = {f: "" for f in ("action", "weight", "score", "valid_until") if f not in doc}
            skew = timedelta(seconds=rng.choice([0, 0, 0, 20, 40]))  # < the 60 s overlap
            doc[UPDATED_AT_FIELD] = datetime.now(UTC) - skew
            update: dict = {"$set": doc}
            if unset:
                update["$unset"] = unset
            self.coll.update_one({"strategy_id": sid, "pair": pair, "timeframe": "1h", "ts": ts},
                                 update, upsert=True)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_incremental_loop_decides_like_the_full_recompute(mongo_uri, mongo_db, seed):
    rng = random.Random(seed)
    settings = {"tolerance_bars": rng.choice([1, 2]), "max_delay_bars": rng.choice([1, 2, 3]),
                "enter_score": rng.choice([0.55, 0.6, 0.7]),
                "exit_score": rng.choice([0.3, 0.4, 0.5]), "confirm_n": rng.choice([1, 1, 2]),
                "min_hold_bars": rng.choice([0, 0, 2]), "cooldown_bars": rng.choice([0, 0, 1])}
    inc = make_logic(mongo_uri, mongo_db.name, True, settings)
    full = make_logic(mongo_uri, mongo_db.name, False, settings)
    producer = Producer(with_indexes(mongo_db), rng)
    loops, malformed_seen = 0, False
    for candle in range(6):
        candle_open = T0 + (N0 + candle) * H
        for i, offset in enumerate(LOOP_OFFSETS):
            now = candle_open + offset
            # the newest closed candle; now and then the exchange delivers it a loop late
            rows = N0 + candle - (1 if i == 0 and rng.random() < 0.4 else 0)
            last_row = T0 + (rows - 1) * H
            producer.write(last_row, now)
            for logic in (inc, full):
                logic.bot_loop_start(PAIRS, now)
            for pair in PAIRS:
                candles = constructed_candles(pair, "2026-01-01", rows)
                assert candles["open"].iloc[0] == BASE_PRICE[pair]
                got, want = run_hooks(inc, candles, pair), run_hooks(full, candles, pair)
                pd.testing.assert_frame_equal(got, want, obj=f"{pair} at {now} (loop {loops})")
            assert inc.stats.snapshot() == full.stats.snapshot(), f"counts at {now}"
            assert inc.source.unusable == full.source.unusable
            malformed_seen |= any(c.get("malformed") for c in inc.source.unusable.values())
            loops += 1
    # the incremental side really read changes only and reused decisions
    assert inc.source.full_reads <= 6 + 1 and inc.source.delta_reads >= loops - 7
    assert full.source.full_reads == loops and full.source.delta_reads == 0
    assert inc.decisions < full.decisions == loops * len(PAIRS)
    snapshot = full.stats.snapshot()
    assert sum(c.get("matched", 0) for c in snapshot["counts"].values()) > 0  # not vacuous
    assert malformed_seen


def test_unchanged_documents_read_again_change_nothing(mongo_uri, mongo_db):
    """The overlap re-reads recent writes every loop: they must not cost a re-decision."""
    coll = with_indexes(mongo_db)
    last_row = T0 + (N0 - 1) * H
    coll.insert_many([{"strategy_id": "model", "pair": p, "timeframe": "1h", "ts": last_row,
                       "score": 0.9, "version": 1, UPDATED_AT_FIELD: datetime.now(UTC)}
                      for p in PAIRS])
    logic = make_logic(mongo_uri, mongo_db.name, True, {})
    candles = {p: constructed_candles(p, "2026-01-01", N0) for p in PAIRS}
    for s in (5, 10, 15, 20):
        logic.bot_loop_start(PAIRS, T0 + N0 * H + timedelta(seconds=s))
        frames = {p: run_hooks(logic, candles[p], p) for p in PAIRS}
    assert logic.source.full_reads == 1 and logic.source.delta_reads == 3
    assert logic.decisions == len(PAIRS)  # decided once, reused three times
    assert all(f["enter_long"].iloc[-1] == 1 and f["enter_tag"].iloc[-1] == "ext:model:v1"
               for f in frames.values())
    # a revision: only its pair is decided again, and the new content is traded
    coll.update_one({"pair": "ETH/USDT"}, {"$set": {"score": 0.1, "version": 2,
                                                    UPDATED_AT_FIELD: datetime.now(UTC)}})
    logic.bot_loop_start(PAIRS, T0 + N0 * H + timedelta(seconds=25))
    frames = {p: run_hooks(logic, candles[p], p) for p in PAIRS}
    assert logic.decisions == len(PAIRS) + 1
    assert frames["ETH/USDT"]["enter_long"].iloc[-1] == 0
    assert frames["ETH/USDT"]["exit_long"].iloc[-1] == 1
    assert frames["ETH/USDT"]["exit_tag"].iloc[-1] == "ext:model:v2"
    assert frames["BTC/USDT"]["enter_long"].iloc[-1] == 1


@contextmanager
def stamped_signal_and_counted_finds(
        mongo_uri: str, mongo_db, stamp: datetime, overlap_seconds: float,
) -> Iterator[tuple[ExternalSignalLogic, list[dict]]]:
    """One signal stamped ``stamp`` on the last closed candle, and a live logic (watermark
    overlap ``overlap_seconds``) whose client records every find: yields (logic, finds)."""
    from pymongo import MongoClient
    from strategy_helpers import FindCounter

    with_indexes(mongo_db).insert_one({
        "strategy_id": "model", "pair": "BTC/USDT", "timeframe": "1h", "ts": T0 + (N0 - 1) * H,
        "score": 0.9, "version": 1, UPDATED_AT_FIELD: stamp})
    listener = FindCounter()
    client = MongoClient(mongo_uri, tz_aware=True, event_listeners=[listener])
    try:
        yield ExternalSignalLogic(
            {"timeframe": "1h", "ext_signals": {"strategy_ids": IDS,
                                                "watermark_overlap_seconds": overlap_seconds}},
            live=True, client=client, env={"EXT_SIG_MONGO_URI": mongo_uri,
                                           "EXT_SIG_DB": mongo_db.name}), listener.finds
    finally:
        client.close()


def test_change_query_asks_for_recent_stamps_only(mongo_uri, mongo_db):
    """The steady-state find asks for the documents stamped since the watermark (the newest
    stamp seen, minus the overlap); the first loop of a candle reads the window."""
    stamp = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with stamped_signal_and_counted_finds(mongo_uri, mongo_db, stamp, 30) as (logic, finds):
        for now in (T0 + N0 * H + timedelta(seconds=5), T0 + N0 * H + timedelta(seconds=10),
                    T0 + (N0 + 1) * H + timedelta(seconds=5)):
            logic.bot_loop_start(PAIRS, now)
    first, second, third = (f["filter"] for f in finds)
    assert UPDATED_AT_FIELD not in first and UPDATED_AT_FIELD not in third  # full reads
    assert second[UPDATED_AT_FIELD] == {"$gte": stamp - timedelta(seconds=30)}
    assert "pair" not in second and second["ts"]["$gte"] >= first["ts"]["$gte"]


def test_full_reads_every_loop_without_the_index_or_with_unstamped_documents(
        mongo_uri, mongo_db, caplog):
    """Either would make the change query miss documents or walk the window: the bot keeps
    reading the whole window every loop (as before) and says why, once."""
    import logging

    coll = mongo_db["crypto_signals"]
    ensure_signal_indexes(coll)
    coll.drop_index(SIGNAL_CHANGES_INDEX)  # a store prepared before the change index existed
    last_row = T0 + (N0 - 1) * H
    coll.insert_one({"strategy_id": "model", "pair": "BTC/USDT", "timeframe": "1h",
                     "ts": last_row, "score": 0.9, "version": 1,
                     UPDATED_AT_FIELD: datetime.now(UTC)})
    logic = make_logic(mongo_uri, mongo_db.name, True, {})
    with caplog.at_level(logging.INFO, logger="signal_export.consumer.source"):
        for s in (5, 10):
            logic.bot_loop_start(PAIRS, T0 + N0 * H + timedelta(seconds=s))
        assert logic.source.full_reads == 2 and logic.source.delta_reads == 0
        ensure_signal_indexes(coll)  # the upgrade creates it
        coll.insert_one({"strategy_id": "model", "pair": "ETH/USDT", "timeframe": "1h",
                         "ts": last_row, "score": 0.9, "version": 1})  # another tool: no stamp
        for s in (5, 10, 15):  # next candle: the index is found, the unstamped document too
            logic.bot_loop_start(PAIRS, T0 + (N0 + 1) * H + timedelta(seconds=s))
        assert logic.source.full_reads == 5 and logic.source.delta_reads == 0
        coll.update_one({"pair": "ETH/USDT"}, {"$set": {UPDATED_AT_FIELD: datetime.now(UTC)}})
        for s in (5, 10):  # everything stamped: change reads after the candle's full read
            logic.bot_loop_start(PAIRS, T0 + (N0 + 2) * H + timedelta(seconds=s))
        assert logic.source.full_reads == 6 and logic.source.delta_reads == 1
    lines = [r.getMessage() for r in caplog.records]
    assert sum("no index" in line for line in lines) == 1
    assert sum("have no date updated_at" in line and "strategy model" in line
               for line in lines) == 1


def test_change_query_drops_the_overlap_once_the_watermark_settled(mongo_uri, mongo_db):
    """A quiet steady state re-reads nothing: after the overlap, only newer stamps."""
    import time

    stamp = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with stamped_signal_and_counted_finds(mongo_uri, mongo_db, stamp, 0.5) as (logic, finds):
        logic.bot_loop_start(PAIRS, T0 + N0 * H + timedelta(seconds=5))
        time.sleep(0.6)
        logic.bot_loop_start(PAIRS, T0 + N0 * H + timedelta(seconds=10))
    assert finds[-1]["filter"][UPDATED_AT_FIELD] == {"$gt": stamp}
