"""ExternalSignalStrategy through the real ``freqtrade backtesting`` CLI.

Constructed signals go into the local MongoDB server; constructed candles have
open = base + i, so every expected trade (pair, entry/exit time, prices = open
of the bar after the signal row, stake) is written down by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from strategy_helpers import BASE_PRICE, PAIRS, constructed_candles

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
N_BARS = 30


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def doc(pair: str, hours: float, sid: str = "demo", **fields) -> dict:
    symbol = "BINANCE:" + pair.replace("/", "")
    return {"ts": at(hours), "timeframe": "1h", "symbol": symbol, "pair": pair,
            "strategy_id": sid, "version": 1, **fields}


def open_at(pair: str, hours: int) -> float:
    return BASE_PRICE[pair] + hours


def trade_table(trades: pd.DataFrame) -> list[tuple]:
    t = trades.sort_values(["pair", "open_date"])
    return [(r.pair, r.open_date.to_pydatetime(), r.close_date.to_pydatetime(), r.open_rate,
             r.close_rate) for r in t.itertuples()]


def expected(pair: str, enter_h: int, exit_h: int) -> tuple:
    return (pair, at(enter_h), at(exit_h), open_at(pair, enter_h), open_at(pair, exit_h))


def assert_stake(trade, target: float, step: float) -> None:
    assert target - step * trade.open_rate < trade.stake_amount <= target + 1e-9, (
        trade.pair, trade.stake_amount, target)


def candles() -> dict[str, pd.DataFrame]:
    return {p: constructed_candles(p, "2026-01-01", N_BARS) for p in PAIRS}


def test_actions_scores_weights_tolerance_validity_and_stake(run_backtest, mongo_db):
    mongo_db["crypto_signals"].insert_many([
        # BTC: on-grid enter at 02:00 -> fill 03:00; off-grid exit 05:40 -> row 06:00 -> fill 07:00
        doc("BTC/USDT", 2, action="enter_long"),
        doc("BTC/USDT", 3, action="enter_long"),  # repeated: collapses
        doc("BTC/USDT", 5 + 40 / 60, action="exit_long"),
        # BTC: valid_until before the row's close -> expired, no trade
        doc("BTC/USDT", 12, action="enter_long", valid_until=at(12.5)),
        # BTC: still valid at the close -> trade 15:00 -> exit 19:00 (signal 18:00)
        doc("BTC/USDT", 14, action="enter_long", valid_until=at(15) + timedelta(seconds=1)),
        doc("BTC/USDT", 18, action="exit_long"),
        # ETH: weight 0.5 -> half stake; weight 0 -> exit
        doc("ETH/USDT", 3, weight=0.5),
        doc("ETH/USDT", 8, weight=0.0),
        # SOL: score through thresholds (0.6 / 0.4): 0.9 enter, 0.5 nothing, 0.1 exit
        doc("SOL/USDT", 10, score=0.9),
        doc("SOL/USDT", 12, score=0.5),
        doc("SOL/USDT", 14, score=0.1),
        # other strategy id and other timeframe: not read
        doc("SOL/USDT", 20, sid="someone-else", action="enter_long"),
        {**doc("SOL/USDT", 21, action="enter_long"), "timeframe": "1d"},
        # written by someone else, malformed: ignored, never crash
        {**doc("SOL/USDT", 22), "action": "buy"},
        {**doc("SOL/USDT", 23, action="enter_long"), "ts": "2026-01-01T23:00:00"},
        {**doc("SOL/USDT", 24), "score": float("nan")},
    ])
    trades = run_backtest(mongo_db.name, candles(), {"strategy_ids": ["demo"]},
                          timerange="20260101-20260102")
    assert trade_table(trades) == [
        expected("BTC/USDT", 3, 7),
        expected("BTC/USDT", 15, 19),
        expected("ETH/USDT", 4, 9),
        expected("SOL/USDT", 11, 15),
    ]
    # stake = weight x proposed stake (100), rounded down to the pair's amount step by Freqtrade
    by_key = {(r.pair, r.open_date.to_pydatetime()): r for r in trades.itertuples()}
    assert_stake(by_key[("ETH/USDT", at(4))], 50.0, step=0.01)
    assert_stake(by_key[("BTC/USDT", at(3))], 100.0, step=0.001)
    # Freqtrade records the exit tag as the exit reason: which strategy/version closed it
    assert by_key[("ETH/USDT", at(4))].exit_reason == "ext:demo:v1:w0"
    assert set(trades["exit_reason"]) == {"ext:demo:v1", "ext:demo:v1:w0"}
    assert by_key[("ETH/USDT", at(4))].enter_tag == "ext:demo:v1:w0.5"
    assert by_key[("BTC/USDT", at(3))].enter_tag == "ext:demo:v1"


def test_debounce_cooldown_and_strategy_priority(run_backtest, mongo_db):
    mongo_db["crypto_signals"].insert_many([
        # BTC, min_hold 3, cooldown 2
        doc("BTC/USDT", 1, sid="model", action="enter_long"),  # fill 02:00
        doc("BTC/USDT", 2, sid="model", action="exit_long"),  # held 1 bar < 3: dropped
        doc("BTC/USDT", 5, sid="model", action="exit_long"),  # held 4 bars: fill 06:00
        doc("BTC/USDT", 6, sid="model", action="enter_long"),  # 1 bar after exit < 2: dropped
        doc("BTC/USDT", 8, sid="model", action="enter_long"),  # fill 09:00
        doc("BTC/USDT", 12, sid="model", action="exit_long"),  # fill 13:00
        # ETH: "risk" outranks "model" on the same row
        doc("ETH/USDT", 1, sid="model", action="enter_long"),  # fill 02:00
        doc("ETH/USDT", 6, sid="model", action="enter_long"),
        doc("ETH/USDT", 6, sid="risk", action="exit_long"),  # wins: fill 07:00
        # SOL: stale by max delay across a wide tolerance is covered by the pure tests;
        # here the 'risk' id alone opens nothing because it only ever exits
        doc("SOL/USDT", 4, sid="risk", action="exit_long"),
    ])
    settings = {"strategy_ids": ["risk", "model"], "min_hold_bars": 3, "cooldown_bars": 2}
    trades = run_backtest(mongo_db.name, candles(), settings, timerange="20260101-20260102")
    assert trade_table(trades) == [
        expected("BTC/USDT", 2, 6),
        expected("BTC/USDT", 9, 13),
        expected("ETH/USDT", 2, 7),
    ]
    eth = trades[trades["pair"] == "ETH/USDT"].iloc[0]
    assert eth["exit_reason"] == "ext:risk:v1"


def test_protections_from_ext_signals_block_cooldown_after_exit(run_backtest, mongo_db):
    mongo_db["crypto_signals"].insert_many([
        doc("BTC/USDT", 1, action="enter_long"),  # fill 02:00
        doc("BTC/USDT", 2, action="exit_long"),  # fill 03:00; CooldownPeriod locks 3 candles
        doc("BTC/USDT", 4, action="enter_long"),  # would fill 05:00: locked
        doc("BTC/USDT", 6, action="exit_long"),  # no trade open: Freqtrade ignores it
        doc("BTC/USDT", 8, action="enter_long"),  # fill 09:00
        doc("BTC/USDT", 10, action="exit_long"),  # fill 11:00
    ])
    settings = {"strategy_ids": ["demo"], "protections": [
        {"method": "CooldownPeriod", "stop_duration_candles": 3}]}
    btc = {"BTC/USDT": constructed_candles("BTC/USDT", "2026-01-01", N_BARS)}
    trades = run_backtest(mongo_db.name, btc, settings, timerange="20260101-20260102",
                          args=["--enable-protections"])
    assert trade_table(trades) == [expected("BTC/USDT", 2, 3), expected("BTC/USDT", 9, 11)]
