"""ccxt import against the local Binance stand-in: paging, resume, idempotency, 429s, gaps."""

from __future__ import annotations

import pandas as pd
import pytest
from market_data_helpers import FROZEN_NOW, make_exchange

from devservers.exchange import ExchangeStandIn
from research.data.ccxt_import import import_ohlcv
from research.data.readers import get_crypto_market_data, get_crypto_min_data
from research.data.synthetic import SyntheticMarket, generate_ohlcv, generate_symbol_ohlcv
from signal_export.contract import ContractError

SINCE = pd.Timestamp("2024-06-02T20:00:00Z")
LAST_CLOSED = FROZEN_NOW.floor("1min") - pd.Timedelta("1min")  # 00:09, the bar in progress is 00:10


def _stored(store, market) -> tuple[pd.DataFrame, pd.DataFrame]:
    got = get_crypto_min_data(market.symbols, SINCE, FROZEN_NOW + pd.Timedelta("1h"), db=store)
    want = generate_ohlcv(market, SINCE, FROZEN_NOW.floor("1min"), "1m")
    return got, want


def test_import_stores_exactly_the_closed_bars_and_a_rerun_adds_nothing(
        standin, exchange, store, market):
    report = import_ohlcv(exchange, ["BTC/USDT", "BINANCE:ETHUSDT"], "1m", db=store, since=SINCE,
                          limit=100, progress=False)
    got, want = _stored(store, market)
    assert got["datetime"].max() == LAST_CLOSED
    pd.testing.assert_frame_equal(got, want)
    assert report.result.inserted == len(want) == 2 * 250
    assert report.gaps == []
    klines_before = standin.requests["/api/v3/klines"]
    assert klines_before == 2 * 3  # 250 bars in pages of 100

    again = import_ohlcv(exchange, ["BTC/USDT", "ETH/USDT"], "1m", db=store, since=SINCE,
                         limit=100, progress=False)
    assert again.result.inserted == 0 and again.result.updated == 0
    assert standin.requests["/api/v3/klines"] == klines_before  # nothing left to ask for
    assert store.collection("1m").count_documents({}) == len(want)


def test_resume_starts_after_the_last_stored_bar(standin, exchange, store, market):
    import_ohlcv(exchange, ["BTC/USDT"], "1m", db=store, since=SINCE, limit=1000, progress=False)
    standin.set_now(FROZEN_NOW + pd.Timedelta(minutes=30))
    seen = len(standin.request_log)
    report = import_ohlcv(exchange, ["BTC/USDT"], "1m", db=store, since=SINCE, limit=1000,
                          progress=False)
    assert report.result.inserted == 30
    starts = [int(q["startTime"]) for path, q in standin.request_log[seen:]
              if path == "/api/v3/klines"]
    assert starts == [(LAST_CLOSED + pd.Timedelta("1min")).value // 10**6]
    stored = get_crypto_min_data("BTC/USDT", SINCE, "2024-06-03", db=store)
    want = generate_symbol_ohlcv(market, "BTC/USDT", SINCE, FROZEN_NOW.floor("1min")
                                 + pd.Timedelta(minutes=30))
    pd.testing.assert_frame_equal(stored, want)


def test_rate_limited_import_backs_off_and_completes(market, store):
    with ExchangeStandIn(market=market, now=FROZEN_NOW, rate_limit=3, rate_window_s=1.0) as server:
        report = import_ohlcv(make_exchange(server), ["BTC/USDT", "ETH/USDT"], "1m", db=store,
                              since=SINCE, limit=50, backoff_s=0.3, progress=False)
        rejected = sum(server.rejected.values())
    assert rejected > 0 and report.retries >= rejected
    got, want = _stored(store, market)
    pd.testing.assert_frame_equal(got, want)


def test_gaps_are_reported_and_never_filled(store):
    market = SyntheticMarket(seed=11, symbols=("BTC/USDT",), gap_rate=4.0, max_gap_minutes=15)
    with ExchangeStandIn(market=market, now=FROZEN_NOW) as server:
        report = import_ohlcv(make_exchange(server), ["BTC/USDT"], "1m", db=store,
                              since="2024-06-02T00:00:00Z", limit=500, progress=False)
    want = generate_symbol_ohlcv(market, "BTC/USDT", "2024-06-02T00:00Z", FROZEN_NOW.floor("1min"))
    stored = get_crypto_min_data("BTC/USDT", "2024-06-02", "2024-06-03", db=store)
    pd.testing.assert_frame_equal(stored, want)  # exactly the bars served, none invented
    gaps = report.gap_frame()
    assert len(gaps) > 0
    full = pd.date_range(want["datetime"].iloc[0], want["datetime"].iloc[-1], freq="1min")
    missing = full.difference(pd.DatetimeIndex(want["datetime"]))
    assert gaps["missing_bars"].sum() == len(missing)
    for row in gaps.itertuples():
        span = pd.date_range(row._2, row.to, freq="1min")
        assert len(span) == row.missing_bars and span.isin(missing).all()


def test_daily_import_writes_yyyymmdd_dates(exchange, store, market):
    report = import_ohlcv(exchange, ["ETH/USDT"], "1d", db=store, since="2024-05-01T00:00:00Z",
                          progress=False)
    assert report.result.inserted == 33  # May 1 .. June 2; June 3 is still open
    doc = store.collection("1d").find_one({"date": "20240602"}, {"_id": 0})
    assert doc["symbol"] == "BINANCE:ETHUSDT"
    got = get_crypto_market_data("ETH/USDT", "20240501", "20240603", db=store)
    want = generate_symbol_ohlcv(market, "ETH/USDT", "2024-05-01T00:00Z", "2024-06-03T00:00Z",
                                 "1d").rename(columns={"datetime": "date"})
    pd.testing.assert_frame_equal(got, want)


def test_unknown_symbols_and_timeframes_are_clear_errors(exchange, store):
    with pytest.raises(ContractError, match="DOGE/USDT"):
        import_ohlcv(exchange, ["BTC/USDT", "DOGE/USDT"], "1m", db=store, progress=False)
    with pytest.raises(ContractError, match="'1h'.*only 1m, 1d"):
        import_ohlcv(exchange, ["BTC/USDT"], "1h", db=store, progress=False)
    with pytest.raises(ContractError, match="symbol"):
        import_ohlcv(exchange, ["BTCUSDT"], "1m", db=store, progress=False)
    assert store.collection("1m").count_documents({}) == 0
