"""Real Freqtrade against the stand-in: markets load, and a backtest trades the research candles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from research.data.freqtrade_candles import write_freqtrade_candles
from research.data.synthetic import generate_ohlcv, generate_symbol_ohlcv

FREQTRADE = str(Path(sys.executable).with_name("freqtrade"))

STRATEGY = '''
from freqtrade.strategy import IStrategy


class AlwaysInStrategy(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1d"
    minimal_roi = {"0": 100}
    stoploss = -0.99
    startup_candle_count = 0

    def populate_indicators(self, dataframe, metadata):
        return dataframe

    def populate_entry_trend(self, dataframe, metadata):
        dataframe["enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe, metadata):
        dataframe["exit_long"] = 0
        return dataframe
'''


def _config(tmp_path: Path, overlay: dict, pairs: list[str]) -> list[str]:
    base = {
        "stake_currency": "USDT", "stake_amount": 100, "dry_run": True, "dry_run_wallet": 1000,
        "max_open_trades": len(pairs), "timeframe": "1d", "fee": 0.001,
        "exchange": {"pair_whitelist": pairs},
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "other", "use_order_book": False},
        "exit_pricing": {"price_side": "other", "use_order_book": False},
    }
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "overlay.json").write_text(json.dumps(overlay))
    return ["--config", str(tmp_path / "base.json"), "--config", str(tmp_path / "overlay.json")]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([FREQTRADE, *args], capture_output=True, text=True, cwd=cwd, timeout=240)


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_lists_the_standin_markets(frozen_standin, tmp_path):
    config = _config(tmp_path, frozen_standin.overlay(), ["BTC/USDT"])
    done = _run(["list-markets", *config, "--userdir", str(tmp_path), "--print-json"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    assert frozen_standin.requests["/api/v3/exchangeInfo"] >= 1


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_backtest_fills_at_the_research_candles(frozen_standin, standin_market,
                                                         tmp_path):
    candles = generate_ohlcv(standin_market, "2024-01-01T00:00Z", "2024-03-01T00:00Z", "1d",
                             symbols=["BTC/USDT"])
    datadir = tmp_path / "data" / "binance"
    files = write_freqtrade_candles(candles, datadir, "1d")
    assert [f.name for f in files] == ["BTC_USDT-1d.feather"]
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "always_in.py").write_text(STRATEGY)
    results = tmp_path / "results"
    results.mkdir()
    config = _config(tmp_path, frozen_standin.overlay(), ["BTC/USDT"])
    done = _run(["backtesting", *config, "--userdir", str(tmp_path), "--datadir", str(datadir),
                 "--strategy", "AlwaysInStrategy", "--strategy-path", str(strategies),
                 "--timeframe", "1d", "--timerange", "20240101-20240301", "--cache", "none",
                 "--export", "trades", "--backtest-directory", str(results)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    from freqtrade.data.btanalysis import load_backtest_data

    trades = load_backtest_data(results)
    assert len(trades) == 1
    trade = trades.iloc[0]
    # the entry signal on the first candle fills at the open of the second research candle
    assert trade["open_date"] == candles["datetime"].iloc[1]
    assert trade["open_rate"] == pytest.approx(candles["open"].iloc[1], rel=1e-12)
    assert trade["close_date"] == pd.Timestamp(candles["datetime"].iloc[-1])


DRY_RUN_STRATEGY = STRATEGY.replace('timeframe = "1d"', 'timeframe = "1m"')


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_dry_run_trades_against_the_standin(standin_market, tmp_path):
    import signal
    import sqlite3
    import time

    from devservers.exchange import ExchangeStandIn

    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "always_in.py").write_text(DRY_RUN_STRATEGY)
    pairs = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    db_file = tmp_path / "trades.sqlite"
    extra = {"timeframe": "1m", "initial_state": "running", "bot_name": "standin-smoke",
             "db_url": f"sqlite:///{db_file}", "internals": {"process_throttle_secs": 2},
             "entry_pricing": {"price_side": "other", "use_order_book": True,
                               "order_book_top": 1},
             "exit_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1}}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    with ExchangeStandIn(market=standin_market) as server:  # real clock, as a bot needs
        config = _config(tmp_path, server.overlay(), pairs)
        proc = subprocess.Popen(
            [FREQTRADE, "trade", "--dry-run", *config, "--config", str(tmp_path / "extra.json"),
             "--userdir", str(tmp_path), "--strategy", "AlwaysInStrategy", "--strategy-path",
             str(strategies)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            cwd=tmp_path)
        filled: list = []
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and len(filled) < len(pairs):
                time.sleep(2)
                if db_file.exists():
                    with sqlite3.connect(db_file) as con:
                        try:
                            filled = con.execute(
                                "SELECT pair, open_rate FROM trades WHERE is_open = 1").fetchall()
                        except sqlite3.OperationalError:  # tables not created yet
                            filled = []
        finally:
            proc.send_signal(signal.SIGTERM)
            stderr = proc.communicate(timeout=60)[1]
        assert sorted(p for p, _ in filled) == pairs, stderr[-3000:]
        assert server.requests["/api/v3/klines"] >= len(pairs)
        assert server.requests["/api/v3/depth"] >= len(pairs)
        assert server.unknown_paths == []  # Freqtrade asked for nothing the stand-in lacks


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_download_data_gets_exactly_the_research_candles(standin_market, tmp_path):
    from freqtrade.data.history import get_datahandler
    from freqtrade.enums import CandleType

    from devservers.exchange import ExchangeStandIn

    datadir = tmp_path / "downloaded"
    with ExchangeStandIn(market=standin_market, now="2024-03-01T00:05:00Z") as server:
        config = _config(tmp_path, server.overlay(), ["BTC/USDT", "XRP/USDT"])
        done = _run(["download-data", *config, "--userdir", str(tmp_path), "--datadir",
                     str(datadir), "--timerange", "20240101-20240301", "-t", "1h", "1d"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    handler = get_datahandler(datadir, "feather")
    for pair in ("BTC/USDT", "XRP/USDT"):
        for timeframe in ("1h", "1d"):
            got = handler.ohlcv_load(pair, timeframe, candle_type=CandleType.SPOT,
                                     fill_missing=False)
            want = generate_symbol_ohlcv(standin_market, pair, "2024-01-01T00:00Z",
                                         "2024-03-01T00:00Z", timeframe)
            assert len(got) == len(want) > 0
            assert (got["date"].to_numpy() == want["datetime"].to_numpy()).all()
            cols = ["open", "high", "low", "close", "volume"]
            assert (got[cols].to_numpy() == want[cols].to_numpy()).all()
