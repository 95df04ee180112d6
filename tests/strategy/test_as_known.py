"""``ext_signals.signal_view: as_known``: a backtest trades the versions the live bot saw.

The store is written by the real exporter (``export_signals``: ``available_at`` from the
server's clock, replaced versions archived in ``crypto_signals_history``). The "live
period" is simulated by moving each first version's ``available_at`` to a few minutes
after its candle closed (the exporter cannot be run in the past); a late signal gets one
after its decision window. The oracle is a second database holding only what live saw
(first versions, no late signals): ``as_known`` on the revised store must trade exactly
like ``latest`` on it, and ``latest`` on the revised store differs on the revised rows only.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pandas as pd
import pytest
from pymongo import UpdateOne
from strategy_helpers import constructed_candles

from signal_export.consumer.logic import ExternalSignalLogic, apply_entry, apply_exit
from signal_export.exporter import export_signals
from signal_export.point_in_time import AVAILABLE_AT_FIELD
from signal_export.store import ensure_signal_indexes

H = timedelta(hours=1)
PAIRS = ("BTC/USDT", "ETH/USDT")
N_BARS = 48
START = "2026-01-01"
T0 = pd.Timestamp(START, tz="UTC")
REVISED = (20, 22, 28, 30)  # BTC bars re-exported with version 2 after the live period
LATE = ((PAIRS[1], 41, "enter_long"), (PAIRS[1], 45, "exit_long"))  # visible too late


def first_versions() -> pd.DataFrame:
    """Per pair: an enter every 4 bars, an exit 2 bars later (bars 0..35)."""
    rows = []
    for pair in PAIRS:
        for bar in range(0, 36):
            if bar % 4 in (0, 2):
                rows.append({"strategy_id": "m", "pair": pair, "timeframe": "1h",
                             "ts": T0 + bar * H, "version": 1,
                             "action": "enter_long" if bar % 4 == 0 else "exit_long"})
    return pd.DataFrame(rows)


def revision(bars: tuple[int, ...] = REVISED) -> pd.DataFrame:
    """The retrained model's view of the revised bars: no conviction (a score in the
    no-action band), so two round trips of the first model disappear."""
    return pd.DataFrame([{"strategy_id": "m", "pair": PAIRS[0], "timeframe": "1h",
                          "ts": T0 + bar * H, "version": 2, "score": 0.5} for bar in bars])


def _available(coll, delay: timedelta, flt: dict | None = None) -> None:
    """Simulated live timing: each stored version visible ``delay`` after its candle closed."""
    ops = [UpdateOne({"_id": d["_id"]}, {"$set": {AVAILABLE_AT_FIELD: d["ts"] + H + delay}})
           for d in coll.find(flt or {}, {"ts": 1})]
    if ops:
        coll.bulk_write(ops)


def live_store(db, *, late: bool) -> None:
    coll = db["crypto_signals"]
    ensure_signal_indexes(coll)
    export_signals(first_versions(), coll)
    _available(coll, timedelta(minutes=5))  # on time: a few minutes after the close
    if late:
        late_rows = pd.DataFrame([{"strategy_id": "m", "pair": p, "timeframe": "1h",
                                   "ts": T0 + bar * H, "version": 1, "action": a}
                                  for p, bar, a in LATE])
        export_signals(late_rows, coll)
        # visible 3 h after the close: the bot had moved on two candles
        _available(coll, timedelta(hours=3), {"ts": {"$in": list(late_rows["ts"])},
                                              "pair": PAIRS[1]})


def revised_store(db) -> None:
    live_store(db, late=True)
    assert export_signals(revision(), db["crypto_signals"]).updated == len(revision())


def logic(uri: str, db: str, view: str) -> ExternalSignalLogic:
    ft_config = {"timeframe": "1h", "ext_signals": {"strategy_ids": ["m"], "signal_view": view}}
    return ExternalSignalLogic(ft_config, live=False,
                               env={"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": db})


def decided(uri: str, db: str, view: str, hidden: Counter | None = None
            ) -> dict[str, pd.DataFrame]:
    """The in-process backtest's decided frames (``hidden``: the source's count, filled)."""
    candles = {p: constructed_candles(p, START, N_BARS) for p in PAIRS}
    lg = logic(uri, db, view)
    out = {p: apply_exit(apply_entry(lg.populate(candles[p].copy(), p, PAIRS))) for p in PAIRS}
    assert lg.source.queries == 1
    if hidden is not None:
        hidden.update(lg.source.hidden)
    return out


@pytest.fixture
def dbs(mongo_client, mongo_db):
    """(revised store, what live saw, a store with nothing revised or late)."""
    names = [f"{mongo_db.name}_{s}" for s in ("saw", "plain")]
    revised_store(mongo_db)
    live_store(mongo_client[names[0]], late=False)
    live_store(mongo_client[names[1]], late=False)
    yield mongo_db.name, names[0], names[1]
    for name in names:
        mongo_client.drop_database(name)


COLS = ["enter_long", "exit_long", "enter_tag", "exit_tag"]


def test_as_known_trades_what_live_saw_and_latest_differs_on_the_revised_rows(mongo_uri, dbs):
    revised, saw, _ = dbs
    latest = decided(mongo_uri, revised, "latest")
    hidden: Counter = Counter()
    known = decided(mongo_uri, revised, "as_known", hidden)
    truth = decided(mongo_uri, saw, "latest")
    assert hidden == Counter({"m": len(LATE)})
    for pair in PAIRS:
        pd.testing.assert_frame_equal(known[pair][COLS], truth[pair][COLS])
        diff = (latest[pair][COLS].fillna("") != known[pair][COLS].fillna("")).any(axis=1)
        bars = set(((latest[pair].loc[diff, "date"] - T0) // H).tolist())
        if pair == PAIRS[0]:  # exactly the revised keys: latest trades the revision
            assert bars == set(REVISED)
            assert (latest[pair].loc[diff, ["enter_long", "exit_long"]] == 0).all().all()
            enters = known[pair].loc[diff & (known[pair]["enter_long"] == 1), "enter_tag"]
            assert set(enters) == {"ext:m:v1"} and len(enters) == 2
        else:  # the late signals: latest acts on them, as_known as live did not
            assert bars == {bar for _, bar, _ in LATE}
            assert latest[pair].loc[latest[pair]["date"] == T0 + 41 * H, "enter_long"].item() == 1
            assert known[pair].loc[known[pair]["date"] == T0 + 41 * H, "enter_long"].item() == 0


def test_nothing_revised_or_late_gives_identical_results(mongo_uri, dbs):
    _, _, plain = dbs
    latest = decided(mongo_uri, plain, "latest")
    known = decided(mongo_uri, plain, "as_known")
    for pair in PAIRS:
        pd.testing.assert_frame_equal(known[pair], latest[pair])
        assert latest[pair]["enter_long"].sum() > 0 and latest[pair]["exit_long"].sum() > 0


def test_a_late_version_of_a_known_key_is_not_used(mongo_uri, mongo_db):
    """A revision visible inside the decision window is used; one visible after it is not."""
    live_store(mongo_db, late=False)
    coll = mongo_db["crypto_signals"]
    export_signals(revision((20, 22)), coll)
    # bar 22's revision: visible 10 minutes after that candle closed (inside the window)
    coll.update_one({"pair": PAIRS[0], "ts": (T0 + 22 * H).to_pydatetime()},
                    {"$set": {AVAILABLE_AT_FIELD: T0 + 23 * H + timedelta(minutes=10)}})
    known = decided(mongo_uri, mongo_db.name, "as_known")[PAIRS[0]]
    latest = decided(mongo_uri, mongo_db.name, "latest")[PAIRS[0]]

    def at(frame: pd.DataFrame, bar: int) -> tuple:
        row = frame[frame["date"] == T0 + bar * H]
        tag = row["enter_tag"].item() if row["enter_long"].item() else None
        return row["enter_long"].item(), row["exit_long"].item(), tag

    assert at(known, 20) == (1, 0, "ext:m:v1")  # bar 20's revision came too late
    assert at(latest, 20) == (0, 0, None)
    assert at(known, 22)[:2] == at(latest, 22)[:2] == (0, 0)  # the revision, seen in time


def test_real_freqtrade_backtesting_as_known(run_backtest, tmp_path, dbs):
    """``freqtrade backtesting`` with the setting: as_known on the revised store trades what
    live saw; latest on it trades differently."""
    revised, saw, _ = dbs
    candles = {p: constructed_candles(p, START, N_BARS) for p in PAIRS}

    def trades(db: str, view: str) -> pd.DataFrame:
        t = run_backtest(db, candles, {"strategy_ids": ["m"], "signal_view": view},
                         timerange="20260101-20260103", results=tmp_path / f"bt-{db}-{view}")
        return t.sort_values(["pair", "open_date"]).reset_index(drop=True)[
            ["pair", "open_date", "close_date", "open_rate", "close_rate", "enter_tag"]]

    truth = trades(saw, "latest")
    known = trades(revised, "as_known")
    latest = trades(revised, "latest")
    assert len(truth) > 0
    pd.testing.assert_frame_equal(known, truth)
    assert not latest.equals(truth)


@pytest.mark.parametrize(("max_delay_bars", "late"), [
    (3, timedelta(hours=1) - timedelta(milliseconds=1)),  # until the next candle closes
    (0.5, timedelta(minutes=30)),  # stale earlier than that
])
def test_decision_deadline_follows_the_live_rule(max_delay_bars, late):
    """bar(ts) (an off-grid ts belongs to the next bar) + its close + how late live acts."""
    ft_config = {"timeframe": "1h", "ext_signals": {"strategy_ids": ["m"],
                                                    "max_delay_bars": max_delay_bars}}
    lg = ExternalSignalLogic(ft_config, live=False, env={})
    ts = pd.Series(pd.to_datetime(["2026-01-01 10:00", "2026-01-01 10:40"], utc=True))
    got = lg.source.decision_deadline(ts)
    want = pd.Series(pd.to_datetime(["2026-01-01 11:00", "2026-01-01 12:00"], utc=True)) + late
    assert got.tolist() == want.tolist()


def test_a_document_without_knowledge_time_is_left_out_with_a_warning(mongo_uri, mongo_db,
                                                                        caplog):
    live_store(mongo_db, late=False)
    mongo_db["crypto_signals"].insert_one({"strategy_id": "m", "pair": PAIRS[1],
                                           "timeframe": "1h", "ts": (T0 + 40 * H).to_pydatetime(),
                                           "action": "enter_long"})
    latest = decided(mongo_uri, mongo_db.name, "latest")[PAIRS[1]]
    with caplog.at_level("WARNING"):
        known = decided(mongo_uri, mongo_db.name, "as_known")[PAIRS[1]]
    row = (latest["date"] == T0 + 40 * H).to_numpy()
    assert latest.loc[row, "enter_long"].item() == 1 and known.loc[row, "enter_long"].item() == 0
    assert "1 signal document(s) have neither available_at nor updated_at" in caplog.text
