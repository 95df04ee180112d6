"""The Binance stand-in, driven by real ccxt and plain HTTP over 127.0.0.1."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import ccxt
import httpx
import numpy as np
import pandas as pd
import pytest
from standin_helpers import STANDIN_NOW

from devservers.exchange import ExchangeStandIn, freqtrade_exchange_overlay
from research.data.synthetic import generate_symbol_ohlcv, symbol_spec
from signal_export.contract import timeframe_delta

ROOT = Path(__file__).resolve().parents[2]


def _frame(rows: list[list[float]]) -> pd.DataFrame:
    data = np.asarray(rows, dtype="float64")
    return pd.DataFrame({"datetime": pd.to_datetime(data[:, 0].astype("int64"), unit="ms",
                                                    utc=True).astype("datetime64[ms, UTC]"),
                         "open": data[:, 1], "high": data[:, 2], "low": data[:, 3],
                         "close": data[:, 4], "volume": data[:, 5]})


def test_ccxt_loads_the_configured_spot_markets_with_their_filters(binance, standin_market):
    markets = binance.load_markets()
    assert sorted(markets) == ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    for pair, market in markets.items():
        spec = symbol_spec(standin_market, pair)
        assert market["spot"] and market["active"]
        assert market["precision"]["price"] == pytest.approx(spec.tick_size)
        assert market["precision"]["amount"] == pytest.approx(spec.step_size)
        assert market["limits"]["cost"]["min"] == 5.0


@pytest.mark.parametrize(("timeframe", "since"), [
    ("1m", "2024-06-01T03:00:00Z"), ("1h", "2024-05-01T00:00:00Z"), ("1d", "2023-01-01T00:00:00Z"),
])
def test_klines_equal_the_research_generator(binance, standin_market, timeframe, since):
    start = pd.Timestamp(since)
    rows = binance.fetch_ohlcv("ETH/USDT", timeframe, since=int(start.value // 10**6), limit=300)
    served = _frame(rows)
    step = timeframe_delta(timeframe)
    expected = generate_symbol_ohlcv(standin_market, "ETH/USDT", start, start + 300 * step,
                                     timeframe)
    assert len(served) == 300
    pd.testing.assert_frame_equal(served, expected.drop(columns="symbol"))


def test_klines_stop_at_the_bar_in_progress_which_is_partial(binance, standin_market):
    rows = binance.fetch_ohlcv("BTC/USDT", "1h", limit=5)
    served = _frame(rows)
    current_open = STANDIN_NOW.floor("1h")
    assert served["datetime"].iloc[-1] == current_open  # never a future bar
    assert served["datetime"].diff().iloc[1:].eq(pd.Timedelta("1h")).all()
    begun = generate_symbol_ohlcv(standin_market, "BTC/USDT", current_open,
                                  STANDIN_NOW.floor("1min") + pd.Timedelta("1min"))
    last = served.iloc[-1]
    assert last["open"] == begun["open"].iloc[0]
    assert last["close"] == begun["close"].iloc[-1]
    assert last["high"] == begun["high"].max()
    full_hour = generate_symbol_ohlcv(standin_market, "BTC/USDT", current_open,
                                      current_open + pd.Timedelta("1h"), "1h")
    assert last["volume"] < full_hour["volume"].iloc[0]


def test_klines_honour_end_time_and_cap_the_limit(frozen_standin):
    end = int(pd.Timestamp("2024-05-30T10:00:00Z").value // 10**6)
    with httpx.Client(base_url=frozen_standin.url) as http:
        rows = http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                                  "endTime": end, "limit": 3}).json()
        many = http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                                  "startTime": 0, "limit": 5000}).json()
    assert [r[0] for r in rows] == [end - 120_000, end - 60_000, end]
    assert rows[-1][6] == end + 59_999  # close time
    assert len(many) == 1000


def test_depth_is_one_tick_wide_and_constant_within_a_minute(binance, standin_market):
    spec = symbol_spec(standin_market, "BTC/USDT")
    first = binance.fetch_order_book("BTC/USDT", 5)
    second = binance.fetch_order_book("BTC/USDT", 5)
    assert first["bids"] == second["bids"] and first["asks"] == second["asks"]
    best_bid, best_ask = first["bids"][0][0], first["asks"][0][0]
    assert best_ask - best_bid == pytest.approx(spec.tick_size)
    minute = generate_symbol_ohlcv(standin_market, "BTC/USDT", STANDIN_NOW.floor("1min"),
                                   STANDIN_NOW)
    assert best_bid == minute["close"].iloc[-1]


def test_tickers_agree_with_the_book(binance):
    ticker = binance.fetch_ticker("XRP/USDT")
    book = binance.fetch_order_book("XRP/USDT", 5)
    assert ticker["last"] == book["bids"][0][0]
    assert ticker["bid"] == book["bids"][0][0] and ticker["ask"] == book["asks"][0][0]
    assert ticker["high"] >= ticker["last"] >= ticker["low"]
    tickers = binance.fetch_tickers()
    assert set(tickers) == {"BTC/USDT", "ETH/USDT", "XRP/USDT"}
    prices = binance.public_get_ticker_price()
    assert {p["symbol"] for p in prices} == {"BTCUSDT", "ETHUSDT", "XRPUSDT"}
    book_ticker = binance.public_get_ticker_bookticker({"symbol": "ETHUSDT"})
    assert float(book_ticker["askPrice"]) > float(book_ticker["bidPrice"])
    assert binance.fetch_time() == STANDIN_NOW.value // 10**6


def test_bad_symbols_and_intervals_get_binance_error_codes(frozen_standin, binance):
    with httpx.Client(base_url=frozen_standin.url) as http:
        bad_symbol = http.get("/api/v3/klines", params={"symbol": "NOPEUSDT", "interval": "1m"})
        bad_interval = http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "7m"})
        delist = http.get("/sapi/v1/spot/delist-schedule")
    assert bad_symbol.status_code == 400 and bad_symbol.json()["code"] == -1121
    assert bad_interval.status_code == 400 and bad_interval.json()["code"] == -1120
    assert delist.status_code == 200 and delist.json() == []
    with pytest.raises(ccxt.BadSymbol):
        binance.fetch_ohlcv("DOGE/USDT", "1m")


def test_unknown_paths_answer_404_json_and_are_logged(frozen_standin, caplog):
    with caplog.at_level(logging.WARNING, logger="devservers.exchange"), \
            httpx.Client(base_url=frozen_standin.url) as http:
        response = http.get("/api/v3/myTrades", params={"symbol": "BTCUSDT"})
    assert response.status_code == 404
    assert response.json()["code"] == -1000
    assert frozen_standin.unknown_paths == ["/api/v3/myTrades"]
    assert any("/api/v3/myTrades" in r.getMessage() for r in caplog.records)


def test_rate_limit_answers_429_like_binance(standin_market):
    with ExchangeStandIn(market=standin_market, rate_limit=2, rate_window_s=60) as server:
        exchange = ccxt.binance(server.overlay()["exchange"]["ccxt_config"])
        with httpx.Client(base_url=server.url) as http:
            codes = [http.get("/api/v3/ping").status_code for _ in range(3)]
            blocked = http.get("/api/v3/time")
        assert codes == [200, 200, 429]
        assert blocked.json()["code"] == -1003 and "Retry-After" in blocked.headers
        with pytest.raises(ccxt.DDoSProtection):  # what ccxt makes of Binance's 429
            exchange.fetch_time()
        assert server.rejected["/api/v3/time"] == 2


def test_clock_follows_real_time_unless_frozen(standin_market):
    with ExchangeStandIn(market=standin_market) as server, httpx.Client(base_url=server.url) as h:
        served = h.get("/api/v3/time").json()["serverTime"]
        assert abs(served - pd.Timestamp.now(tz="UTC").value // 10**6) < 60_000
        server.set_now(pd.Timestamp("2025-01-01T00:00:00Z"))
        assert h.get("/api/v3/time").json()["serverTime"] == 1735689600000


def test_overlay_points_every_ccxt_api_group_at_the_standin():
    overlay = freqtrade_exchange_overlay("http://127.0.0.1:9999/")
    ex = overlay["exchange"]
    assert ex["name"] == "binance" and ex["key"] == "" and ex["secret"] == ""
    assert ex["enable_ws"] is False
    urls = ex["ccxt_config"]["urls"]["api"]
    assert urls["public"] == "http://127.0.0.1:9999/api/v3"
    assert urls["sapi"] == "http://127.0.0.1:9999/sapi/v1"
    assert urls["fapiPublic"] == "http://127.0.0.1:9999/fapi/v1"
    assert urls["dapiPublic"] == "http://127.0.0.1:9999/dapi/v1"
    real = ccxt.binance().urls["api"]
    assert set(real) <= set(urls)  # nothing left pointing at the internet
    assert ex["ccxt_config"]["options"]["fetchMarkets"]["types"] == ["spot"]


def test_cli_prints_its_url_first_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "devservers.exchange", "--pairs",
                             "BTC/USDT,SOL/USDT", "--seed", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        info = httpx.get(f"{url}/api/v3/exchangeInfo").json()
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "SOLUSDT"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_futures_pairs_are_refused_clearly():
    with pytest.raises(ValueError, match="spot pairs only"):
        ExchangeStandIn(["BTC/USDT:USDT"])
