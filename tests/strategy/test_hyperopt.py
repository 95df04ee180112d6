"""``freqtrade hyperopt`` tunes the decision rule on stored signals, end to end.

The market is built so the answer is known: 12 cycles per pair, each an enter
signal on two consecutive candles and an exit three candles later. Even cycles
carry score 0.9 and the price rises until the exit; odd ones carry score 0.65
and the price falls. With the config's ``enter_score`` 0.6 every cycle is
traded (half of them losses); the profitable setting is an ``enter_score``
above 0.65 (and at most 0.9). A small real hyperopt run (``--spaces buy sell``,
fixed ``--random-state``, two worker processes, so the strategy with its
signals is pickled to the workers) must find it, write it where Freqtrade
writes results (next to the strategy), and a backtest with that file in place
must trade only the strong cycles, while one without it trades them all. The
research side, given the same values through ``signal-bridge hyperopt-params``,
must decide exactly the trades Freqtrade made with the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from strategy_helpers import FREQTRADE, REPO, unwrap

from research.backtest.simulate import simulate_long_flat_tidy
from research.pipeline import decide_positions
from signal_export.consumer.hyperopt import KNOB_NAMES
from signal_export.consumer.matching import DecisionSettings
from signal_export.contract import pair_to_symbol

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
PAIRS = ("BTC/USDT", "ETH/USDT")
N_BARS = 130
CYCLES = [5 + 10 * k for k in range(12)]  # enter rows c, c+1; exit row c+4
STRONG, WEAK = 0.9, 0.65
SETTINGS = {"strategy_ids": ["tuned"], "enter_score": 0.6, "exit_score": 0.4,
            # small search space so a short run covers it
            "hyperopt_ranges": {"enter_score": [0.5, 0.95], "exit_score": [0.05, 0.45],
                                "confirm_n": [1, 2], "cooldown_bars": [0, 3],
                                "min_hold_bars": [0, 3]}}


def strong(k: int) -> bool:
    return k % 2 == 0


def market_candles(pair: str) -> pd.DataFrame:
    step = {"BTC/USDT": 10.0, "ETH/USDT": 1.0}[pair]
    delta = np.zeros(N_BARS)
    for k, c in enumerate(CYCLES):  # open rises (strong) / falls (weak) from c+1 to c+5
        delta[c + 1:c + 5] = step if strong(k) else -step
    opens = 100 * step + np.concatenate([[0.0], np.cumsum(delta)[:-1]])
    closes = np.append(opens[1:], opens[-1])
    dates = pd.date_range(T0, periods=N_BARS, freq="1h", tz="UTC")
    return pd.DataFrame({"date": dates.astype("datetime64[ms, UTC]"), "open": opens,
                         "high": np.maximum(opens, closes) + step / 10,
                         "low": np.minimum(opens, closes) - step / 10, "close": closes,
                         "volume": np.full(N_BARS, 1000.0)})


def signals() -> list[dict]:
    docs = []
    for pair in PAIRS:
        for k, c in enumerate(CYCLES):
            score = STRONG if strong(k) else WEAK
            for row, value in ((c, score), (c + 1, score), (c + 4, 0.0)):
                docs.append({"ts": T0 + row * H, "timeframe": "1h", "pair": pair,
                             "symbol": pair_to_symbol(pair), "strategy_id": "tuned",
                             "version": 1, "score": value})
    return docs


def expected_entries(confirm_n: int, strong_only: bool) -> set[tuple[str, datetime]]:
    """Entry fills: the open after the confirm_n-th enter row of each traded cycle."""
    return {(p, T0 + (c + confirm_n) * H) for p in PAIRS for k, c in enumerate(CYCLES)
            if strong(k) or not strong_only}


def research_trades(params: dict, candles: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """What the research backtest trades with the same decision settings."""
    market = pd.concat([f.rename(columns={"date": "datetime"}).assign(symbol=pair_to_symbol(p))
                        for p, f in candles.items()], ignore_index=True)
    frame = pd.DataFrame(signals())
    settings = DecisionSettings(**{k: v for k, v in {**SETTINGS, **params}.items()
                                   if k in DecisionSettings.model_fields})
    decisions = decide_positions(frame, market, timeframe="1h", settings=settings,
                                 strategy_ids=["tuned"])
    result = simulate_long_flat_tidy(market, decisions.positions, timeframe="1h", fee=0.001)
    return result.trades


def test_hyperopt_tunes_the_decision_and_its_result_is_traded_by_both_sides(
        freqtrade_cli, run_backtest, mongo_db, tmp_path):
    mongo_db["crypto_signals"].insert_many(signals())
    candles = {p: market_candles(p) for p in PAIRS}
    # a strategy folder of the test's own: Freqtrade writes the result file next to the strategy
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    shutil.copy(REPO / "user_data" / "strategies" / "ExternalSignalStrategy.py", strategies)
    config = {"max_open_trades": len(PAIRS), "stake_amount": 100, "dry_run_wallet": 1000}
    timerange = "20260101-20260107"

    baseline = run_backtest(mongo_db.name, candles, SETTINGS, timerange, config=config,
                            strategy_path=strategies, results=tmp_path / "bt-before")
    assert set(zip(baseline["pair"], baseline["open_date"].dt.to_pydatetime(),
                   strict=True)) == expected_entries(1, strong_only=False)
    assert (baseline["profit_ratio"] < 0).sum() == 12  # the weak cycles lose

    log = freqtrade_cli("hyperopt", mongo_db.name, candles, SETTINGS, timerange, config=config,
                        strategy_path=strategies, timeout=420,
                        args=["--spaces", "buy", "sell", "--hyperopt-loss",
                              "OnlyProfitHyperOptLoss", "-e", "30", "--random-state", "7",
                              "-j", "2", "--min-trades", "1"])
    log = unwrap(log)
    result_file = strategies / "ExternalSignalStrategy.json"
    assert result_file.exists(), log[-4000:]
    result = json.loads(result_file.read_text())
    assert result["strategy_name"] == "ExternalSignalStrategy"
    buy, sell = result["params"]["buy"], result["params"]["sell"]
    assert set(buy) | set(sell) == set(KNOB_NAMES)
    assert WEAK < buy["enter_score"] <= STRONG, result  # the band that skips the weak cycles
    # the epochs ran in worker processes on the signals read once, before them
    assert log.count("signals found per strategy id") == 1, log[-4000:]

    # honoured on the next run: only the strong cycles are traded, all of them win
    tuned = run_backtest(mongo_db.name, candles, SETTINGS, timerange, config=config,
                         strategy_path=strategies, results=tmp_path / "bt-after")
    assert "Loading parameters from file" in unwrap(tuned.attrs["log"])
    entries = set(zip(tuned["pair"], tuned["open_date"].dt.to_pydatetime(), strict=True))
    assert entries == expected_entries(buy["confirm_n"], strong_only=True)
    assert (tuned["profit_ratio"] > 0).all()
    assert tuned["profit_abs"].sum() > baseline["profit_abs"].sum()

    # research decides the same trades from the same values (printed as an ext_signals block)
    bridge = Path(FREQTRADE).with_name("signal-bridge")
    out = subprocess.run([bridge, "hyperopt-params", str(result_file), "--format", "json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    params = json.loads(out)["ext_signals"]
    assert params == {**buy, **sell}
    research = research_trades(params, candles).sort_values(["symbol", "entry_time"])
    ft = tuned.sort_values(["pair", "open_date"])
    assert list(research["entry_time"]) == list(ft["open_date"])
    assert list(research["exit_time"]) == list(ft["close_date"])
    assert research["entry_price"].to_numpy() == pytest.approx(ft["open_rate"].to_numpy())
    assert research["exit_price"].to_numpy() == pytest.approx(ft["close_rate"].to_numpy())
    yaml_out = subprocess.run([bridge, "hyperopt-params", str(result_file)], capture_output=True,
                              text=True, timeout=60, check=True).stdout
    assert yaml_out.startswith("ext_signals:") and f"enter_score: {buy['enter_score']}" in yaml_out
