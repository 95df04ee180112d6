"""``freqtrade lookahead-analysis`` on ExternalSignalStrategy reports no bias.

The analysis re-runs the backtest with the data cut after each signal and checks
that the signals and indicators of earlier candles do not change: our as-of
match never uses a signal on a row earlier than its ``ts``.
"""

from __future__ import annotations

import pandas as pd
import pytest
from strategy_helpers import PAIRS
from test_parity import positions

from research.data.synthetic import SyntheticMarket, generate_ohlcv
from research.signals.positions import positions_to_actions
from signal_export.contract import symbol_to_pair

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]


def test_lookahead_analysis_reports_no_bias(freqtrade_cli, mongo_db, tmp_path):
    start, end = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-11", tz="UTC")
    ohlcv = generate_ohlcv(SyntheticMarket(seed=5, symbols=PAIRS), start, end, "1h")
    actions = positions_to_actions(positions(ohlcv, 6))
    mongo_db["crypto_signals"].insert_many([
        {"ts": r.datetime.to_pydatetime(), "timeframe": "1h", "symbol": r.symbol,
         "pair": symbol_to_pair(r.symbol), "strategy_id": "la", "action": r.action, "version": 1}
        for r in actions.itertuples()])
    candles = {symbol_to_pair(s): g.rename(columns={"datetime": "date"}).reset_index(drop=True)
               for s, g in ohlcv.groupby("symbol")}
    report = tmp_path / "lookahead.csv"
    log = freqtrade_cli("lookahead-analysis", mongo_db.name, candles, {"strategy_ids": ["la"]},
                        "20260101-20260111",
                        config={"max_open_trades": 3, "stake_amount": 1000,
                                "dry_run_wallet": 100_000},
                        args=["--minimum-trade-amount", "10", "--targeted-trade-amount", "12",
                              "--allow-limit-orders",
                              "--lookahead-analysis-exportfilename", str(report)],
                        timeout=300)
    table = pd.read_csv(report)
    row = table[table["strategy"] == "ExternalSignalStrategy"].iloc[0]
    assert not bool(row["has_bias"]), log[-3000:]
    assert int(row["total_signals"]) >= 10
    assert int(row["biased_entry_signals"]) == 0 and int(row["biased_exit_signals"]) == 0
