"""Fault injection: server crashes, dropped connections, slow and hung servers.

The exporter must end with exactly the intended stored set (0 lost, 0 duplicated)
and an audit record that says what happened; the strategy's read path must never
raise, open nothing while signals are unknown, and recover by itself. Tests that
kill a server run their own (``own_server``); the others put a
:class:`devservers.faults.FaultProxy` in front of the session server.

Already covered elsewhere, not repeated: kill between batches / in flight with a
fresh collection (tests/signal_export/test_exporter_retry.py), server stopped
during a real ``freqtrade trade --dry-run`` (tests/strategy/test_dry_run_replay.py)
and in-process (tests/strategy/test_live_path.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pymongo
import pytest
from strategy_helpers import constructed_candles

from devservers.faults import FaultProxy
from signal_export.consumer.logic import ExternalSignalLogic
from signal_export.exporter import RetryPolicy, export_signals
from signal_export.store import connect, ensure_runs_indexes, ensure_signal_indexes

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
PAIRS = [f"C{i:03d}/USDT" for i in range(60)]
H = timedelta(hours=1)


def frame(n_minutes: int, version: int = 1, score_shift: float = 0.0,
          strategy: str = "fault") -> pd.DataFrame:
    minutes = np.repeat(np.arange(n_minutes), len(PAIRS))
    return pd.DataFrame({
        "ts": pd.Timestamp(T0) + pd.to_timedelta(minutes, unit="min"),
        "timeframe": "1m", "pair": np.tile(PAIRS, n_minutes), "strategy_id": strategy,
        "score": minutes.astype(float) + score_shift, "version": version})


def intended_batch() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(already stored, to export): the export inserts, updates, skips unchanged and stale
    documents, and rejects a few bad rows, all in one run."""
    before = frame(150)                                   # 9,000 stored
    after = frame(200)                                    # 12,000: 3,000 new keys
    after.loc[after.index % 3 == 0, "score"] += 0.5       # a third changed (version 1 = equal)
    stale = after.index % 7 == 1
    after.loc[stale, "version"] = 1
    before.loc[before.index % 7 == 1, "version"] = 2      # stored higher: stale_version
    after.loc[[5, 6007], "score"] = np.inf                # rejected by name
    return before, after


def stored_state(coll) -> list[tuple]:
    return sorted((d["strategy_id"], d["pair"], d["ts"], d["version"], d["score"])
                  for d in coll.find({}, {"_id": 0, "strategy_id": 1, "pair": 1, "ts": 1,
                                          "version": 1, "score": 1}))


def test_kill_9_mid_export_with_mixed_changes_ends_exact_and_audited(own_server):
    client = connect(own_server.uri, timeout_ms=2000)
    coll, runs = client.f.crypto_signals, client.f.export_runs
    ref = client.ref.crypto_signals
    for c in (coll, ref):
        ensure_signal_indexes(c)
    ensure_runs_indexes(runs)
    before, after = intended_batch()
    export_signals(before, coll, now=NOW)
    export_signals(before, ref, now=NOW)
    expected = export_signals(after, ref, now=NOW)  # the same run without a fault
    restarted = threading.Event()

    def crash_during_second_batch(n, _result):
        if n == 1:
            def crash_and_restart():
                own_server.kill()
                time.sleep(2.5)  # longer than server selection: pymongo cannot hide it
                own_server.restart()
                restarted.set()

            threading.Timer(0.05, crash_and_restart).start()

    try:
        result = export_signals(after, coll, runs_collection=runs, now=NOW, batch_size=2000,
                                on_batch=crash_during_second_batch,
                                retry=RetryPolicy(max_retries=8, base_s=0.2, max_s=2.0))
    finally:
        restarted.wait(15)  # never leave a restart pending past the fixture's teardown
    assert restarted.is_set()
    assert result.retries >= 1
    same = {"retries": 0, "batches": 0}
    assert result.counts() | same == expected.counts() | same
    assert (result.inserted, result.rejected) == (3000, 2)  # both bad rows are stored keys
    assert result.stale_version > 0 and result.updated > 0 and result.unchanged > 0
    assert stored_state(coll) == stored_state(ref)          # 0 lost, 0 duplicated
    assert coll.count_documents({}) == ref.count_documents({}) == 12000
    audit = runs.find_one({"run_id": result.run_id})
    assert audit["status"] == "partial" and audit["counts"] == result.counts()
    assert audit["counts"]["retries"] >= 1 and audit["error_count"] == 2
    assert sorted(e["index"] for e in audit["errors"]) == [5, 6007]
    client.close()


@pytest.fixture
def proxy(mongo_uri):
    with FaultProxy.for_uri(mongo_uri) as p:
        yield p


@pytest.fixture
def proxied(proxy, mongo_client):
    name = f"fault_{uuid.uuid4().hex[:10]}"
    client = connect(proxy.uri, timeout_ms=1000)
    coll, runs = client[name].crypto_signals, client[name].export_runs
    ensure_signal_indexes(coll)
    ensure_runs_indexes(runs)
    yield coll, runs, mongo_client[name].crypto_signals
    client.close()
    mongo_client.drop_database(name)


