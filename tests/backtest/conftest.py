"""Builders for small wide price/signal frames used across the backtest tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

START = pd.Timestamp("2024-01-01", tz="UTC")


def wide(values: dict[str, list[float]] | list[float], timeframe: str = "1d",
         start: pd.Timestamp = START) -> pd.DataFrame:
    """A bars x symbols frame on the ``timeframe`` grid; a plain list is symbol 'A'."""
    data = {"A": values} if isinstance(values, list) else values
    n = len(next(iter(data.values())))
    step = pd.Timedelta(timeframe.replace("m", "min").replace("d", "D"))
    index = pd.date_range(start, periods=n, freq=step)
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in data.items()}, index=index)


@pytest.fixture
def frame() -> Callable[..., pd.DataFrame]:
    return wide
