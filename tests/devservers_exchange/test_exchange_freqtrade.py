"""Real Freqtrade against the stand-in: markets load, and a backtest trades the research candles."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from devservers import freqtrade_harness as harness
from research.data.freqtrade_candles import write_freqtrade_candles
from research.data.synthetic import generate_ohlcv, generate_symbol_ohlcv

TIMEOUT = 240

STRATEGY = harness.always_in_strategy("AlwaysInStrategy")


def _configs(tmp_path: Path, overlay: dict, pairs: list[str], **extra: dict) -> list[Path]:
    """Ticker-priced test config for ``pairs``, the stand-in's ``overlay``, then ``extra``."""
    base = harness.standin_test_config(pairs, use_order_book=False)
    return harness.write_config_layers(tmp_path, base=base, overlay=overlay, **extra)


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_lists_the_standin_markets(frozen_standin, tmp_path):
    config = harness.config_argv(_configs(tmp_path, frozen_standin.overlay(), ["BTC/USDT"]))
    done = harness.run_freqtrade(["list-markets", *config, "--userdir", str(tmp_path),
                                  "--print-json"], tmp_path, timeout=TIMEOUT)
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
    configs = _configs(tmp_path, frozen_standin.overlay(), ["BTC/USDT"])
    argv = harness.backtest_argv(configs, tmp_path, datadir, "1d", "20240101-20240301", results,
                                 strategy="AlwaysInStrategy", strategy_path=strategies)
    done = harness.run_freqtrade(argv, tmp_path, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    from freqtrade.data.btanalysis import load_backtest_data

    trades = load_backtest_data(results)
    assert len(trades) == 1
    trade = trades.iloc[0]
    # the entry signal on the first candle fills at the open of the second research candle
    assert trade["open_date"] == candles["datetime"].iloc[1]
    assert trade["open_rate"] == pytest.approx(candles["open"].iloc[1], rel=1e-12)
    assert trade["close_date"] == pd.Timestamp(candles["datetime"].iloc[-1])


DRY_RUN_STRATEGY = harness.always_in_strategy("AlwaysInStrategy", timeframe="1m")


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_dry_run_trades_against_the_standin(standin_market, tmp_path):
    from devservers.exchange import ExchangeStandIn

    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "always_in.py").write_text(DRY_RUN_STRATEGY)
    pairs = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    db_file = tmp_path / "trades.sqlite"
    extra = harness.dry_run_test_layer(db_file, "standin-smoke")
    with ExchangeStandIn(market=standin_market) as server:  # real clock, as a bot needs
        configs = _configs(tmp_path, server.overlay(), pairs, extra=extra)
        with harness.DryRunBot(configs, tmp_path, db_file, None, strategy="AlwaysInStrategy",
                               strategy_path=strategies) as bot:
            def open_pairs() -> list[str]:
                return sorted(t["pair"] for t in bot.trades() if t["is_open"])

            assert bot.wait_for(lambda: open_pairs() == pairs, 90, "a trade on every pair")
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
        configs = _configs(tmp_path, server.overlay(), ["BTC/USDT", "XRP/USDT"])
        argv = harness.download_argv(configs, tmp_path, datadir, "20240101-20240301", "1h", "1d")
        done = harness.run_freqtrade(argv, tmp_path, timeout=TIMEOUT)
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
