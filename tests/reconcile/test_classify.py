"""The classification on a hand-built period (tests/reconcile/reconcile_data.py): each
difference gets the cause its construction implies, the per-cause P&L adds up to the total
difference, lateness and outages are read as a deployment writes them."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from reconcile_data import END, LOCKS, LOG_LINES, MIN, T0, frames, signal, trade

from signal_export.point_in_time import versions_frame
from signal_export.reconcile import classify as c
from signal_export.reconcile import inputs


@pytest.fixture
def log_entries(tmp_path):
    path = tmp_path / "freqtrade.log"
    # a traceback's continuation lines are not log entries and must not break parsing
    path.write_text("\n".join([*LOG_LINES[:1], "Traceback (most recent call last):",
                               "  File x", *LOG_LINES[1:]]) + "\n")
    return inputs.log_entries_from_file(path)


@pytest.fixture
def result(log_entries):
    bot, bt, versions = frames()
    ctx = c.BotContext(max_open_trades=2, outages=inputs.outages(log_entries), locks=LOCKS,
                       refusals=inputs.refusals(log_entries))
    rules = c.Rules("1m")
    signals = c.signal_timeliness(versions, rules, ctx.outages)
    return c.classify(bot, bt, signals, rules, ctx, END), signals, bot, bt


def test_every_difference_gets_the_cause_it_was_built_with(result):
    rows, _, _, _ = result
    got = {(r.pair, r.outcome, r.bot_trade_id if r.outcome == "bot_only"
            else r.backtest_trade_id): r.cause for r in rows.itertuples()}
    assert got == {
        ("BTC/USDT", "both", 1.0): "slippage",
        ("ETH/USDT", "bot_only", 12.0): "signal_late",  # live traded it within the candle
        ("ETH/USDT", "bot_only", 14.0): "other",  # on time, the backtest did not trade it
        ("SOL/USDT", "backtest_only", 2.0): "store_outage",
        ("TRX/USDT", "bot_only", 13.0): "manual_trade",
        ("XRP/USDT", "backtest_only", 3.0): "refused_max_open_trades",
        ("DOGE/USDT", "backtest_only", 4.0): "refused_stake",
        ("LTC/USDT", "backtest_only", 5.0): "refused_lock",
        ("BNB/USDT", "backtest_only", 6.0): "other",
    }
    eth = rows[rows["pair"] == "ETH/USDT"].set_index("bot_trade_id")
    assert eth.loc[12.0, "cause"] == "signal_late" and eth.loc[12.0, "late_by_s"] == 20.0
    assert eth.loc[14.0, "cause"] == "other"
    assert "not a signal's" in rows.loc[rows["pair"] == "TRX/USDT", "detail"].item()
    assert rows.loc[rows["pair"] == "XRP/USDT", "detail"].item() == (
        "2 other trade(s) open, max_open_trades=2")
    assert "StoplossGuard" in rows.loc[rows["pair"] == "LTC/USDT", "detail"].item()
    assert "Available balance" in rows.loc[rows["pair"] == "DOGE/USDT", "detail"].item()


def test_slippage_in_bps_and_pnl_and_the_attribution_adds_up(result):
    rows, _, bot, bt = result
    btc = rows[rows["pair"] == "BTC/USDT"].iloc[0]
    assert btc["entry_slippage_bps"] == pytest.approx(10.0)  # 100.1 vs 100.0
    assert btc["exit_slippage_bps"] == pytest.approx(0.0)
    assert btc["pnl_difference"] == pytest.approx(100 * (110 / 100.1 - 1) - 10.0)
    att = c.attribution(rows).set_index("cause")
    assert list(att.index) == list(c.CAUSES)
    total = bot["profit_abs"].sum() - bt["profit_abs"].sum()
    assert att["pnl_difference"].sum() == pytest.approx(total)
    # by hand: SOL backtest lost 5, XRP won 20, DOGE 10, LTC 10, BNB 1
    assert att.loc["store_outage", "pnl_difference"] == pytest.approx(5.0)
    assert att.loc["refused_max_open_trades", "pnl_difference"] == pytest.approx(-20.0)
    assert att.loc["signal_late", "pnl_difference"] == pytest.approx(10.0)
    assert att.loc["manual_trade", "pnl_difference"] == pytest.approx(5.0)
    summary = c.slippage_summary(rows, bot)
    assert summary["entry_bps_mean"] == pytest.approx(10.0) and summary["trades"] == 1


def test_signal_timeliness_and_producer_share(result):
    _, signals, _, _ = result
    by = signals.set_index(["pair", "ts"])
    ada = by.loc[("ADA/USDT", pd.Timestamp(T0 + 50 * MIN))]
    assert ada["late"] and ada["late_by_s"] == 120.0  # known 00:53, deadline 00:51
    assert by.loc[("SOL/USDT", pd.Timestamp(T0 + 21 * MIN)), "in_outage"]
    assert not by.loc[("BTC/USDT", pd.Timestamp(T0)), "late"]
    prod = c.producer_lateness(signals).set_index("strategy_id")
    assert prod.loc["alpha", "signals"] == 10 and prod.loc["alpha", "late"] == 2
    assert prod.loc["alpha", "late_ratio"] == pytest.approx(0.2)


def test_tolerance_moves_the_deadline():
    versions = versions_frame(pd.DataFrame([signal("BTC/USDT", T0, T0 + MIN + 20 * pd.Timedelta(
        "1s"))]))
    strict = c.signal_timeliness(versions, c.Rules("1m"))
    loose = c.signal_timeliness(versions, c.Rules("1m", tolerance=timedelta(seconds=30)))
    assert strict["late"].item() and strict["late_by_s"].item() == 20.0
    assert not loose["late"].item() and np.isnan(loose["late_by_s"].item())


def test_a_revision_after_the_close_does_not_make_a_signal_late():
    first = signal("BTC/USDT", T0, T0 + 50 * pd.Timedelta("1s"))
    revised = signal("BTC/USDT", T0, T0 + 30 * MIN, version=2)
    signals = c.signal_timeliness(versions_frame(pd.DataFrame([revised]),
                                                 pd.DataFrame([first])), c.Rules("1m"))
    assert not signals["late"].item() and signals["version"].item() == 1


def test_the_late_signal_the_backtest_traded_is_signal_late():
    """With a ``latest`` backtest (no as_known yet) a late signal is traded by the backtest
    only: backtest_only, cause signal_late, by how much."""
    versions = versions_frame(pd.DataFrame([signal("ETH/USDT", T0, T0 + 3 * MIN)]))
    bt = inputs.normalise_trades(pd.DataFrame([trade(1, "ETH/USDT", T0 + MIN, 10.0,
                                                     T0 + 5 * MIN, 11.0)]))
    rules = c.Rules("1m")
    rows = c.classify(inputs.empty_trades(), bt, c.signal_timeliness(versions, rules), rules,
                      c.BotContext(max_open_trades=3), END)
    assert rows[["outcome", "cause", "late_by_s"]].values.tolist() == [
        ["backtest_only", "signal_late", 120.0]]


def test_identical_trades_are_match_and_no_difference():
    bt = inputs.normalise_trades(pd.DataFrame([
        trade(1, "BTC/USDT", T0 + MIN, 100.0, T0 + 5 * MIN, 101.0),
        trade(2, "BTC/USDT", T0 + 5 * MIN, 101.0, T0 + 9 * MIN, 99.0)]))  # re-entry at once
    bot = inputs.normalise_trades(pd.DataFrame([
        trade(7, "BTC/USDT", T0 + MIN + pd.Timedelta("2s"), 100.0, T0 + 5 * MIN, 101.0),
        trade(8, "BTC/USDT", T0 + 5 * MIN + pd.Timedelta("1s"), 101.0, T0 + 9 * MIN, 99.0)]))
    rows = c.classify(bot, bt, c.signal_timeliness(pd.DataFrame(), c.Rules("1m")),
                      c.Rules("1m"), c.BotContext(), END)
    assert rows["cause"].tolist() == ["match", "match"]
    assert rows["bot_trade_id"].tolist() == [7.0, 8.0]
    assert rows["pnl_difference"].abs().max() == 0.0


def test_outage_windows_from_the_strategy_log_lines(log_entries):
    out = inputs.outages(log_entries)
    assert out["start"].tolist() == [pd.Timestamp("2026-01-01 00:20:30.120", tz="UTC")]
    assert out["end"].tolist() == [pd.Timestamp("2026-01-01 00:23:00.500", tz="UTC")]
    # an outage that is not over at the end of the log stays open
    still = log_entries[log_entries["message"].str.contains("unreachable")]
    assert inputs.outages(still)["end"].isna().all()


@pytest.mark.parametrize(("message", "kind", "pair"), [
    ("Unable to create trade for ETH/USDT: Available balance (1.0 USDT) is lower than stake "
     "amount (100 USDT)", "stake", "ETH/USDT"),
    ("Adjusted stake amount for pair ETH/USDT is more than 30% bigger than the desired stake "
     "amount of (1.00000000 * 1.3 = 1.30000000) < 10.0), ignoring trade.", "stake", "ETH/USDT"),
    ("Minimum stake amount > available balance. 10.0 > 5.0", "stake", None),
    ("Pair ETH/USDT long is locked until 2026-01-01 01:00:00 due to StoplossGuard.", "lock",
     "ETH/USDT"),
    ("Pair ETH/USDT is currently locked.", "lock", "ETH/USDT"),
    ("Global pairlock active until 2026-01-01 01:00:00. Not creating new trades, reason: x.",
     "lock", None),
])
def test_freqtrade_refusal_lines(message, kind, pair):
    entries = pd.DataFrame({"time": [pd.Timestamp(T0)], "level": ["INFO"], "message": [message]})
    got = inputs.refusals(entries)
    assert got[["kind", "pair"]].values.tolist() == [[kind, pair]]


def test_a_backtest_trade_closed_only_by_the_end_of_the_backtest_is_still_open():
    bt = inputs.normalise_trades(pd.DataFrame([
        {**trade(1, "BTC/USDT", T0 + MIN, 100.0, END, 120.0), "exit_reason": "force_exit"},
        {**trade(2, "ETH/USDT", T0 + MIN, 10.0, T0 + 5 * MIN, 11.0)}]))
    bot = inputs.normalise_trades(pd.DataFrame([
        trade(5, "BTC/USDT", T0 + MIN + pd.Timedelta("1s"), 100.0, None, None),
        trade(6, "ETH/USDT", T0 + MIN + pd.Timedelta("1s"), 10.0, T0 + 5 * MIN, 11.0)]))
    bt = c.open_at_end(bt, END, pd.Timedelta(MIN))
    assert bt.set_index("pair").loc["BTC/USDT", "is_open"]
    assert np.isnan(bt.set_index("pair").loc["BTC/USDT", "profit_abs"])
    rows = c.classify(bot, bt, c.signal_timeliness(pd.DataFrame(), c.Rules("1m")),
                      c.Rules("1m"), c.BotContext(), END)
    assert rows["cause"].tolist() == ["match", "match"]


def test_an_open_trade_has_no_realised_profit():
    """Freqtrade's /status reports an open trade's current profit in profit_abs; the report
    compares realised profit only."""
    rows = pd.DataFrame([{**trade(1, "BTC/USDT", T0, 100.0, None, None), "profit_abs": 3.0}])
    assert np.isnan(inputs.normalise_trades(rows)["profit_abs"].item())


def test_a_missed_trade_does_not_take_the_bots_next_trade():
    """The backtest trades BTC at 00:01 and 00:21, the bot only at 00:21: the first is
    backtest_only, the second the same trade on both sides (not two differences)."""
    bt = inputs.normalise_trades(pd.DataFrame([
        trade(1, "BTC/USDT", T0 + MIN, 100.0, T0 + 11 * MIN, 101.0),
        trade(2, "BTC/USDT", T0 + 21 * MIN, 100.0, T0 + 31 * MIN, 101.0)]))
    bot = inputs.normalise_trades(pd.DataFrame([
        trade(9, "BTC/USDT", T0 + 21 * MIN + pd.Timedelta("3s"), 100.0, T0 + 31 * MIN, 101.0)]))
    rows = c.classify(bot, bt, c.signal_timeliness(pd.DataFrame(), c.Rules("1m")),
                      c.Rules("1m"), c.BotContext(), END)
    assert rows[["outcome", "backtest_trade_id"]].values.tolist() == [
        ["backtest_only", 1.0], ["both", 2.0]]
    assert rows["cause"].tolist() == ["other", "match"]
    assert rows["bot_trade_id"].iloc[1] == 9.0 and np.isnan(rows["bot_trade_id"].iloc[0])
