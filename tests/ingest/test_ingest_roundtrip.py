"""Round trip: signals posted to the ingest API are traded by ExternalSignalStrategy in the
real ``freqtrade backtesting`` CLI (candles with open = base + i, so fills are known by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ingest_helpers import WallClock
from strategy_helpers import BASE_PRICE, constructed_candles

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def test_posted_signals_are_traded_in_freqtrade_backtesting(make_ingest, run_backtest) -> None:
    clock = WallClock(at(6) + timedelta(seconds=3))  # the receive time the app judges alerts by
    ingest = make_ingest(wall_clock=clock)
    # contract JSON: enter on the 02:00 bar -> Freqtrade fills at the 03:00 open
    enter = {"ts": "2026-01-01T02:00:00Z", "timeframe": "1h", "pair": "BTC/USDT",
             "strategy_id": "alpha", "action": "enter_long"}
    # TradingView alert fired 2 s after the 06:00 boundary and received 1 s later: grace
    # window -> bar 05:00 -> fill 06:00
    exit_alert = {"ticker": "BINANCE:BTCUSDT", "action": "sell", "time": "2026-01-01T06:00:02Z",
                  "strategy_id": "alpha", "timeframe": "60"}
    r = ingest.post([enter, exit_alert])
    assert r.status_code == 200, r.text
    clock.now = at(12) + timedelta(seconds=1)
    # an alert 40 min into the 09:00 bar -> bar in progress 09:00 -> fill 10:00
    enter_again = {**exit_alert, "action": "buy", "time": "2026-01-01T09:40:00Z"}
    exit_again = {**enter, "ts": "2026-01-01T12:00:00Z", "action": "exit_long"}
    r = ingest.post([enter_again, exit_again])
    assert r.status_code == 200, r.text

    candles = {"BTC/USDT": constructed_candles("BTC/USDT", "2026-01-01", 30)}
    trades = run_backtest(ingest.db.name, candles, {"strategy_ids": ["alpha"]},
                          timerange="20260101-20260102")
    got = [(t.open_date.to_pydatetime(), t.close_date.to_pydatetime(), t.open_rate, t.close_rate)
           for t in trades.sort_values("open_date").itertuples()]
    base = BASE_PRICE["BTC/USDT"]
    assert got == [(at(3), at(6), base + 3, base + 6), (at(10), at(13), base + 10, base + 13)]
