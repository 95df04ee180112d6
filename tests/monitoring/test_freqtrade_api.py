"""The REST wrapper as Freqtrade answers: /trades closed only, /status open, /locks, /show_config.

The fake bot (``fake_freqtrade``) answers like Freqtrade 2026.9's API server: ``/trades``
filters ``is_open == False`` (rpc._rpc_trade_history), so every reader must add ``/status``.
"""

from __future__ import annotations

from fake_freqtrade import PASSWORD, USER, fake_freqtrade, new_state
from monitoring_data import MIN, T0, ft_trade, ms

from signal_export.monitoring.freqtrade_api import FreqtradeApi
from signal_export.reconcile.inputs import bot_api


def _state():
    state = new_state()
    state["trades"] = [ft_trade(1, "BTC/USDT", T0, close_at=T0 + 5 * MIN, close_rate=101.0),
                       ft_trade(2, "ETH/USDT", T0 + MIN)]
    state["locks"] = [{"pair": "SOL/USDT", "lock_timestamp": ms(T0),
                       "lock_end_timestamp": ms(T0 + 30 * MIN), "reason": "cooldown",
                       "active": True}]
    state["max_open_trades"] = 1
    return state


def test_trades_are_the_closed_ones_and_status_the_open_ones():
    with fake_freqtrade(_state()) as url:
        api = FreqtradeApi("bot", url, USER, PASSWORD)
        assert [t["trade_id"] for t in api.trades()] == [1]
        assert [t["trade_id"] for t in api.open_trades()] == [2]
        assert api.show_config()["max_open_trades"] == 1 and api.state() == "running"
        assert [lock["pair"] for lock in api.locks()] == ["SOL/USDT"]


def test_the_reconcile_report_reads_open_and_closed_trades_locks_and_max_open_trades():
    with fake_freqtrade(_state()) as url:
        trades, locks, max_open, _logs = bot_api(FreqtradeApi("bot", url, USER, PASSWORD))
    assert sorted(trades["pair"]) == ["BTC/USDT", "ETH/USDT"]
    assert list(locks["pair"]) == ["SOL/USDT"] and list(locks["reason"]) == ["cooldown"]
    assert locks["end"].iloc[0] - locks["start"].iloc[0] == 30 * MIN
    assert max_open == 1
