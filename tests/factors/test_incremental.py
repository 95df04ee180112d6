"""Incremental mode: the newest bar from truncated history equals the full recomputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from factor_data import ohlcv, with_crypto_columns

from research.factors import compute_factors, history_length, latest_factors, list_factors

SYMBOLS = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT"]


@pytest.fixture(scope="module")
def long_history() -> pd.DataFrame:
    frames = [with_crypto_columns(ohlcv(6000, s, i, price=[30000.0, 2000.0, 20.0][i]), seed=i)
              for i, s in enumerate(SYMBOLS)]
    return pd.concat(frames, ignore_index=True)


def _assert_close(inc: pd.DataFrame, full: pd.DataFrame, columns: list[str]) -> None:
    for col in columns:
        got, exp = inc[col].to_numpy(), full[col].to_numpy()
        assert np.array_equal(np.isnan(got), np.isnan(exp)), col
        ok = ~np.isnan(exp)
        err = np.abs(got[ok] - exp[ok]) / np.maximum(1.0, np.abs(exp[ok]))
        assert err.max(initial=0.0) <= 1e-9, f"{col}: max error {err.max():.3g}"


@pytest.mark.parametrize("name", sorted(list_factors()))
def test_newest_bar_from_stored_history_equals_full_recompute(long_history, name):
    full = compute_factors(long_history, [name]).groupby("symbol").tail(1)
    need = history_length([name])
    stored = long_history.groupby("symbol").tail(need)
    inc = latest_factors(stored, [name])
    assert list(inc["symbol"]) == sorted(SYMBOLS)
    full = full.sort_values("symbol").reset_index(drop=True)
    pd.testing.assert_series_equal(inc["datetime"], full["datetime"])
    columns = [c for c in full.columns if c not in ("datetime", "symbol")]
    assert columns, name
    _assert_close(inc, full, columns)
    assert not inc[columns].isna().all().any(), f"{name}: all NaN - the test would prove nothing"


def test_all_factors_at_once_with_a_young_symbol(long_history):
    names = sorted(list_factors())
    need = history_length(names)
    young = with_crypto_columns(ohlcv(300, "BINANCE:NEWUSDT", 9), seed=9)  # fewer bars than needed
    data = pd.concat([long_history, young], ignore_index=True)
    full = compute_factors(data, names).groupby("symbol").tail(1)
    full = full.sort_values("symbol").reset_index(drop=True)
    inc = latest_factors(data.groupby("symbol").tail(need), names)
    assert list(inc.columns) == list(full.columns)
    _assert_close(inc, full, [c for c in full.columns if c not in ("datetime", "symbol")])


def test_too_short_a_window_would_not_be_exact(long_history):
    # Shows why the warm-up exists: RSI from only its lookback differs from the full value.
    full = compute_factors(long_history, ["rsi"]).groupby("symbol").tail(1)
    short = long_history.groupby("symbol").tail(16)
    from research.factors.registry import resolve_spec

    spec = resolve_spec("rsi")
    first = short[short["symbol"] == SYMBOLS[0]]
    truncated = spec.compute({"close": first["close"].to_numpy(float)})["rsi_14"][-1]
    exact = full[full["symbol"] == SYMBOLS[0]]["rsi_14"].iloc[0]
    assert abs(truncated - exact) > 1e-9
    assert history_length(["rsi"]) > 16


@pytest.mark.parametrize("name", ["rsi", "atr", "adx", "macd", "ema"])
def test_declared_warmup_covers_the_measured_need(long_history, name):
    from research.factors.incremental import measure_warmup
    from research.factors.registry import resolve_spec

    one = long_history[long_history["symbol"] == SYMBOLS[0]]
    bars = {c: one[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")}
    needed = measure_warmup(name, bars, tol=1e-9)
    assert resolve_spec(name).lookback < needed <= resolve_spec(name).warmup
