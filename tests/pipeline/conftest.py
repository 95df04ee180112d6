"""Fixtures of the pipeline tests."""

from __future__ import annotations

import pytest

from signal_export.settings import Settings


@pytest.fixture
def settings() -> Settings:
    """Default settings, untouched by any .env of the checkout."""
    return Settings()
