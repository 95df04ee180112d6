"""The futures risk fields (``leverage``, ``stop_loss``, ``take_profit``) travel with the one
signal read (``SignalSource(risk=True)``), against the MongoDB dev server over the wire:
every read route (backtest range, live full and incremental reads, ``as_known``) carries
them from the very document version it uses, values outside the contract drop the signal
(counted ``malformed``, warned once naming the field), and a poll stays one ``find``."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pymongo import UpdateOne

from signal_export.consumer.config import load_config
from signal_export.consumer.logic import ExternalSignalLogic, apply_entry
from signal_export.consumer.matching import match_signals
from signal_export.consumer.normalise import SIGNAL_COLUMNS
from signal_export.consumer.source import SignalSource
from signal_export.contract import RISK_FIELDS, UPDATED_AT_FIELD
from signal_export.exporter import export_signals
from signal_export.point_in_time import AVAILABLE_AT_FIELD
from signal_export.store import ensure_signal_indexes

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
PAIR = "BTC/USDT:USDT"
OTHER = "ETH/USDT:USDT"
PAIRS = (PAIR, OTHER)
N = 12  # bars of the backtest range
NOW = T0 + 10 * H + timedelta(seconds=30)  # the live window (9 bars) holds bars 2..9
BAD_REASONS = ("stop_loss not a number > 0 with stop_loss * leverage < 1",
               "take_profit not a number > 0 (< 1 on a short)",
               "leverage not a number in [1, 125]")


def doc(i: int, action: str, pair: str = PAIR, **risk) -> dict:
    """A stored signal of bar ``i``, stamped and visible as the exporter would leave it."""
    return {"pair": pair, "strategy_id": "fut", "timeframe": "1h", "ts": T0 + i * H,
            "action": action, "version": 1, UPDATED_AT_FIELD: datetime.now(UTC),
            AVAILABLE_AT_FIELD: T0 + (i + 1) * H + timedelta(minutes=5), **risk}


def good_docs(pair: str = PAIR) -> list[dict]:
    return [doc(3, "enter_short", pair, leverage=2.0, stop_loss=0.03, take_profit=0.05),
            doc(4, "exit_short", pair),
            doc(6, "enter_long", pair, leverage=3, take_profit=0.1),  # an int leverage
            doc(8, "enter_long", pair)]  # no risk field: NaN, the config's stop stands


def bad_docs() -> list[dict]:
    """One per reason (on PAIR only), each a signal that must not be traded without it."""
    return [doc(5, "enter_long", leverage=4.0, stop_loss=0.3),  # 0.3 x 4 >= 1: never fills
            doc(7, "enter_short", take_profit=1.5),  # a short cannot gain 150 %
            doc(9, "enter_long", leverage="3x", stop_loss=0.01)]  # not a number


def source(uri: str, db: str, *, live: bool, client=None, **settings) -> SignalSource:
    cfg = load_config({"timeframe": "1h", "ext_signals": {"strategy_ids": ["fut"], **settings}},
                      {"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": db})
    return SignalSource(cfg, client=client, live=live, risk=True)


def read(src: SignalSource, route: str) -> None:
    """One read of the route (the live ones at NOW; incremental: after a full read)."""
    if route in ("range", "as_known"):
        src.load_range(PAIRS, T0, T0 + N * H)
    else:
        assert src.refresh(PAIRS, NOW)


def risk_of(src: SignalSource, pair: str = PAIR) -> pd.DataFrame:
    frame = src.signals_for(pair)
    assert frame is not None
    return frame.set_index(frame["ts"].map(lambda t: (t - pd.Timestamp(T0)) // H))[
        ["action", *RISK_FIELDS]]


@pytest.mark.parametrize("route", ["range", "as_known", "full", "incremental"])
def test_every_read_route_carries_the_risk_fields_and_drops_bad_values(
        mongo_uri, mongo_db, caplog, route):
    coll = mongo_db["crypto_signals"]
    ensure_signal_indexes(coll)  # the incremental read needs the changes index
    view = {"signal_view": "as_known"} if route == "as_known" else {}
    src = source(mongo_uri, mongo_db.name, live=route in ("full", "incremental"), **view)
    coll.insert_many(good_docs(OTHER))
    if route == "incremental":  # the window's full read first; the rest arrives as changes
        read(src, route)
        assert src.full_reads == 1 and src.unusable == {}
    coll.insert_many(good_docs() + bad_docs())
    with caplog.at_level(logging.WARNING):
        read(src, route)
        read(src, route)  # warned once per reason, counted per read (not per use)
    if route == "incremental":
        assert src.full_reads == 1 and src.delta_reads == 2
    got = risk_of(src)
    assert got.index.tolist() == [3, 4, 6, 8]  # bars 5, 7 and 9 dropped whole
    assert got.loc[3, list(RISK_FIELDS)].tolist() == [2.0, 0.03, 0.05]
    assert got.loc[6, "leverage"] == 3.0 and np.isnan(got.loc[6, "stop_loss"])
    assert got.loc[[4, 8], list(RISK_FIELDS)].isna().all().all()
    assert src.signals_for(OTHER)[list(RISK_FIELDS)].notna().sum().tolist() == [2, 1, 2]
    assert src.read_counts == {PAIR: Counter(malformed=3)}
    assert src.unusable == {"fut": Counter(malformed=3)}
    for reason in BAD_REASONS:
        assert caplog.text.count(reason) == 1, reason


def test_latest_trades_the_newest_risk_values_as_known_the_ones_known_at_the_deadline(
        mongo_uri, mongo_db):
    """Bar 5's entry is revised after the live period (version 2: leverage 3, a wider stop,
    another target): ``latest`` carries the revision's values, ``as_known`` the first
    version's (live traded with those), each through the matcher onto the entry row."""
    coll = mongo_db["crypto_signals"]
    ensure_signal_indexes(coll)
    first = [{"strategy_id": "fut", "pair": PAIR, "timeframe": "1h", "ts": T0 + 5 * H,
              "version": 1, "action": "enter_long", "weight": 0.5, "leverage": 2.0,
              "stop_loss": 0.02, "take_profit": 0.04},
             {"strategy_id": "fut", "pair": PAIR, "timeframe": "1h", "ts": T0 + 8 * H,
              "version": 1, "action": "exit_long"}]
    assert export_signals(first, coll).errors == []
    coll.bulk_write([UpdateOne({"_id": d["_id"]}, {"$set": {
        AVAILABLE_AT_FIELD: d["ts"] + H + timedelta(minutes=5)}}) for d in coll.find()])
    revised = [{**first[0], "version": 2, "leverage": 3.0, "stop_loss": 0.05,
                "take_profit": 0.2}]
    assert export_signals(revised, coll).updated == 1  # v1 kept in the history collection
    assert mongo_db["crypto_signals_history"].count_documents({}) == 1

    candles = pd.DataFrame({"date": pd.date_range(T0, periods=N, freq="1h", tz="UTC")})
    seen = {}
    for view in ("latest", "as_known"):
        src = source(mongo_uri, mongo_db.name, live=False, signal_view=view)
        src.load_range(PAIRS, T0, T0 + (N - 1) * H)
        signals = src.signals_for(PAIR)
        entry = signals[signals["action"] == "enter_long"].iloc[0]
        seen[view] = (int(entry["version"]), *(float(entry[f]) for f in RISK_FIELDS))
        rules = src.cfg.to_rules()
        cols = match_signals(candles, signals, rules).frame
        row = cols.index[cols["enter_long"] == 1].item()
        assert [cols.loc[row, "ext_" + f] for f in RISK_FIELDS] == list(seen[view][1:])
    assert seen == {"latest": (2, 3.0, 0.05, 0.2), "as_known": (1, 2.0, 0.02, 0.04)}


