"""Fixtures of the scheduler tests."""

from __future__ import annotations

import pytest
from fakes import FakeClock
from scheduler_data import T0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)