def test_connections_dropped_and_refused_mid_export_end_exact(proxy, proxied):
    coll, runs, direct = proxied
    data = frame(100)  # 6,000 documents in 6 batches

    def cut_after_first_batch(n, _result):
        if n == 1:
            proxy.refuse(True)
            proxy.drop_connections()
            threading.Timer(2.0, proxy.refuse, args=(False,)).start()

    result = export_signals(data, coll, runs_collection=runs, now=NOW, batch_size=1000,
                            on_batch=cut_after_first_batch,
                            retry=RetryPolicy(max_retries=8, base_s=0.2, max_s=1.0))
    assert proxy.dropped >= 1 and result.retries >= 1
    assert (result.inserted, result.failed, result.status) == (6000, 0, "ok")
    assert direct.count_documents({}) == 6000
    assert len({(d["pair"], d["ts"]) for d in direct.find({}, {"pair": 1, "ts": 1})}) == 6000
    assert runs.find_one({"run_id": result.run_id})["counts"]["retries"] == result.retries


def test_slow_server_export_completes_exact(proxy, proxied):
    coll, _runs, direct = proxied
    proxy.set_latency(0.02)
    data = frame(10)
    result = export_signals(data, coll, now=NOW, batch_size=300)
    assert (result.inserted, result.failed, result.retries) == (600, 0, 0)
    assert direct.count_documents({}) == 600


# --- the strategy's read path ------------------------------------------------------------

LIVE_PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
ROW = T0 + 7 * H
LOOP_NOW = ROW + H + timedelta(seconds=5)


def read_logic(uri: str, db: str, messages: list[str]) -> ExternalSignalLogic:
    ft_config = {"timeframe": "1h", "ext_signals": {
        "strategy_ids": ["fault"], "server_selection_timeout_ms": 1000,
        "socket_timeout_ms": 1500, "connect_timeout_ms": 1000}}
    return ExternalSignalLogic(ft_config, live=True, notify=messages.append,
                               env={"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": db})


def loop(logic: ExternalSignalLogic) -> dict[str, int]:
    """One bot loop; enters per pair on the last row; never raises."""
    logic.bot_loop_start(LIVE_PAIRS, LOOP_NOW)
    out = {}
    for pair in LIVE_PAIRS:
        candles = constructed_candles(pair, str(T0), 8)
        out[pair] = int(logic.populate(candles, pair, LIVE_PAIRS)["ext_enter_long"].iloc[-1])
    return out


def test_read_path_survives_slow_hung_and_cut_connections(proxy, proxied, caplog):
    coll, _runs, _direct = proxied
    export_signals([{"ts": ROW, "timeframe": "1h", "pair": "BTC/USDT", "strategy_id": "fault",
                     "action": "enter_long"}], coll, now=NOW)
    messages: list[str] = []
    logic = read_logic(proxy.uri, coll.database.name, messages)
    healthy = {"BTC/USDT": 1, "ETH/USDT": 0, "SOL/USDT": 0}
    unknown = {"BTC/USDT": 0, "ETH/USDT": 0, "SOL/USDT": 0}
    with caplog.at_level(logging.WARNING):
        assert loop(logic) == healthy
        proxy.set_latency(0.1)                      # slow, round trip inside all timeouts
        assert loop(logic) == healthy and logic.source.available
        proxy.set_latency(3.0)                      # slower than the socket timeout
        started = time.monotonic()
        assert loop(logic) == unknown and not logic.source.available
        assert time.monotonic() - started < 20      # bounded by the timeouts, not hung
        proxy.heal()
        proxy.pause()                               # hung server: sockets open, no bytes
        for _ in range(3):
            assert loop(logic) == unknown
        proxy.resume()
        recovered = [loop(logic) for _ in range(3)]
        assert recovered[-1] == healthy and logic.source.available
        proxy.drop_connections()                    # cut between loops: pymongo reconnects
        results = [loop(logic) for _ in range(3)]
        assert results[-1] == healthy
    outages = [m for m in messages if "unreachable" in m]
    recoveries = [m for m in messages if "reachable again" in m]
    assert len(recoveries) == len(outages) >= 1     # every outage announced once, and its end
    warnings = [r for r in caplog.records if "signal store unreachable" in r.getMessage()]
    assert len(warnings) == len(outages)
    logic.source.close()


def test_read_path_while_the_server_is_refusing_opens_nothing_then_recovers(proxy, proxied):
    coll, _runs, _direct = proxied
    export_signals([{"ts": ROW, "timeframe": "1h", "pair": "ETH/USDT", "strategy_id": "fault",
                     "action": "enter_long"}], coll, now=NOW)
    messages: list[str] = []
    logic = read_logic(proxy.uri, coll.database.name, messages)
    proxy.refuse(True)
    proxy.drop_connections()
    down = [loop(logic) for _ in range(4)]
    assert all(sum(d.values()) == 0 for d in down)
    assert len(messages) == 1 and "unreachable" in messages[0]
    proxy.refuse(False)
    deadline = time.monotonic() + 10
    while not logic.source.available and time.monotonic() < deadline:
        loop(logic)
    assert loop(logic) == {"BTC/USDT": 0, "ETH/USDT": 1, "SOL/USDT": 0}
    assert messages[-1].startswith("ExternalSignalStrategy: signal store reachable again")
    logic.source.close()


def test_pymongo_client_through_the_proxy_sees_the_same_data(proxy, mongo_client):
    """The proxy itself is transparent when healthy (guards the tool the tests rely on)."""
    name = f"fault_{uuid.uuid4().hex[:10]}"
    mongo_client[name].x.insert_many([{"i": i, "blob": "x" * 1000} for i in range(500)])
    with pymongo.MongoClient(proxy.uri, serverSelectionTimeoutMS=2000) as client:
        assert [d["i"] for d in client[name].x.find().sort("i", 1)] == list(range(500))
    mongo_client.drop_database(name)
