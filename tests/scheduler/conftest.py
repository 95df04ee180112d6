"""Fixtures of the scheduler tests."""

from __future__ import annotations

import pytest
from scheduler_data import T0, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)
