"""Each alert rule fires on a constructed situation, says what and where in readable numbers,
resolves when clear; the manager dedupes, inhibits the weaker of related alerts, and sends
one grouped notification per cycle."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pymongo
import pytest
from fakes import FakeClock, RecordingChannel
from monitoring_data import MIN, T0, ft_order, ft_trade

from signal_export.exporter import export_signals
from signal_export.monitoring import execution, rules
from signal_export.monitoring.alerts import Alert, Rule, Status, human_duration
from signal_export.monitoring.health import exporter_health, mongo_health
from signal_export.monitoring.lag import signal_lag
from signal_export.monitoring.manager import AlertManager


def _manager(clock, cooldown=600.0):
    rec = RecordingChannel()
    return AlertManager([rec], cooldown_seconds=cooldown, clock=clock), rec


def _fires_then_resolves(rule, firing_conditions, clear_conditions, clock):
    manager, rec = _manager(clock)
    sent = manager.process(firing_conditions)
    clock.advance(60)
    sent += manager.process(clear_conditions)
    mine = [a for a in sent if a.condition.rule is rule]
    assert [a.status for a in mine] == [Status.FIRING, Status.RESOLVED], sent
    assert len(rec.sent) == 2  # one notification per cycle
    return mine[0].message(), mine[1].message()


def _latest(ts_by_pair):
    return pd.DataFrame([{"strategy_id": "alpha", "pair": p, "timeframe": "1m", "ts": ts}
                         for p, ts in ts_by_pair.items()])


def test_missing_signals_fires_after_n_bars_and_for_pairs_never_seen():
    clock = FakeClock(T0 + 10 * MIN)
    now = clock()
    stale = signal_lag(_latest({"BTC/USDT": T0}), now, {("alpha", "1m"): ["BTC/USDT",
                                                                          "ETH/USDT"]})
    fresh = signal_lag(_latest({"BTC/USDT": now - MIN, "ETH/USDT": now - MIN}), now)
    assert stale.set_index("pair")["lag_s"].to_dict() == {"BTC/USDT": 540.0,
                                                          "ETH/USDT": float("inf")}
    fire, resolve = _fires_then_resolves(
        Rule.MISSING_SIGNALS,
        [c for c in rules.lag_conditions(stale, now, missing_bars=3) if c.pair == "BTC/USDT"],
        [c for c in rules.lag_conditions(fresh, now, missing_bars=3) if c.pair == "BTC/USDT"],
        clock)
    assert "[FIRING] missing_signals alpha BTC/USDT" in fire
    assert ("no 1m signal for BTC/USDT in 3 bars (newest signal: bar 2026-03-02 12:00 UTC, "
            "closed 9 min ago)") in fire
    assert "value 9 min, limit 3 min" in fire
    assert "[RESOLVED] missing_signals alpha BTC/USDT" in resolve
    never = [c for c in rules.lag_conditions(stale, now, missing_bars=3)
             if c.pair == "ETH/USDT"]
    assert all(c.firing for c in never)
    for c in never:
        text = Alert(c, Status.FIRING, now).message()
        assert "newest signal: never" in text and "value never" in text
        assert "inf" not in text


def test_lag_over_budget_fires_when_the_closed_bars_signal_is_later_than_half_a_bar():
    clock = FakeClock(T0 + 45 * timedelta(seconds=1))  # 45 s after the 11:59 bar closed
    now = clock()
    late = signal_lag(_latest({"BTC/USDT": T0 - 2 * MIN}), now)  # 11:59 bar missing
    on_time = signal_lag(_latest({"BTC/USDT": T0 - MIN}), now)
    assert late["lag_s"].iloc[0] == 105.0 and on_time["lag_s"].iloc[0] == 45.0
    lag_only = lambda conds: [c for c in conds if c.rule is Rule.LAG_OVER_BUDGET]  # noqa: E731
    fire, resolve = _fires_then_resolves(
        Rule.LAG_OVER_BUDGET, lag_only(rules.lag_conditions(late, now, missing_bars=3)),
        lag_only(rules.lag_conditions(on_time, now, missing_bars=3)), clock)
    assert "[FIRING] lag_over_budget alpha BTC/USDT" in fire
    assert "signal lag 1 min 45 s > one bar + export budget 30 s" in fire
    assert "value 1 min 45 s, limit 1 min 30 s" in fire
    assert "resolved after 1 min (firing since 2026-03-02 12:00:45 UTC)" in resolve


def _run(status="ok", latency=5.0, over=False, bar=T0):
    return {"job": "alpha_1m", "strategy_id": "alpha", "bar": bar, "finished_at": bar + MIN,
            "status": status, "latency_s": latency, "budget_s": 30.0, "over_budget": over,
            "error": None if status == "ok" else "ConnectionFailure: no primary"}


def test_export_job_failure_and_latency_fire_on_the_newest_run_and_resolve_on_the_next():
    clock = FakeClock(T0 + 2 * MIN)
    fire, resolve = _fires_then_resolves(
        Rule.EXPORT_FAILURE, rules.export_run_conditions([_run(bar=T0 - MIN),
                                                          _run("failed", bar=T0)]),
        rules.export_run_conditions([_run("failed", bar=T0), _run(bar=T0 + MIN)]), clock)
    assert "[FIRING] export_failure alpha alpha_1m" in fire
    assert "export job alpha_1m bar 2026-03-02T12:00:00+00:00: ConnectionFailure" in fire
    assert "value" not in fire  # an up/down rule: no numbers to read
    fire, _ = _fires_then_resolves(
        Rule.EXPORT_LATENCY, rules.export_run_conditions([_run(latency=41.5, over=True)]),
        rules.export_run_conditions([_run(latency=3.0, bar=T0 + MIN)]), clock)
    assert "took 41.500 s (budget 30.0 s)" in fire and "value 41.5 s, limit 30 s" in fire


def test_consecutive_rejections_count_only_the_newest_run_of_failures():
    clock = FakeClock(T0 + 10 * MIN)
    orders = [ft_order("BTC/USDT", T0, "closed"), ft_order("BTC/USDT", T0 + MIN, "canceled"),
              ft_order("BTC/USDT", T0 + 2 * MIN, "rejected"),
              ft_order("BTC/USDT", T0 + 3 * MIN, "expired"),
              ft_order("ETH/USDT", T0, "canceled"), ft_order("ETH/USDT", T0 + MIN, "closed")]
    frame = execution.orders_frame([ft_trade(1, "BTC/USDT", T0, orders=orders)])
    counts = execution.consecutive_failed_orders(frame)
    assert counts.to_dict() == {"BTC/USDT": 3, "ETH/USDT": 0}
    recovered = execution.orders_frame([ft_trade(1, "BTC/USDT", T0, orders=orders + [
        ft_order("BTC/USDT", T0 + 4 * MIN, "closed")])])
    fire, _ = _fires_then_resolves(
        Rule.CONSECUTIVE_REJECTIONS,
        execution.rejection_conditions(frame, clock(), 3, "bot1"),
        execution.rejection_conditions(recovered, clock(), 3, "bot1"), clock)
    assert "[FIRING] consecutive_rejections BTC/USDT bot1" in fire
    assert "3 consecutive orders cancelled/rejected on bot bot1" in fire
    assert "value 3, limit 3" in fire


def test_slippage_fires_when_the_fill_is_worse_than_the_reference_by_more_than_threshold():
    clock = FakeClock(T0 + 10 * MIN)
    bad = pd.DataFrame([{"strategy_id": "alpha", "pair": "BTC/USDT", "side": "enter",
                         "happened_at": T0 + MIN, "fill_price": 101.0, "ref_price": 100.0}])
    good = bad.assign(happened_at=T0 + 3 * MIN, fill_price=100.1)
    fire, _ = _fires_then_resolves(
        Rule.SLIPPAGE, execution.slippage_conditions(bad, clock(), 50.0),
        execution.slippage_conditions(pd.concat([bad, good]), clock(), 50.0), clock)
    assert "enter fill 101 vs signal reference 100: 100.0 bps" in fire
    assert "[FIRING] slippage alpha BTC/USDT enter" in fire
    assert "value 100.0 bps, limit 50.0 bps" in fire
    sells = execution.slippage_bps(pd.Series([99.0]).to_numpy(), pd.Series([100.0]).to_numpy(),
                                   pd.Series(["exit"]).to_numpy())
    assert sells[0] == 100.0  # selling below the reference is adverse too


def test_low_balance_fires_below_the_threshold():
    clock = FakeClock(T0)
    balance = {"currencies": [{"currency": "USDT", "free": 12.5, "balance": 20.0}]}
    assert execution.stake_balance(balance, "USDT") == 12.5
    fire, _ = _fires_then_resolves(
        Rule.LOW_BALANCE, [execution.balance_condition(12.5, "USDT", 50.0, clock(), "bot1")],
        [execution.balance_condition(80.0, "USDT", 50.0, clock(), "bot1")], clock)
    assert "free USDT balance 12.5 on bot bot1" in fire and "value 12.5, limit 50" in fire


def test_rate_limit_errors_in_the_bot_log_fire_and_resolve_when_no_new_ones_come():
    clock = FakeClock(T0)
    t = T0.timestamp() * 1000
    logs = {"logs": [
        ["2026-03-02 12:00:01", t + 1000, "freqtrade.exchange", "WARNING",
         "_get_ohlcv() returned exception: binance DDoSProtection 429 Too Many Requests"],
        ["2026-03-02 12:00:02", t + 2000, "freqtrade.worker", "INFO", "Bot heartbeat"]]}
    lines = execution.rate_limit_lines(logs)
    assert len(lines) == 1
    assert execution.rate_limit_lines(logs, since=lines[-1][0]) == []
    fire, _ = _fires_then_resolves(
        Rule.RATE_LIMIT, [execution.rate_limit_condition(lines, clock(), 1, "bot1")],
        [execution.rate_limit_condition([], clock(), 1, "bot1")], clock)
    assert "1 exchange rate-limit errors in bot bot1's log" in fire and "DDoSProtection" in fire


def test_mongo_down_fires_on_an_unreachable_server_and_resolves_on_a_reachable_one(mongo_client):
    clock = FakeClock(T0)
    dead = pymongo.MongoClient("mongodb://u:pw-not-logged@127.0.0.1:1",
                               serverSelectionTimeoutMS=200, connectTimeoutMS=200)
    try:
        down = mongo_health(dead)
    finally:
        dead.close()
    assert not down.reachable and mongo_health(mongo_client).reachable
    fire, resolve = _fires_then_resolves(
        Rule.MONGO_DOWN, [rules.mongo_condition(False, clock(), down.error)],
        [rules.mongo_condition(True, clock())], clock)
    assert "MongoDB unreachable" in fire and "pw-not-logged" not in fire
    assert "[RESOLVED] mongo_down" in resolve


def test_a_firing_alert_is_deduplicated_until_the_cooldown_passes():
    clock = FakeClock(T0)
    manager, rec = _manager(clock, cooldown=300)
    cond = execution.balance_condition(1.0, "USDT", 50.0, T0, "bot1")
    for _ in range(4):  # every 60 s: 0, 60, 120, 180 -> one message
        manager.process([cond])
        clock.advance(60)
    assert len(rec.sent) == 1
    clock.advance(120)  # 300 s since the first: re-sent once
    manager.process([cond])
    sent = [a for n in rec.sent for a in n.alerts]
    assert [a.repeat for a in sent] == [0, 1]
    manager.process([execution.balance_condition(99.0, "USDT", 50.0, T0, "bot1")])
    manager.process([execution.balance_condition(99.0, "USDT", 50.0, T0, "bot1")])
    sent = [a for n in rec.sent for a in n.alerts]
    assert [a.status for a in sent] == [Status.FIRING, Status.FIRING, Status.RESOLVED]


def _lag_pair(clock, lag_s, pair="BTC/USDT"):
    """Both lag rules for one pair on 1m with missing_bars=3: lag > 90 s is over budget,
    lag > 180 s is missing."""
    latest = _latest({pair: clock() - timedelta(seconds=lag_s) - MIN})
    return rules.lag_conditions(signal_lag(latest, clock()), clock(), missing_bars=3)


def _notified(rec):
    return [sorted((str(a.condition.rule), str(a.status)) for a in n.alerts) for n in rec.sent]


def test_missing_signals_inhibits_lag_over_budget_for_the_same_pair():
    """A pair without signals for 3 bars is also over its budget: one alert, the stronger."""
    clock = FakeClock(T0)
    manager, rec = _manager(clock)
    manager.process(_lag_pair(clock, 600))  # both fire at once
    assert _notified(rec) == [[("missing_signals", "firing")]]
    assert manager.firing_rules() == {"missing_signals": 1, "lag_over_budget": 1}
    clock.advance(60)
    manager.process(_lag_pair(clock, 120))  # back under 3 bars, still over budget
    assert _notified(rec)[1] == [("lag_over_budget", "firing"), ("missing_signals", "resolved")]
    clock.advance(60)
    manager.process(_lag_pair(clock, 30))
    assert _notified(rec)[2] == [("lag_over_budget", "resolved")]
    assert manager.active == {}


def test_an_inhibited_alert_that_was_never_notified_does_not_resolve_on_its_own():
    clock = FakeClock(T0)
    manager, rec = _manager(clock)
    manager.process(_lag_pair(clock, 120))  # over budget only: notified
    clock.advance(60)
    manager.process(_lag_pair(clock, 600))  # now missing too: lag is not repeated
    clock.advance(60)
    manager.process(_lag_pair(clock, 30))  # all clear: both were notified, both resolve
    assert _notified(rec) == [[("lag_over_budget", "firing")], [("missing_signals", "firing")],
                              [("lag_over_budget", "resolved"), ("missing_signals", "resolved")]]
    other = FakeClock(T0)
    manager, rec = _manager(other)
    manager.process(_lag_pair(other, 600))
    other.advance(60)
    manager.process(_lag_pair(other, 30))
    assert _notified(rec) == [[("missing_signals", "firing")], [("missing_signals", "resolved")]]


def test_inhibition_is_per_pair():
    clock = FakeClock(T0)
    manager, rec = _manager(clock)
    manager.process(_lag_pair(clock, 600, "BTC/USDT") + _lag_pair(clock, 120, "ETH/USDT"))
    assert sorted(_notified(rec)[0]) == [("lag_over_budget", "firing"),
                                         ("missing_signals", "firing")]
    assert {a.condition.pair for a in rec.sent[0].alerts} == {"BTC/USDT", "ETH/USDT"}


@pytest.mark.parametrize(("seconds", "text"), [
    (0.25, "0.25 s"), (45, "45 s"), (60, "1 min"), (200, "3 min 20 s"), (7500, "2 h 5 min"),
    (7200, "2 h"), (90000, "1 d 1 h"), (float("inf"), "never"), (None, "-")])
def test_durations_read_like_a_person_would_say_them(seconds, text):
    assert human_duration(seconds) == text


def test_rows_rejected_from_a_bad_csv_are_not_exporter_failures(mongo_db):
    """A producer's bad rows make a run ``partial``; only runs that could not store what was
    valid (status failed, or a document that failed to write) count against the exporter."""
    coll, runs = mongo_db["signals"], mongo_db["export_runs"]
    good = [{"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1m", "ts": T0 + i * MIN,
             "score": 0.5} for i in range(4)]
    bad = [{"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1m", "ts": "not a time",
            "score": 0.5}] * 3
    for batch in (good[:2] + bad, good[2:] + bad[:1], good[:1]):
        export_signals(batch, coll, runs_collection=runs, now=T0 + 10 * MIN)
    assert sorted(d["status"] for d in runs.find()) == ["ok", "partial", "partial"]
    health = exporter_health(runs, T0 - MIN)
    assert (health.runs, health.ok, health.partial, health.failed) == (3, 1, 2, 0)
    assert health.rejected_rows == 4 and health.success_rate == 1.0
    cond = rules.success_rate_condition(health.succeeded, health.runs, T0, 0.95)
    assert not cond.firing and "100.0% over 3 runs (0 failed" in cond.detail
    runs.insert_one({"run_id": "f1", "status": "failed", "started_at": T0,
                     "counts": {"submitted": 5, "failed": 5}})
    runs.insert_one({"run_id": "w1", "status": "partial", "started_at": T0,
                     "counts": {"submitted": 5, "inserted": 4, "failed": 1}})
    runs.insert_one({"run_id": "r1", "status": "running", "started_at": T0})
    health = exporter_health(runs, T0 - MIN)
    assert (health.runs, health.failed, health.partial) == (5, 2, 2)
    cond = rules.success_rate_condition(health.succeeded, health.runs, T0, 0.95)
    assert cond.firing and "exporter success rate 60.0% over 5 runs (2 failed" in cond.detail
    assert "value 60.0%, limit 95.0%" in Alert(cond, Status.FIRING, T0).message()
