"""Futures against the stand-in: USD-M perpetual markets, mark price, funding, and real
``freqtrade download-data`` + ``freqtrade backtesting`` in futures mode (isolated margin),
offline. Leverage tiers come from the file Freqtrade ships for dry-run/backtesting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ccxt
import pytest

from devservers.exchange import ExchangeStandIn
from research.data.synthetic import generate_symbol_ohlcv

FREQTRADE = str(Path(sys.executable).with_name("freqtrade"))
PAIR = "BTC/USDT:USDT"

SHORT_STRATEGY = '''
from freqtrade.strategy import IStrategy


class AlwaysShortStrategy(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1d"
    can_short = True
    minimal_roi = {"0": 100}
    stoploss = -0.99
    startup_candle_count = 0

    def populate_indicators(self, dataframe, metadata):
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe["enter_short"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe["exit_short"] = 0
        return dataframe

    def leverage(self, pair, current_time, current_rate, proposed_leverage, max_leverage,
                 entry_tag, side, **kwargs):
        return 2.0
'''


@pytest.fixture
def futures(frozen_standin: ExchangeStandIn) -> ccxt.binance:
    config = frozen_standin.overlay(futures=True)["exchange"]["ccxt_config"]
    return ccxt.binance({**config, "timeout": 10_000})


def test_ccxt_loads_the_linear_perpetuals(futures, frozen_standin):
    markets = futures.load_markets()
    assert sorted(markets) == ["BTC/USDT:USDT", "ETH/USDT:USDT", "XRP/USDT:USDT"]
    btc = markets[PAIR]
    assert (btc["id"], btc["swap"], btc["linear"], btc["settle"]) == ("BTCUSDT", True, True,
                                                                     "USDT")
    assert frozen_standin.requests["/fapi/v1/exchangeInfo"] >= 1
    assert frozen_standin.unknown_paths == []


def test_mark_price_and_funding_rate(futures, frozen_standin):
    rate = futures.fetch_funding_rate(PAIR)
    last = futures.fetch_ticker(PAIR)["last"]
    assert rate["fundingRate"] == 0.0001 and rate["markPrice"] == pytest.approx(last)
    assert rate["fundingTimestamp"] % (8 * 3_600_000) == 0
    history = futures.fetch_funding_rate_history(PAIR, limit=3)
    assert [h["fundingRate"] for h in history] == [0.0001] * 3
    assert all(h["timestamp"] % (8 * 3_600_000) == 0 for h in history)
    marks = futures.fetch_ohlcv(PAIR, "8h", limit=2, params={"price": "mark"})
    assert len(marks) == 2 and marks[-1][0] % (8 * 3_600_000) == 0
    assert frozen_standin.unknown_paths == []


def _config(tmp_path: Path, overlay: dict) -> list[str]:
    base = {
        "stake_currency": "USDT", "stake_amount": 100, "dry_run": True, "dry_run_wallet": 1000,
        "max_open_trades": 1, "timeframe": "1d", "fee": 0.001,
        "exchange": {"pair_whitelist": [PAIR]},
        "pairlists": [{"method": "StaticPairList"}],
        # Freqtrade's Binance futures price from the order book (no ticker pricing)
        "entry_pricing": {"price_side": "other", "use_order_book": True},
        "exit_pricing": {"price_side": "other", "use_order_book": True},
    }
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "overlay.json").write_text(json.dumps(overlay))
    return ["--config", str(tmp_path / "base.json"), "--config", str(tmp_path / "overlay.json")]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([FREQTRADE, *args], capture_output=True, text=True, cwd=cwd, timeout=240)


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_downloads_and_backtests_futures_offline(standin_market, tmp_path):
    datadir = tmp_path / "data"
    with ExchangeStandIn(market=standin_market, now="2024-03-01T00:05:00Z") as server:
        config = _config(tmp_path, server.overlay(futures=True))
        done = _run(["download-data", *config, "--userdir", str(tmp_path), "--datadir",
                     str(datadir), "--timerange", "20240101-20240301", "-t", "1d"], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert server.unknown_paths == []
        strategies = tmp_path / "strategies"
        strategies.mkdir(exist_ok=True)
        (strategies / "always_short.py").write_text(SHORT_STRATEGY)
        results = tmp_path / "results"
        results.mkdir(exist_ok=True)
        done = _run(["backtesting", *config, "--userdir", str(tmp_path), "--datadir",
                     str(datadir), "--strategy", "AlwaysShortStrategy", "--strategy-path",
                     str(strategies), "--timeframe", "1d", "--timerange", "20240101-20240301",
                     "--cache", "none", "--export", "trades", "--backtest-directory",
                     str(results)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    from freqtrade.data.btanalysis import load_backtest_data

    candles = generate_symbol_ohlcv(standin_market, "BTC/USDT", "2024-01-01T00:00Z",
                                   "2024-03-01T00:00Z", "1d")
    trades = load_backtest_data(results)
    assert len(trades) == 1
    trade = trades.iloc[0]
    assert trade["pair"] == PAIR and bool(trade["is_short"])
    assert trade["leverage"] == 2.0
    # the entry signal on the first candle fills at the open of the second research candle
    assert trade["open_date"] == candles["datetime"].iloc[1]
    assert trade["open_rate"] == pytest.approx(candles["open"].iloc[1], rel=1e-12)
    # a short receives the stand-in's positive funding rate every 8 hours
    assert trade["funding_fees"] > 0


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_futures_dry_run_opens_a_leveraged_short(standin_market, tmp_path):
    import signal
    import sqlite3
    import time

    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "always_short.py").write_text(
        SHORT_STRATEGY.replace('timeframe = "1d"', 'timeframe = "1m"'))
    db_file = tmp_path / "trades.sqlite"
    extra = {"timeframe": "1m", "initial_state": "running", "bot_name": "standin-futures",
             "db_url": f"sqlite:///{db_file}", "internals": {"process_throttle_secs": 2},
             "entry_pricing": {"price_side": "other", "use_order_book": True,
                               "order_book_top": 1},
             "exit_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1}}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    with ExchangeStandIn(market=standin_market) as server:  # real clock, as a bot needs
        config = _config(tmp_path, server.overlay(futures=True))
        proc = subprocess.Popen(
            [FREQTRADE, "trade", "--dry-run", *config, "--config", str(tmp_path / "extra.json"),
             "--userdir", str(tmp_path), "--strategy", "AlwaysShortStrategy", "--strategy-path",
             str(strategies)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            cwd=tmp_path)
        filled: list = []
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not filled:
                time.sleep(2)
                if db_file.exists():
                    with sqlite3.connect(db_file) as con:
                        try:
                            filled = con.execute(
                                "SELECT pair, is_short, leverage, trading_mode, "
                                "liquidation_price, open_rate FROM trades "
                                "WHERE is_open = 1 AND open_rate > 0").fetchall()
                        except sqlite3.OperationalError:  # tables not created yet
                            filled = []
        finally:
            proc.send_signal(signal.SIGTERM)
            stderr = proc.communicate(timeout=60)[1]
        assert filled, stderr[-3000:]
        pair, is_short, leverage, mode, liquidation, open_rate = filled[0]
        assert (pair, bool(is_short), leverage, mode) == (PAIR, True, 2.0, "FUTURES")
        assert liquidation > open_rate  # a short's liquidation lies above its entry
        assert server.requests["/fapi/v1/klines"] >= 1
        assert server.requests["/fapi/v1/depth"] >= 1
        assert server.unknown_paths == [], server.unknown_paths
