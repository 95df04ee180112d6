"""One monitor cycle against real MongoDB and a local Freqtrade REST stand-in: health, lag,
execution checks, reconciliation, alerts, write-back, metrics and the status table."""

from __future__ import annotations

import pytest
from fake_freqtrade import PASSWORD, USER, fake_freqtrade, new_state
from fakes import FakeClock, RecordingChannel
from monitoring_data import MIN, T0, ft_order, ft_trade

from signal_export.contract import EXPORT_RUNS_COLLECTION, SIGNALS_COLLECTION
from signal_export.exporter import export_signals
from signal_export.monitoring.cli import status_table
from signal_export.monitoring.config import parse_monitor_config
from signal_export.monitoring.freqtrade_api import FreqtradeApi, FreqtradeApiError
from signal_export.monitoring.manager import AlertManager
from signal_export.monitoring.metrics import MonitorMetrics
from signal_export.monitoring.monitor import Monitor
from signal_export.monitoring.writeback import POSITIONS_COLLECTION, TRADES_COLLECTION
from signal_export.settings import Settings


def _signals(db):
    rows = [("BTC/USDT", T0, "enter_long", 1.0), ("BTC/USDT", T0 + 5 * MIN, "exit_long", 0.0),
            ("ETH/USDT", T0, "enter_long", 1.0)]
    docs = [{"strategy_id": "alpha", "pair": p, "timeframe": "1m", "ts": ts, "action": a,
             "weight": w, "extra": {"ref_price": 100.0}} for p, ts, a, w in rows]
    res = export_signals(docs, db[SIGNALS_COLLECTION], runs_collection=db[EXPORT_RUNS_COLLECTION],
                         now=T0 + 10 * MIN)
    assert res.inserted == 3


def _bot_state():
    state = new_state()
    rejected = [ft_order("SOL/USDT", T0 + i * MIN, "canceled") for i in range(3)]
    state["trades"] = [
        ft_trade(1, "BTC/USDT", T0 + MIN, close_at=T0 + 6 * MIN, open_rate=101.0,
                 close_rate=101.0),
        ft_trade(3, "XRP/USDT", T0 + 2 * MIN, tag="force_entry"),
        ft_trade(4, "SOL/USDT", T0 + 3 * MIN, tag="ext:beta:v2:w0.5", orders=rejected),
    ]
    state["balance"]["currencies"][0]["free"] = 10.0
    state["logs"] = [["2026-03-02 12:01:00", (T0 + MIN).timestamp() * 1000, "freqtrade.exchange",
                      "WARNING", "binance 429 Too Many Requests: rate limit exceeded"]]
    return state


@pytest.fixture
def monitor_setup(mongo_client, mongo_db, monkeypatch):
    monkeypatch.setenv("TEST_FT_PASSWORD", PASSWORD)
    _signals(mongo_db)
    state = _bot_state()
    with fake_freqtrade(state) as url:
        config = parse_monitor_config({
            "strategies": [{"strategy_id": "alpha", "timeframe": "1m",
                            "pairs": ["BTC/USDT", "ETH/USDT"]}],
            "bots": [{"name": "bot1", "url": url, "username": USER,
                      "password_env": "TEST_FT_PASSWORD"}],
            "thresholds": {"min_balance": 50, "consecutive_rejections": 3},
            "alerts": {"history_collection": "monitor_alerts"}})
        clock = FakeClock(T0 + 30 * MIN)
        rec = RecordingChannel()
        settings = Settings(db=mongo_db.name)
        monitor = Monitor(config, mongo_client, settings, clock=clock,
                          manager=AlertManager([rec], clock=clock,
                                               history=mongo_db["monitor_alerts"]))
        yield monitor, rec, state, clock, mongo_db


def _firing(snap):
    return {(str(c.rule), c.strategy_id, c.pair, c.subject) for c in snap.conditions if c.firing}


def test_one_cycle_reports_every_problem_with_strategy_pair_and_bot(monitor_setup):
    monitor, rec, _state, _clock, db = monitor_setup
    snap = monitor.cycle()
    firing = _firing(snap)
    assert ("missing_signals", "alpha", "ETH/USDT", None) in firing
    assert ("reconciliation", "alpha", "ETH/USDT", None) in firing  # the missed enter
    assert ("reconciliation", None, "XRP/USDT", None) in firing  # the extra force entry
    assert ("consecutive_rejections", None, "SOL/USDT", "bot1") in firing
    assert ("low_balance", None, None, "bot1") in firing
    assert ("rate_limit", None, None, "bot1") in firing
    assert ("slippage", "alpha", "BTC/USDT", "enter") in firing  # 101 vs ref 100: 100 bps > 50
    assert not any(r == "bot_down" for r, *_ in firing)
    assert not any(r == "mongo_down" for r, *_ in firing)
    kinds = snap.outcomes.set_index(["pair", "side"])["kind"].to_dict()
    assert kinds[("BTC/USDT", "enter")] == "matched" and kinds[("BTC/USDT", "exit")] == "matched"
    assert kinds[("ETH/USDT", "enter")] == "missed" and kinds[("XRP/USDT", "enter")] == "extra"
    assert {a.condition.rule for a in snap.alerts} >= {"missing_signals", "low_balance"}
    assert len(rec.sent) == 1 and rec.sent[0] is snap.notification  # one grouped message
    assert len(snap.notification.alerts) == len(snap.alerts) >= 7
    assert db["monitor_alerts"].count_documents({"status": "firing"}) == len(snap.alerts)
    assert snap.exporter is not None and snap.exporter.runs == 1 and snap.exporter.ok == 1


