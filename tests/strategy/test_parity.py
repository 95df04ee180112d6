"""Parity: the research backtest and ``freqtrade backtesting`` of the same exported signals.

Synthetic market -> a 0/1 position rule -> ``simulate_long_flat`` (research) and
-> enter/exit actions -> exporter -> local MongoDB -> ExternalSignalStrategy in
the real Freqtrade CLI. Same pairs, entry/exit times and prices (1e-9
relative), and the same per-trade return with the same fee.
"""

from __future__ import annotations

import pandas as pd
import pytest
from strategy_helpers import PAIRS

from research.backtest.simulate import simulate_long_flat_tidy
from research.data.synthetic import SyntheticMarket, generate_ohlcv
from research.signals.positions import positions_to_actions
from signal_export.contract import symbol_to_pair
from signal_export.exporter import export_signals

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

CASES = {  # timeframe: (start, end, timerange, rolling window)
    "1h": ("2026-01-01", "2026-01-05", "20260101-20260105", 6),
    "1d": ("2025-09-01", "2026-01-01", "20250901-20260101", 5),
    "1m": ("2026-01-01 00:00", "2026-01-01 06:00", "20260101-20260102", 15),
}


def positions(ohlcv: pd.DataFrame, window: int) -> pd.DataFrame:
    """Long while close is above its rolling mean; flat for the last bars so all trades close."""
    frame = ohlcv.sort_values(["symbol", "datetime"]).reset_index(drop=True)
    mean = frame.groupby("symbol")["close"].transform(lambda s: s.rolling(window).mean())
    frame["position"] = (frame["close"] > mean).astype(int)
    tail = frame.groupby("symbol").cumcount(ascending=False) < 3
    frame.loc[tail, "position"] = 0
    return frame[["datetime", "symbol", "position"]]


@pytest.mark.parametrize("timeframe", list(CASES))
def test_research_and_freqtrade_trade_the_same(timeframe, run_backtest, mongo_db):
    start, end, timerange, window = CASES[timeframe]
    market = SyntheticMarket(seed=11, symbols=PAIRS)
    ohlcv = generate_ohlcv(market, pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"),
                           timeframe)
    pos = positions(ohlcv, window)

    research = simulate_long_flat_tidy(ohlcv, pos, timeframe=timeframe, fee=0.001)
    expected = research.trades.assign(pair=research.trades["symbol"].astype(str).map(
        symbol_to_pair)).sort_values(["pair", "entry_time"]).reset_index(drop=True)
    assert len(expected) >= 6 and not expected["is_open"].any()

    actions = positions_to_actions(pos)
    export = pd.DataFrame({
        "ts": actions["datetime"], "timeframe": timeframe, "symbol": actions["symbol"],
        "pair": actions["symbol"].map(symbol_to_pair), "strategy_id": "parity",
        "action": actions["action"], "version": 1,
    })
    result = export_signals(export, mongo_db["crypto_signals"])
    assert result.rejected == 0

    candles = {
        symbol_to_pair(sym): g.rename(columns={"datetime": "date"})[
            ["date", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
        for sym, g in ohlcv.groupby("symbol")
    }
    # stake large enough that the pairs' minimum amount never blocks a trade the research takes
    trades = run_backtest(mongo_db.name, candles, {"strategy_ids": ["parity"]},
                          timerange=timerange, timeframe=timeframe,
                          config={"fee": 0.001, "max_open_trades": 3, "stake_amount": 1000,
                                  "dry_run_wallet": 100_000})
    got = trades.sort_values(["pair", "open_date"]).reset_index(drop=True)

    assert list(got["pair"]) == list(expected["pair"])
    assert list(got["open_date"]) == list(expected["entry_time"])
    assert list(got["close_date"]) == list(expected["exit_time"])
    assert got["open_rate"].to_numpy() == pytest.approx(expected["entry_price"].to_numpy(),
                                                        rel=1e-9)
    assert got["close_rate"].to_numpy() == pytest.approx(expected["exit_price"].to_numpy(),
                                                         rel=1e-9)
    assert got["profit_ratio"].to_numpy() == pytest.approx(expected["return"].to_numpy(),
                                                           rel=1e-6, abs=1e-9)
