"""Futures parity: ExternalSignalStrategy under real ``freqtrade backtesting`` (futures,
isolated margin) trades what the research backtest (``decide_positions``) trades.

Random long/short/flat signal documents (actions ``enter_long``/``enter_short``/
``exit_long``/``exit_short``, entries with ``leverage``, ``stop_loss`` and ``take_profit``;
some leverages above ``ext_signals.max_leverage``) are stored in the MongoDB dev server;
Freqtrade backtests the shipped strategy on futures candles downloaded from the exchange
stand-in. The research side takes the same documents through the one decision rule
(:func:`decide_positions`, as the research pipeline) and simulates them with
:func:`simulate_long_short_tidy`. Both must give the
same trades: pair, side, entry and exit times, prices (1e-9), exit reason and leverage.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from strategy_helpers import REPO, deep_merge, freqtrade_env

from devservers.exchange import ExchangeStandIn
from devservers.freqtrade_harness import run_freqtrade
from research.backtest import simulate_long_short_tidy
from research.data.synthetic import SyntheticMarket, symbol_spec
from research.pipeline import decide_positions
from signal_export.consumer.matching import DecisionSettings
from signal_export.contract import pair_to_symbol
from signal_export.store import ensure_signal_indexes

pytestmark = [pytest.mark.freqtrade, pytest.mark.slow]

PAIR = "BTC/USDT:USDT"
FEE = 0.001
MAX_LEVERAGE = 3.0
TIMERANGE = "20240101-20240901"


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return run_freqtrade(args, cwd, timeout=600, env=freqtrade_env(**env))


def signal_documents(dates: pd.DatetimeIndex, seed: int) -> list[dict[str, Any]]:
    """One random action per bar on ~half the bars; entries carry leverage, stop and target."""
    rng = np.random.default_rng(seed)
    docs = []
    for ts in dates[:-1]:
        action = rng.choice(["enter_long", "enter_short", "exit_long", "exit_short", ""],
                            p=[0.15, 0.15, 0.07, 0.07, 0.56])
        if not action:
            continue
        doc = {"pair": PAIR, "strategy_id": "fut", "timeframe": "1d",
               "ts": ts.to_pydatetime(), "action": str(action), "version": 1}
        if action.startswith("enter"):
            lev = float(rng.choice([1.0, 2.0, 3.0, 5.0]))
            doc["leverage"] = lev
            doc["stop_loss"] = round(float(rng.uniform(0.01, 0.8 / lev if lev > 1 else 0.06)
                                           if lev < 5 else rng.uniform(0.01, 0.1)), 4)
            doc["take_profit"] = round(float(rng.uniform(0.02, 0.10)), 4)
        docs.append(doc)
    return docs


def draw_settings(seed: int, debounce: bool) -> dict[str, Any]:
    """Random confirmation/debounce settings (``debounce``), else the plain rule."""
    rng = np.random.default_rng(seed + 1000)
    if not debounce:
        return {"max_leverage": MAX_LEVERAGE}
    return {"confirm_n": int(rng.choice([1, 2])), "min_hold_bars": int(rng.choice([0, 2])),
            "cooldown_bars": int(rng.choice([1, 3])), "max_leverage": MAX_LEVERAGE}


def research_trades(candles: pd.DataFrame, docs: list[dict[str, Any]],
                    price_decimals: int, settings: dict[str, Any]) -> pd.DataFrame:
    """The research pipeline's own path: decide_positions -> simulate_long_short_tidy."""
    symbol = pair_to_symbol(PAIR)
    market = candles.rename(columns={"date": "datetime"}).assign(symbol=symbol)
    decisions = decide_positions(pd.DataFrame(docs), market, timeframe="1d",
                                 settings=DecisionSettings(**settings), strategy_ids=("fut",))
    res = simulate_long_short_tidy(market, decisions.positions, timeframe="1d", fee=FEE,
                                   price_decimals=price_decimals)
    return res.trades