def test_write_back_is_idempotent_and_keeps_the_signal_of_each_trade(monitor_setup):
    monitor, _rec, state, clock, db = monitor_setup
    first = monitor.cycle().bots[0].writeback
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    clock.advance(60)
    again = monitor.cycle().bots[0].writeback
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert db[TRADES_COLLECTION].count_documents({"bot": "bot1"}) == 3
    sol = db[TRADES_COLLECTION].find_one({"bot": "bot1", "trade_id": 4})
    assert sol["signal"] == {"strategy_id": "beta", "version": 2, "weight": 0.5,
                             "tag": "ext:beta:v2:w0.5"}
    assert db[TRADES_COLLECTION].find_one({"trade_id": 3})["signal"] is None
    assert [d["trade_id"] for d in db[POSITIONS_COLLECTION].find({"bot": "bot1"})] == [3, 4] or \
        sorted(d["trade_id"] for d in db[POSITIONS_COLLECTION].find()) == [3, 4]
    # trade 4 closes: updated once, and leaves the positions collection
    state["trades"][2] = ft_trade(4, "SOL/USDT", T0 + 3 * MIN, close_at=T0 + 31 * MIN,
                                  tag="ext:beta:v2:w0.5", close_rate=99.0)
    clock.advance(60)
    closed = monitor.cycle().bots[0].writeback
    assert (closed.inserted, closed.updated, closed.unchanged) == (0, 1, 2)
    assert closed.positions_closed == 1
    assert sorted(d["trade_id"] for d in db[POSITIONS_COLLECTION].find()) == [3]
    assert db[TRADES_COLLECTION].find_one({"trade_id": 4})["is_open"] is False


def test_status_table_and_metrics_show_lag_per_strategy_and_pair(monitor_setup):
    monitor, *_ = monitor_setup
    snap = monitor.cycle()
    table = status_table(snap)
    assert "mongo up" in table and "bot bot1: up state running open trades 2" in table
    rows = {tuple(line.split()[:2]): line.split() for line in table.splitlines()}
    assert rows[("alpha", "BTC/USDT")][2:6] == ["1m", "1440.0", "2026-03-02", "12:05:00"]
    assert rows[("alpha", "ETH/USDT")][2:4] == ["1m", "1740.0"]
    assert "firing:" in table and "missing_signals=2" in table
    metrics = MonitorMetrics()
    metrics.update(snap)
    text = metrics.render().decode()
    assert ('signal_bridge_signal_lag_seconds{pair="ETH/USDT",strategy_id="alpha",'
            'timeframe="1m"} 1740.0') in text
    assert 'signal_bridge_bot_free_balance{bot="bot1",currency="USDT"} 10.0' in text
    assert "signal_bridge_mongo_up 1.0" in text
    assert "signal_bridge_mongo_ping_seconds_count 1.0" in text
    assert 'signal_bridge_reconciliation_outcomes{kind="missed",strategy_id="alpha"} 1.0' in text


def test_an_unreachable_bot_fires_bot_down_and_the_cycle_goes_on(monitor_setup):
    monitor, rec, *_ = monitor_setup
    monitor.apis = {"bot1": FreqtradeApi("bot1", "http://127.0.0.1:1", USER, PASSWORD,
                                         timeout_s=1)}
    snap = monitor.cycle()
    assert ("bot_down", None, None, "bot1") in _firing(snap)
    assert ("missing_signals", "alpha", "ETH/USDT", None) in _firing(snap)
    down = next(a for a in snap.alerts if a.condition.rule == "bot_down")
    text = rec.sent[-1].message()
    assert "- bot_down bot1 [critical]: bot bot1: show_config unreachable at " \
           "http://127.0.0.1:1" in text, text
    assert "bot bot1: bot bot1" not in text and PASSWORD not in down.message()


def test_wrong_freqtrade_password_is_a_clear_error(monitor_setup):
    monitor, *_ = monitor_setup
    url = monitor.config.bots[0].url
    with pytest.raises(FreqtradeApiError, match="bot1: show_config: Unauthorized"):
        FreqtradeApi("bot1", url, USER, "wrong-password").state()


def test_an_export_that_died_running_fires_export_stalled_until_it_is_finalised(monitor_setup):
    """A ``running`` audit record older than its budget means the exporter died (kill -9)."""
    monitor, _rec, _state, clock, db = monitor_setup
    runs = db[EXPORT_RUNS_COLLECTION]
    runs.insert_one({"run_id": "dead-run", "status": "running", "started_at": T0 + 5 * MIN,
                     "strategy_ids": ["alpha"]})
    runs.insert_one({"run_id": "young-run", "status": "running", "started_at": T0 + 29 * MIN,
                     "strategy_ids": ["alpha"]})
    th = monitor.config.thresholds.model_copy(update={"export_running_max_seconds": 600.0})
    monitor.config = monitor.config.model_copy(update={"thresholds": th})

    def stalled(snap):
        [cond] = [c for c in snap.conditions if c.rule == "export_stalled"]
        return cond

    cond = stalled(monitor.cycle())  # the clock is at T0 + 30 min
    assert cond.firing and cond.value == 25 * 60 and "dead-run" in cond.detail
    assert "young-run" not in cond.detail
    runs.update_one({"run_id": "dead-run"}, {"$set": {"status": "interrupted"}})
    clock.advance(60)
    assert not stalled(monitor.cycle()).firing
