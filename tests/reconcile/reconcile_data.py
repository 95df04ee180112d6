"""A hand-built period of one bot and its backtest with one difference of every kind.

1m candles from T0. Every number below is chosen by hand so each expected cause and
figure can be checked without running the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from signal_export.point_in_time import versions_frame
from signal_export.reconcile.inputs import normalise_trades

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
S = timedelta(seconds=1)
TAG = "ext:alpha:v1"
START, END = T0, T0 + 90 * MIN


def trade(tid: int, pair: str, open_at: datetime, open_rate: float, close_at: datetime | None,
          close_rate: float | None, tag: str | None = TAG, stake: float = 100.0) -> dict:
    profit = None if close_rate is None else stake * (close_rate / open_rate - 1.0)
    return {"trade_id": tid, "pair": pair, "is_open": close_at is None, "open_date": open_at,
            "close_date": close_at, "open_rate": open_rate, "close_rate": close_rate,
            "amount": stake / open_rate, "stake_amount": stake, "enter_tag": tag,
            "exit_reason": "ext:alpha:v1" if close_at else None, "profit_abs": profit}


def signal(pair: str, ts: datetime, known_at: datetime, action: str = "enter_long",
           version: int = 1) -> dict:
    return {"strategy_id": "alpha", "pair": pair, "timeframe": "1m", "ts": ts,
            "action": action, "version": version, "available_at": known_at,
            "content_hash": f"{pair}{ts}{version}"}


SIGNALS = [
    # BTC: on time, both trade; the bot fills 10 bps worse on entry, same exit
    signal("BTC/USDT", T0, T0 + MIN - 2 * S),
    signal("BTC/USDT", T0 + 4 * MIN, T0 + 5 * MIN - 2 * S, "exit_long"),
    # ETH: arrives 20 s after its close; live trades it within the candle, as_known cannot
    signal("ETH/USDT", T0 + 10 * MIN, T0 + 11 * MIN + 20 * S),
    # SOL: on time, but the bot's store was out from T0+20m30s to T0+23m
    signal("SOL/USDT", T0 + 21 * MIN, T0 + 22 * MIN - 2 * S),
    # XRP: on time; the bot has max_open_trades=2 and 2 trades open (a manual one)
    signal("XRP/USDT", T0 + 40 * MIN, T0 + 41 * MIN - 2 * S),
    # ADA: arrives after the next candle: neither side trades it
    signal("ADA/USDT", T0 + 50 * MIN, T0 + 53 * MIN),
    # DOGE: on time; Freqtrade refused the stake
    signal("DOGE/USDT", T0 + 60 * MIN, T0 + 61 * MIN - 2 * S),
    # LTC: on time; the pair was locked by a protection
    signal("LTC/USDT", T0 + 70 * MIN, T0 + 71 * MIN - 2 * S),
    # BNB: on time, backtest trades, no reason on the bot's side
    signal("BNB/USDT", T0 + 80 * MIN, T0 + 81 * MIN - 2 * S),
]

BACKTEST = [
    trade(1, "BTC/USDT", T0 + MIN, 100.0, T0 + 5 * MIN, 110.0),
    trade(2, "SOL/USDT", T0 + 22 * MIN, 20.0, T0 + 30 * MIN, 19.0),
    trade(3, "XRP/USDT", T0 + 41 * MIN, 1.0, T0 + 45 * MIN, 1.2),
    trade(4, "DOGE/USDT", T0 + 61 * MIN, 0.1, T0 + 65 * MIN, 0.11),
    trade(5, "LTC/USDT", T0 + 71 * MIN, 50.0, T0 + 75 * MIN, 55.0),
    trade(6, "BNB/USDT", T0 + 81 * MIN, 300.0, T0 + 85 * MIN, 303.0),
]

BOT = [
    trade(11, "BTC/USDT", T0 + MIN + 3 * S, 100.1, T0 + 5 * MIN + 2 * S, 110.0),
    trade(12, "ETH/USDT", T0 + 11 * MIN + 21 * S, 10.0, T0 + 15 * MIN, 11.0),
    trade(13, "TRX/USDT", T0 + 35 * MIN, 0.2, T0 + 48 * MIN, 0.21, tag="force_entry"),
    trade(14, "ETH/USDT", T0 + 36 * MIN, 10.0, T0 + 47 * MIN, 9.0, tag=TAG),
]

LOG_LINES = [
    "2026-01-01 00:20:30,120 - signal_export.consumer.source - WARNING - ExternalSignalStrategy: "
    "signal store unreachable (ServerSelectionTimeoutError: x) at mongodb://h/; no new trades",
    "2026-01-01 00:23:00,500 - signal_export.consumer.source - INFO - ExternalSignalStrategy: "
    "signal store reachable again, trading on signals resumes",
    "2026-01-01 01:01:02,000 - freqtrade.freqtradebot - WARNING - Unable to create trade for "
    "DOGE/USDT: Available balance (5.0 USDT) is lower than stake amount (100 USDT)",
]
LOCKS = pd.DataFrame({"pair": ["LTC/USDT"], "start": [pd.Timestamp(T0 + 66 * MIN)],
                      "end": [pd.Timestamp(T0 + 76 * MIN)], "reason": ["StoplossGuard"]})


def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(bot trades, backtest trades, signal versions)."""
    # the ETH trade 14 has a signal of its own at 00:35 (on time), traded by the bot only
    sigs = [*SIGNALS, signal("ETH/USDT", T0 + 35 * MIN, T0 + 36 * MIN - 2 * S)]
    return (normalise_trades(pd.DataFrame(BOT)), normalise_trades(pd.DataFrame(BACKTEST)),
            versions_frame(pd.DataFrame(sigs)))