@pytest.mark.parametrize(("seed", "debounce"), [(5, False), (17, False), (29, True)])
def test_strategy_trades_what_research_trades_in_futures_backtesting(tmp_path, seed, debounce,
                                                                     mongo_client, mongo_uri):
    market = SyntheticMarket(seed=21 + seed, symbols=("BTC/USDT",))
    datadir = tmp_path / "data"
    db_name = f"futures_parity_{seed}"
    mongo_client.drop_database(db_name)
    with ExchangeStandIn(market=market, now="2024-09-01T00:05:00Z") as server:
        base = json.loads((REPO / "configs" / "config.backtest.json").read_text())
        cfg = deep_merge(deep_merge(base, server.overlay(futures=True)), {
            "timeframe": "1d", "fee": FEE, "max_open_trades": 1, "stake_amount": 100,
            "dry_run_wallet": 100_000, "exchange": {"pair_whitelist": [PAIR]},
            "entry_pricing": {"price_side": "other", "use_order_book": True},
            "exit_pricing": {"price_side": "other", "use_order_book": True}})
        settings = draw_settings(seed, debounce)
        cfg["ext_signals"] = {"strategy_ids": ["fut"], **settings}
        config = tmp_path / "config.json"
        config.write_text(json.dumps(cfg))
        common = ["--config", str(config), "--userdir", str(tmp_path), "--datadir",
                  str(datadir)]
        done = _run(["download-data", *common, "--timerange", TIMERANGE, "-t", "1d"], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        from freqtrade.data.history import get_datahandler
        from freqtrade.enums import CandleType

        candles = get_datahandler(datadir, "feather").ohlcv_load(
            PAIR, "1d", candle_type=CandleType.FUTURES, fill_missing=False)
        docs = signal_documents(pd.DatetimeIndex(candles["date"]), seed)
        collection = mongo_client[db_name]["crypto_signals"]
        ensure_signal_indexes(collection)
        collection.insert_many([dict(d) for d in docs])
        results = tmp_path / "results"
        results.mkdir()
        done = _run(["backtesting", *common, "--strategy", "ExternalSignalStrategy",
                     "--strategy-path", str(REPO / "user_data" / "strategies"),
                     "--timeframe", "1d", "--timerange", TIMERANGE, "--cache", "none",
                     "--export", "trades", "--backtest-directory", str(results)], tmp_path,
                    EXT_SIG_MONGO_URI=mongo_uri, EXT_SIG_DB=db_name)
        price_decimals = symbol_spec(market, "BINANCE:BTCUSDT").price_decimals
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    from freqtrade.data.btanalysis import load_backtest_data

    ft = load_backtest_data(results).sort_values("open_date").reset_index(drop=True)
    ours = research_trades(candles, docs, price_decimals, settings)
    assert len(ours) >= 5
    assert (ours["side"] == -1).any() and (ours["leverage"] > 1).any()
    if not debounce:  # the plain rule's cases cover every exit kind and flips
        flips = (ours["exit_time"].to_numpy()[:-1] == ours["entry_time"].to_numpy()[1:]) & (
            ours["side"].to_numpy()[:-1] != ours["side"].to_numpy()[1:])
        assert flips.any()  # long -> short (or back) on one signal: exit and entry at one open
        assert set(ours["exit_reason"]) >= {"exit_signal", "stop_loss", "roi"}
    # signals asking for more than max_leverage trade at the cap (Freqtrade's leverage equal)
    assert any(d.get("leverage", 0) > MAX_LEVERAGE for d in docs)
    assert ours["leverage"].max() == MAX_LEVERAGE
    got = pd.DataFrame({
        "pair": ft["pair"].to_numpy(),
        "side": np.where(ft["is_short"], -1, 1),
        "entry": pd.DatetimeIndex(ft["open_date"]).as_unit("ns"),
        "exit": pd.DatetimeIndex(ft["close_date"]).as_unit("ns"),
        # a signal exit's reason is its exit tag (ext:<strategy id>:v<version>)
        # and the end of the data's force_exit is research's exit at the last open
        "reason": ft["exit_reason"].replace({"ext:fut:v1": "exit_signal",
                                             "force_exit": "exit_signal"}).to_numpy(),
        "leverage": ft["leverage"].to_numpy(dtype=float),
    })
    want = pd.DataFrame({
        "pair": PAIR,
        "side": ours["side"].to_numpy().astype(int),
        "entry": pd.DatetimeIndex(ours["entry_time"]).as_unit("ns"),
        "exit": pd.DatetimeIndex(ours["exit_time"]).as_unit("ns"),
        "reason": ours["exit_reason"].to_numpy(),
        "leverage": ours["leverage"].to_numpy(dtype=float),
    })
    if not got.equals(want):
        print(got.merge(want, on="entry", how="outer", suffixes=("_ft", "_ours")).to_string())
    pd.testing.assert_frame_equal(got, want)
    np.testing.assert_allclose(ft["open_rate"], ours["entry_price"], rtol=1e-9)
    np.testing.assert_allclose(ft["close_rate"], ours["exit_price"], rtol=1e-9)
