"""Fixtures for the factor tests."""

from __future__ import annotations

import pytest
from factor_data import ohlcv


@pytest.fixture
def make_ohlcv():
    return ohlcv
