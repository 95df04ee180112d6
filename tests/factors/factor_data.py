"""Small OHLCV frames built with numpy for the factor tests (imported by basename)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def ohlcv(n: int, symbol: str, seed: int, start: str = "2024-01-01", price: float = 100.0,
          freq: str = "1min") -> pd.DataFrame:
    """A seeded random-walk OHLCV frame for one symbol (tidy convention)."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    return pd.DataFrame({
        "datetime": pd.date_range(start, periods=n, freq=freq, tz="UTC"), "symbol": symbol,
        "open": open_, "high": high, "low": low, "close": close,
        "volume": rng.lognormal(3, 1, n),
    })


def with_crypto_columns(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Add funding, mark/index and depth columns so every registered factor can run."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    out = frame.copy()
    out["funding_rate"] = np.repeat(rng.normal(1e-4, 5e-5, n // 480 + 1), 480)[:n]
    out["index_price"] = out["close"]
    out["mark_price"] = out["close"] * (1 + rng.normal(0, 2e-4, n))
    out["bid_depth"] = rng.uniform(1, 10, n)
    out["ask_depth"] = rng.uniform(1, 10, n)
    return out
