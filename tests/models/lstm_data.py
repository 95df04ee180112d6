"""Small synthetic OHLCV frames for the LSTM tests: a planted pattern and pure noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from research.models import LSTMConfig


def planted_ohlcv(n_bars: int = 1200, symbols: tuple[str, ...] = ("BINANCE:BTCUSDT",
                                                                  "BINANCE:ETHUSDT"),
                  phi: float = 0.6, lag: int = 2, seed: int = 7,
                  start: str = "2026-01-01") -> pd.DataFrame:
    """1m bars whose log return follows r_t = phi * r_{t-lag} + noise (phi=0: pure noise).

    So the sign of the next bar's return is predictable from a lagged return that
    the 'ret' factor exposes inside a sequence window.
    """
    rng = np.random.default_rng(seed)
    frames = []
    times = pd.date_range(start, periods=n_bars, freq="1min", tz="UTC")
    for sym in symbols:
        noise = rng.normal(0.0, 0.002, n_bars)
        r = noise.copy()
        for t in range(lag, n_bars):  # test-data construction only, not product code
            r[t] = phi * r[t - lag] + noise[t]
        close = 100.0 * np.exp(np.cumsum(r))
        open_ = np.r_[100.0, close[:-1]]
        spread = np.abs(rng.normal(0.0, 0.0005, n_bars))
        frames.append(pd.DataFrame({
            "datetime": times, "symbol": sym, "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close, "volume": rng.uniform(1.0, 10.0, n_bars)}))
    return pd.concat(frames, ignore_index=True)


TINY = {
    "features": ["ret", {"name": "zscore", "params": {"window": 10}}, "rsi"],
    "network": {"seq_len": 5, "hidden_size": 8, "num_layers": 1, "fc_size": 8, "dropout": 0.0},
    "train": {"epochs": 8, "batch_size": 128, "learning_rate": 0.02, "progress": False,
              "patience": 3, "num_threads": 1},
    "walk_forward": {"train_bars": 600, "test_bars": 300},
}


def tiny_config(**overrides) -> LSTMConfig:
    """A seconds-fast model config; keyword overrides replace whole sections."""
    data = {**TINY, **overrides}
    return LSTMConfig.model_validate(data)
