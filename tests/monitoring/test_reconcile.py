"""Reconciliation finds missed, extra and late trades against the signals that should have acted."""

from __future__ import annotations

from monitoring_data import MIN, T0, ft_trade, signal_rows

from signal_export.monitoring.execution import trades_frame
from signal_export.monitoring.reconcile import reconcile, reconciliation_conditions


def _kinds(out):
    return [(r.kind, r.side, r.pair, None if r.trade_id != r.trade_id else int(r.trade_id))
            for r in out.itertuples()]


def test_matched_missed_late_and_extra_are_told_apart():
    signals = signal_rows([
        ("alpha", "BTC/USDT", T0, "enter_long"),             # fills at T0+1m: matched
        ("alpha", "BTC/USDT", T0 + 5 * MIN, "exit_long"),    # closes at T0+6m: matched
        ("alpha", "ETH/USDT", T0, "enter_long"),             # nothing happened: missed
        ("alpha", "SOL/USDT", T0, "enter_long"),             # filled 3 bars late: late
    ])
    trades = trades_frame([
        ft_trade(1, "BTC/USDT", T0 + MIN, close_at=T0 + 6 * MIN, close_rate=101.0),
        ft_trade(2, "SOL/USDT", T0 + 4 * MIN),
        ft_trade(3, "XRP/USDT", T0 + 2 * MIN, tag="force_entry"),  # no signal: extra
    ])
    out = reconcile(signals, trades, "1m", T0 + 30 * MIN, late_bars=1)
    assert sorted(_kinds(out)) == sorted([
        ("matched", "enter", "BTC/USDT", 1), ("matched", "exit", "BTC/USDT", 1),
        ("missed", "enter", "ETH/USDT", None), ("late", "enter", "SOL/USDT", 2),
        ("extra", "enter", "XRP/USDT", 3)])
    late = out[out["kind"] == "late"].iloc[0]
    assert late["delay_s"] == 3 * 60


def test_repeated_enters_are_one_event_and_an_exit_without_position_is_not_missed():
    signals = signal_rows([
        ("alpha", "BTC/USDT", T0 - 2 * MIN, "exit_long"),   # leading exit: nothing to close
        ("alpha", "BTC/USDT", T0, "enter_long"),
        ("alpha", "BTC/USDT", T0 + MIN, "enter_long"),      # a repeat: no-op
    ])
    trades = trades_frame([ft_trade(1, "BTC/USDT", T0 + MIN)])
    out = reconcile(signals, trades, "1m", T0 + 10 * MIN)
    assert _kinds(out) == [("matched", "enter", "BTC/USDT", 1)]


def test_a_trade_of_another_signal_is_extra_and_a_signal_not_yet_due_is_pending():
    signals = signal_rows([("alpha", "BTC/USDT", T0, "enter_long")])
    trades = trades_frame([ft_trade(1, "BTC/USDT", T0 + MIN),
                           ft_trade(2, "BTC/USDT", T0 + 2 * MIN)])  # a second trade: extra
    out = reconcile(signals, trades, "1m", T0 + 10 * MIN)
    assert _kinds(out) == [("matched", "enter", "BTC/USDT", 1), ("extra", "enter", "BTC/USDT", 2)]
    pending = reconcile(signal_rows([("alpha", "ETH/USDT", T0, "enter_long")]),
                        trades_frame([]), "1m", T0 + MIN + 30 * 1e0 * MIN / 60)
    assert list(pending["kind"]) == ["pending"]


def test_a_missed_enter_does_not_take_the_trade_of_the_next_enter():
    signals = signal_rows([
        ("alpha", "BTC/USDT", T0, "enter_long"),             # never traded: missed
        ("alpha", "BTC/USDT", T0 + 10 * MIN, "exit_long"),   # nothing open: no outcome
        ("alpha", "BTC/USDT", T0 + 20 * MIN, "enter_long"),  # traded at its open
    ])
    trades = trades_frame([ft_trade(1, "BTC/USDT", T0 + 21 * MIN)])
    out = reconcile(signals, trades, "1m", T0 + 40 * MIN)
    assert _kinds(out) == [("missed", "enter", "BTC/USDT", None),
                           ("matched", "enter", "BTC/USDT", 1)]


def test_reconciliation_condition_names_strategy_pair_and_counts():
    signals = signal_rows([("alpha", "ETH/USDT", T0, "enter_long")])
    out = reconcile(signals, trades_frame([]), "1m", T0 + 10 * MIN)
    (cond,) = reconciliation_conditions(out, T0 + 10 * MIN)
    assert cond.firing and cond.strategy_id == "alpha" and cond.pair == "ETH/USDT"
    assert cond.value == 1.0 and "1 missed" in cond.detail


def test_no_signals_and_no_trades_reconcile_to_nothing():
    empty = signal_rows([]).reindex(columns=["strategy_id", "pair", "timeframe", "ts", "action"])
    out = reconcile(empty, trades_frame([]), "1m", T0)
    assert out.empty and list(out.columns)[:3] == ["kind", "side", "strategy_id"]
    assert reconciliation_conditions(out, T0) == []
