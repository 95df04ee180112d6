"""The registry's engine: per-symbol independence, cross-section, missing data, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from factor_data import ohlcv, with_crypto_columns

from research.factors import (
    FactorError,
    MissingDataError,
    available_factors,
    compute_factors,
    list_factors,
)

A, B, C = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT"
OHLCV_FACTORS = [n for n, f in list_factors().items() if f.requires <= {"ohlcv", "close"}]


def _of(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return frame[frame["symbol"] == symbol].drop(columns="symbol").reset_index(drop=True)


def test_one_symbols_data_never_leaks_into_anothers():
    a = ohlcv(800, A, 1)
    alone = compute_factors(a, OHLCV_FACTORS)
    # B overlaps A's time span, starts earlier, has wildly different prices; rows interleaved.
    b = ohlcv(900, B, 2, start="2023-12-31 23:00", price=5.0)
    mixed = pd.concat([a, b]).sample(frac=1.0, random_state=0)
    together = compute_factors(mixed, OHLCV_FACTORS)
    pd.testing.assert_frame_equal(_of(together, A), _of(alone, A))
    # Changing B's data changes nothing for A.
    b2 = b.assign(close=b["close"] * 3, high=b["high"] * 3, low=b["low"] * 0.1, volume=1e9)
    changed = compute_factors(pd.concat([a, b2]), OHLCV_FACTORS)
    pd.testing.assert_frame_equal(_of(changed, A), _of(alone, A))
    assert not _of(changed, B).equals(_of(together, B))


def test_output_is_tidy_and_sorted_by_symbol_then_time():
    frame = pd.concat([ohlcv(50, B, 1), ohlcv(60, A, 2)]).iloc[::-1]
    out = compute_factors(frame, ["rsi", "ret"], keep=["close"])
    assert list(out.columns) == ["datetime", "symbol", "close", "rsi_14", "ret_1"]
    assert out["datetime"].dtype == frame["datetime"].dtype
    assert len(out) == 110
    assert out.groupby("symbol")["datetime"].apply(lambda s: s.is_monotonic_increasing).all()


def test_cross_sectional_rank_and_zscore_per_timestamp():
    ts = pd.date_range("2024-01-01", periods=2, freq="1D", tz="UTC")
    rows = []
    for sym, closes in ((A, [100.0, 110.0]), (B, [100.0, 90.0]), (C, [100.0, 100.0])):
        for t, c in zip(ts, closes, strict=True):
            rows.append({"datetime": t, "symbol": sym, "open": c, "high": c, "low": c,
                         "close": c, "volume": 1.0})
    out = compute_factors(pd.DataFrame(rows), ["ret"], cross_section=["rank", "zscore"])
    last = out[out["datetime"] == ts[1]].set_index("symbol")
    assert last.loc[A, "ret_1_rank"] == pytest.approx(1.0)
    assert last.loc[C, "ret_1_rank"] == pytest.approx(2 / 3)
    assert last.loc[B, "ret_1_rank"] == pytest.approx(1 / 3)
    # returns +0.1, -0.1, 0 -> mean 0, sample std 0.1 -> z = +1, -1, 0
    assert last.loc[A, "ret_1_z"] == pytest.approx(1.0)
    assert last.loc[B, "ret_1_z"] == pytest.approx(-1.0)
    assert last.loc[C, "ret_1_z"] == pytest.approx(0.0)
    first = out[out["datetime"] == ts[0]]
    assert first["ret_1_rank"].isna().all()  # no return yet: no rank either


def test_missing_data_is_skipped_with_a_clear_message(caplog):
    frame = ohlcv(100, A, 1)
    with caplog.at_level(logging.WARNING):
        out = compute_factors(frame, ["rsi", "funding", "basis", "orderbook_imbalance"])
    assert "rsi_14" in out.columns
    assert "funding_rate" not in out.columns and "basis_bps" not in out.columns
    assert set(out.attrs["skipped"]) == {"funding", "basis", "orderbook_imbalance"}
    assert "funding_rate" in out.attrs["skipped"]["funding"]
    assert any("mark_price" in r.getMessage() for r in caplog.records)
    with pytest.raises(MissingDataError, match="funding_rate"):
        compute_factors(frame, ["funding"], on_missing="raise")


def test_crypto_factors_run_when_their_data_exists():
    frame = with_crypto_columns(ohlcv(1000, A, 1), seed=3)
    out = compute_factors(frame, ["funding", "basis", "orderbook_imbalance"])
    basis = (frame["mark_price"] - frame["index_price"]) / frame["index_price"] * 1e4
    np.testing.assert_allclose(out["basis_bps"], basis, rtol=1e-12)
    imb = (frame["bid_depth"] - frame["ask_depth"]) / (frame["bid_depth"] + frame["ask_depth"])
    np.testing.assert_allclose(out["ob_imbalance"], imb, rtol=1e-12)
    np.testing.assert_allclose(out["funding_mean_480"].iloc[479],
                               frame["funding_rate"].iloc[:480].mean(), rtol=1e-12)


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.assign(datetime=f["datetime"].dt.tz_localize(None)), "tz-aware"),
    (lambda f: pd.concat([f, f.iloc[[3]]]), "duplicate bars"),
    (lambda f: f.drop(columns="symbol"), "'symbol'"),
])
def test_bad_input_frame_is_rejected_naming_the_problem(change, message):
    with pytest.raises(FactorError, match=message):
        compute_factors(change(ohlcv(20, A, 1)), ["rsi"])


@pytest.mark.parametrize(("request_", "message"), [
    ("no_such_factor", "unknown factor 'no_such_factor'"),
    ({"name": "rsi", "params": {"periode": 3}}, "unknown parameter"),
    ({"params": {}}, "no 'name'"),
])
def test_bad_factor_request_names_it(request_, message):
    with pytest.raises(FactorError, match=message):
        compute_factors(ohlcv(20, A, 1), [request_])


def test_two_requests_producing_one_column_are_rejected():
    with pytest.raises(FactorError, match="rsi_14"):
        compute_factors(ohlcv(20, A, 1), ["rsi", {"name": "rsi", "params": {"period": 14}}])


def test_empty_input_gives_empty_frame_with_columns():
    out = compute_factors(ohlcv(5, A, 1).iloc[:0], ["rsi", "macd"])
    assert list(out.columns) == ["datetime", "symbol", "rsi_14", "macd_12_26_9",
                                 "macd_signal_12_26_9", "macd_hist_12_26_9"]
    assert len(out) == 0


def test_capability_check_lists_what_each_factor_lacks():
    caps = available_factors(["datetime", "symbol", "open", "high", "low", "close", "volume"])
    assert caps["rsi"] == [] and caps["adx"] == []
    assert caps["funding"] == ["funding_rate"]
    assert set(caps["basis"]) == {"index_price", "mark_price"}
    assert set(available_factors(["close"])["atr"]) == {"open", "high", "low", "volume"}
