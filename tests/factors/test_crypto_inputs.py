"""Crypto inputs: ccxt funding history capability check, record conversion, depth, alignment."""

from __future__ import annotations

import ccxt
import numpy as np
import pandas as pd
import pytest

from research.factors.crypto import (
    DataNotSupportedError,
    align_to_bars,
    depth_from_snapshots,
    fetch_funding_rate_history,
    funding_records_to_frame,
)
from research.factors.registry import FactorError


def test_exchange_without_funding_history_raises_before_any_request():
    exchange = ccxt.kraken()  # spot exchange: has['fetchFundingRateHistory'] is False
    assert not exchange.has.get("fetchFundingRateHistory")
    with pytest.raises(DataNotSupportedError, match="kraken.*fetchFundingRateHistory.*BTC/USDT"):
        fetch_funding_rate_history(exchange, "BTC/USDT:USDT")


def test_ccxt_funding_records_become_a_tidy_frame():
    records = [
        {"symbol": "BTC/USDT:USDT", "fundingRate": 0.0002, "timestamp": 1704096000000},
        {"symbol": "BTC/USDT:USDT", "fundingRate": 0.0001, "timestamp": 1704067200000},
    ]
    frame = funding_records_to_frame(records)
    assert list(frame.columns) == ["datetime", "symbol", "funding_rate"]
    assert frame["datetime"].tolist() == [pd.Timestamp("2024-01-01 00:00", tz="UTC"),
                                          pd.Timestamp("2024-01-01 08:00", tz="UTC")]
    assert frame["symbol"].unique().tolist() == ["BINANCE:BTCUSDT.USDT"]
    assert frame["funding_rate"].tolist() == [0.0001, 0.0002]
    with pytest.raises(FactorError, match="record 0 lacks"):
        funding_records_to_frame([{"symbol": "BTC/USDT:USDT", "timestamp": 1}])


def test_depth_snapshot_counts_only_levels_inside_the_band():
    snaps = pd.DataFrame({
        "datetime": [pd.Timestamp("2024-01-01", tz="UTC")], "symbol": ["BINANCE:BTCUSDT"],
        # mid = 100; band 50 bps -> [99.5, 100.5]
        "bids": [[[99.9, 1.0], [99.6, 2.0], [99.0, 50.0]]],
        "asks": [[[100.1, 3.0], [100.4, 1.0], [101.0, 50.0]]],
    })
    depth = depth_from_snapshots(snaps, band_bps=50)
    assert depth.loc[0, "bid_depth"] == pytest.approx(3.0)
    assert depth.loc[0, "ask_depth"] == pytest.approx(4.0)


def test_alignment_uses_only_values_published_before_the_bar_close():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    bars = pd.DataFrame({"datetime": pd.date_range(t0, periods=4, freq="1h"),
                         "symbol": "BINANCE:BTCUSDT", "close": 1.0})
    events = pd.DataFrame({
        "datetime": [t0 + pd.Timedelta("30min"), t0 + pd.Timedelta("2h")],  # 2h = close of bar 1
        "symbol": "BINANCE:BTCUSDT", "funding_rate": [0.1, 0.2],
    })
    out = align_to_bars(bars, events, "1h", ["funding_rate"])
    # bar 0 (closes 01:00) sees 0.1; bar 1 closes exactly at 02:00 -> not yet 0.2; bar 2 sees 0.2
    np.testing.assert_array_equal(out["funding_rate"].to_numpy(), [0.1, 0.1, 0.2, 0.2])
    before = align_to_bars(bars, events.assign(datetime=events["datetime"] + pd.Timedelta("9h")),
                           "1h", ["funding_rate"])
    assert before["funding_rate"].isna().all()  # nothing invented before the first event
