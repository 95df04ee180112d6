"""Factor templates equal direct TA-Lib / pandas computations, symbol by symbol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from factor_data import ohlcv

from research.factors import compute_factors, list_factors
from research.factors.technical import talib_reference

BTC, ETH = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"


@pytest.fixture(scope="module")
def two_symbols() -> pd.DataFrame:
    return pd.concat([ohlcv(1500, BTC, 1, price=30000.0), ohlcv(1200, ETH, 2, price=2000.0)],
                     ignore_index=True)


def _series(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return frame[frame["symbol"] == symbol].sort_values("datetime").reset_index(drop=True)


TALIB_CASES = [
    ("rsi", {"period": 14}, lambda b: {"rsi_14": talib.RSI(b["close"], 14)}),
    ("rsi", {"period": 7}, lambda b: {"rsi_7": talib.RSI(b["close"], 7)}),
    ("atr", {"period": 14}, lambda b: {"atr_14": talib.ATR(b["high"], b["low"], b["close"], 14)}),
    ("adx", {"period": 14}, lambda b: {"adx_14": talib.ADX(b["high"], b["low"], b["close"], 14)}),
    ("mfi", {"period": 14},
     lambda b: {"mfi_14": talib.MFI(b["high"], b["low"], b["close"], b["volume"], 14)}),
    ("macd", {"fast": 12, "slow": 26, "signal": 9},
     lambda b: dict(zip(("macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9"),
                        talib.MACD(b["close"], 12, 26, 9), strict=True))),
    ("ema", {"period": 50}, lambda b: {"ema_50": talib.EMA(b["close"], 50),
                                       "ema_dist_50": b["close"] / talib.EMA(b["close"], 50) - 1}),
    ("sma", {"period": 200},
     lambda b: {"sma_200": talib.SMA(b["close"], 200),
                "sma_dist_200": b["close"] / talib.SMA(b["close"], 200) - 1}),
]


@pytest.mark.parametrize(("name", "params", "direct"), TALIB_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in TALIB_CASES])
def test_talib_factor_equals_direct_talib_call(two_symbols, name, params, direct):
    out = compute_factors(two_symbols, [{"name": name, "params": params}])
    for symbol in (BTC, ETH):
        src = _series(two_symbols, symbol)
        bars = {c: src[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")}
        got = _series(out, symbol)
        for col, expected in direct(bars).items():
            np.testing.assert_array_equal(got[col].to_numpy(), expected, err_msg=f"{symbol} {col}")


@pytest.mark.parametrize(("name", "params"), [("bbands", {"period": 20, "nbdev": 2.0}),
                                              ("obv_delta", {"period": 20})])
def test_windowed_factor_matches_talib_to_1e9(two_symbols, name, params):
    out = compute_factors(two_symbols, [{"name": name, "params": params}])
    for symbol in (BTC, ETH):
        src = _series(two_symbols, symbol)
        bars = {c: src[c].to_numpy(float) for c in ("close", "volume")}
        got = _series(out, symbol)
        for col, expected in talib_reference(name, bars, params).items():
            assert np.isnan(got[col].to_numpy()).sum() == np.isnan(expected).sum(), col
            np.testing.assert_allclose(got[col].to_numpy(), expected, rtol=1e-9, atol=1e-9,
                                       err_msg=f"{symbol} {col}")


def test_statistical_factors_equal_pandas(two_symbols):
    out = compute_factors(two_symbols, [{"name": "ret", "params": {"horizon": 5}}, "volatility",
                                        "zscore", "range", "volume_spike"])
    for symbol in (BTC, ETH):
        s = _series(two_symbols, symbol)
        got = _series(out, symbol)
        close = s["close"]
        expected = {
            "ret_5": close.pct_change(5),
            "volatility_20": np.log(close).diff().rolling(20).std(ddof=0),
            "zscore_20": (close - close.rolling(20).mean()) / close.rolling(20).std(ddof=0),
            "range_high_20": s["high"].rolling(20).max(),
            "range_low_20": s["low"].rolling(20).min(),
            "volume_spike_20": s["volume"] / s["volume"].rolling(20).mean().shift(1),
        }
        expected["range_pos_20"] = ((close - expected["range_low_20"])
                                    / (expected["range_high_20"] - expected["range_low_20"]))
        for col, exp in expected.items():
            np.testing.assert_allclose(got[col].to_numpy(), exp.to_numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=f"{symbol} {col}")


def test_every_registered_factor_documents_itself_and_its_windows():
    for name, fdef in list_factors().items():
        assert fdef.doc, f"factor {name} has no docstring"
        params = dict(fdef.defaults)
        assert fdef.lookback(params) >= 1
        assert fdef.warmup(params) >= fdef.lookback(params), name
