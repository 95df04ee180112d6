"""Signal frames -> 0/1 positions for the backtest: actions, weights, scores, and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.pipeline import PositionsError, signals_to_positions
from research.signals import signal_frame

T = pd.date_range("2024-01-01", periods=5, freq="1D", tz="UTC")
BTC = "BINANCE:BTCUSDT"


def _market() -> pd.DataFrame:
    return pd.DataFrame({"datetime": T.astype("datetime64[ms, UTC]"), "symbol": BTC,
                         "open": 1.0, "close": 1.0})


def _signals(rows: list[int], **values) -> pd.DataFrame:
    return signal_frame(pd.Series(T[rows]), pd.Series([BTC] * len(rows)), timeframe="1d",
                        strategy_id="s", **values)


def test_actions_hold_between_changes():
    sig = _signals([1, 3], action=["enter_long", "exit_long"])
    pos = signals_to_positions(sig, _market())
    assert pos["position"].tolist() == [0, 1, 1, 0, 0]


def test_weights_decide_only_on_their_bars():
    sig = _signals([0, 2], weight=[0.5, 0.0])
    pos = signals_to_positions(sig, _market())
    assert np.array_equal(pos["position"].to_numpy(), [1, np.nan, 0, np.nan, np.nan],
                          equal_nan=True)


def test_scores_need_a_threshold():
    sig = _signals([0, 1, 2], score=[0.9, 0.2, 0.6])
    with pytest.raises(PositionsError, match="score_threshold"):
        signals_to_positions(sig, _market())
    pos = signals_to_positions(sig, _market(), score_threshold=0.5)
    assert np.array_equal(pos["position"].to_numpy(), [1, 0, 1, np.nan, np.nan], equal_nan=True)


def test_a_signal_off_the_market_grid_is_an_error_not_lost():
    market = _market().iloc[[0, 1, 3, 4]]  # bar 2 is missing
    with pytest.raises(PositionsError, match="2024-01-03"):
        signals_to_positions(_signals([2], weight=[1.0]), market)
    with pytest.raises(ValueError, match="not on the bar grid"):
        signals_to_positions(_signals([2], action=["enter_long"]), market)