def test_one_find_per_poll_carries_the_risk_fields(mongo_uri, mongo_db, counted_client):
    """Live: full read, then incremental reads; backtest: the range read. Every one is a
    single ``find`` asking for the risk fields with the decision's fields."""
    client, listener = counted_client
    coll = mongo_db["crypto_signals"]
    ensure_signal_indexes(coll)
    coll.insert_many(good_docs())
    src = source(mongo_uri, mongo_db.name, live=True, client=client)
    per_poll = []
    for loop in range(4):
        if loop == 2:  # only the stop changes between polls: read as a change
            coll.update_one({"pair": PAIR, "ts": T0 + 3 * H}, {"$set": {
                "stop_loss": 0.04, UPDATED_AT_FIELD: datetime.now(UTC)}})
        before = len(listener.finds)
        assert src.refresh(PAIRS, NOW + loop * timedelta(seconds=5))
        per_poll.append(len(listener.finds) - before)
    assert per_poll == [1, 1, 1, 1] and src.full_reads == 1 and src.delta_reads == 3
    assert all(set(RISK_FIELDS) <= set(f["projection"]) for f in listener.finds)
    assert risk_of(src).loc[3, "stop_loss"] == 0.04  # the change replaced the row

    before = len(listener.finds)
    backtest = source(mongo_uri, mongo_db.name, live=False, client=client)
    backtest.load_range(PAIRS, T0, T0 + N * H)
    assert len(listener.finds) - before == 1 and backtest.queries == 1
    assert risk_of(backtest).loc[3, "stop_loss"] == 0.04


