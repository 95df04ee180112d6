"""Candles written in Freqtrade's own format load back unchanged through Freqtrade."""

from __future__ import annotations

import pandas as pd
import pytest
from freqtrade.data.history import get_datahandler
from freqtrade.enums import CandleType

from research.data.freqtrade_candles import write_freqtrade_candles
from research.data.synthetic import generate_ohlcv
from signal_export.contract import ContractError


def test_freqtrade_reads_back_the_same_candles(tmp_path, market):
    candles = generate_ohlcv(market, "2024-01-01T00:00Z", "2024-01-03T00:00Z", "1h")
    files = write_freqtrade_candles(candles, tmp_path, "1h")
    assert sorted(f.name for f in files) == ["BTC_USDT-1h.feather", "ETH_USDT-1h.feather"]
    loaded = get_datahandler(tmp_path, "feather").ohlcv_load(
        "ETH/USDT", "1h", candle_type=CandleType.SPOT, fill_missing=False)
    want = candles[candles["symbol"] == "BINANCE:ETHUSDT"].drop(columns="symbol")
    assert len(loaded) == 48
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True),
                                  want.rename(columns={"datetime": "date"}).reset_index(drop=True),
                                  check_dtype=False)
    assert str(loaded["date"].dtype).endswith("UTC]")


def test_naive_times_are_refused(tmp_path, market):
    candles = generate_ohlcv(market, "2024-01-01T00:00Z", "2024-01-02T00:00Z", "1h")
    with pytest.raises(ContractError, match="tz-aware"):
        write_freqtrade_candles(candles.assign(datetime=candles["datetime"].dt.tz_localize(None)),
                                tmp_path, "1h")
