"""Futures against the stand-in: USD-M perpetual markets, mark price, funding, and real
``freqtrade download-data`` + ``freqtrade backtesting`` in futures mode (isolated margin),
offline. Leverage tiers come from the file Freqtrade ships for dry-run/backtesting."""

from __future__ import annotations

import ccxt
import pytest

from devservers import freqtrade_harness as harness
from devservers.exchange import ExchangeStandIn
from research.data.synthetic import generate_symbol_ohlcv

PAIR = "BTC/USDT:USDT"
# Freqtrade's Binance futures price from the order book (no ticker pricing)
BASE = harness.standin_test_config([PAIR], use_order_book=True)
TIMEOUT = 240

SHORT_STRATEGY = harness.always_in_strategy("AlwaysShortStrategy", short=True, leverage=2.0)


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


@pytest.mark.freqtrade
@pytest.mark.slow
def test_freqtrade_downloads_and_backtests_futures_offline(standin_market, tmp_path):
    datadir = tmp_path / "data"
    with ExchangeStandIn(market=standin_market, now="2024-03-01T00:05:00Z") as server:
        configs = harness.write_config_layers(tmp_path, base=BASE,
                                              overlay=server.overlay(futures=True))
        argv = harness.download_argv(configs, tmp_path, datadir, "20240101-20240301", "1d")
        done = harness.run_freqtrade(argv, tmp_path, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr[-3000:]
        assert server.unknown_paths == []
        strategies = tmp_path / "strategies"
        strategies.mkdir(exist_ok=True)
        (strategies / "always_short.py").write_text(SHORT_STRATEGY)
        results = tmp_path / "results"
        results.mkdir(exist_ok=True)
        argv = harness.backtest_argv(configs, tmp_path, datadir, "1d", "20240101-20240301",
                                     results, strategy="AlwaysShortStrategy",
                                     strategy_path=strategies)
        done = harness.run_freqtrade(argv, tmp_path, timeout=TIMEOUT)
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
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "always_short.py").write_text(harness.always_in_strategy(
        "AlwaysShortStrategy", short=True, leverage=2.0, timeframe="1m"))
    db_file = tmp_path / "trades.sqlite"
    extra = harness.dry_run_test_layer(db_file, "standin-futures")
    columns = ("pair", "is_short", "leverage", "trading_mode", "liquidation_price", "open_rate",
               "is_open")
    with ExchangeStandIn(market=standin_market) as server:  # real clock, as a bot needs
        configs = harness.write_config_layers(tmp_path, base=BASE,
                                              overlay=server.overlay(futures=True), extra=extra)
        with harness.DryRunBot(configs, tmp_path, db_file, None,
                               strategy="AlwaysShortStrategy", strategy_path=strategies) as bot:
            filled = bot.wait_for(lambda: [t for t in bot.trades(columns)
                                           if t["is_open"] and (t["open_rate"] or 0) > 0],
                                  120, "an open, filled short")
        trade = filled[0]
        assert (trade["pair"], bool(trade["is_short"]), trade["leverage"],
                trade["trading_mode"]) == (PAIR, True, 2.0, "FUTURES")
        assert trade["liquidation_price"] > trade["open_rate"]  # above a short's entry
        assert server.requests["/fapi/v1/klines"] >= 1
        assert server.requests["/fapi/v1/depth"] >= 1
        assert server.unknown_paths == [], server.unknown_paths