def test_long_only_documents_read_as_before(mongo_uri, mongo_db):
    """Spot (``risk=False``): the frame of today, no risk columns; the futures read of the
    same long-only documents is that frame plus all-NaN risk columns."""
    coll = mongo_db["crypto_signals"]
    coll.insert_many([doc(i, "enter_long" if i % 2 else "exit_long", p)
                      for i in range(N) for p in PAIRS])
    cfg = source(mongo_uri, mongo_db.name, live=False).cfg
    spot = SignalSource(cfg, live=False)
    fut = SignalSource(cfg, live=False, risk=True)
    for src in (spot, fut):
        src.load_range(PAIRS, T0, T0 + N * H)
    for pair in PAIRS:
        a, b = spot.signals_for(pair), fut.signals_for(pair)
        assert list(a.columns) == list(SIGNAL_COLUMNS) and len(a) > 0
        pd.testing.assert_frame_equal(b[list(SIGNAL_COLUMNS)], a)
        assert b[list(RISK_FIELDS)].isna().all().all()
    spot.close()
    fut.close()


def test_the_futures_strategy_reads_once_per_loop_and_trades_the_stop(mongo_uri, mongo_db,
                                                                     counted_client):
    """``ExternalSignalLogic`` in futures mode: one ``find`` per bot loop (no second read
    for the risk fields), the entry row carries the signal's values, and a bad stop is
    counted ``malformed`` for its pair in the bot's counters."""
    client, listener = counted_client
    coll = mongo_db["crypto_signals"]
    ensure_signal_indexes(coll)
    coll.insert_many([doc(8, "enter_short", leverage=2.0, stop_loss=0.03, take_profit=0.05),
                      doc(9, "enter_long", OTHER, leverage=4.0, stop_loss=0.3)])
    lg = ExternalSignalLogic({"timeframe": "1h", "trading_mode": "futures",
                              "ext_signals": {"strategy_ids": ["fut"]}}, live=True,
                             client=client, env={"EXT_SIG_MONGO_URI": mongo_uri,
                                                 "EXT_SIG_DB": mongo_db.name})
    candles = pd.DataFrame({"date": pd.date_range(T0, periods=10, freq="1h", tz="UTC"),
                            **{c: 100.0 for c in ("open", "high", "low", "close")},
                            "volume": 1.0})
    for loop in range(3):
        before = len(listener.finds)
        lg.bot_loop_start(PAIRS, NOW + loop * timedelta(seconds=5))
        frames = {p: apply_entry(lg.populate(candles.copy(), p, PAIRS)) for p in PAIRS}
        assert len(listener.finds) - before == 1
    row = frames[PAIR].iloc[8]
    assert row["enter_short"] == 1
    assert [row["ext_" + f] for f in RISK_FIELDS] == [2.0, 0.03, 0.05]
    assert frames[OTHER]["enter_long"].sum() == 0  # its stop would lie beyond liquidation
    assert lg.stats.snapshot()["counts"][OTHER]["malformed"] == 1
