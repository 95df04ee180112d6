"""Fixtures for the ingest API tests: ``make_ingest(**app_options)`` / ``ingest`` start a real
uvicorn server on a free 127.0.0.1 port against a fresh database of the MongoDB dev server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ingest_helpers import Ingest, start_ingest
from pymongo.database import Database

from signal_export.ingest.server import BackgroundServer


@pytest.fixture
def make_ingest(mongo_db: Database) -> Iterator[Callable[..., Ingest]]:
    """Start an ingest server with app options (``max_body_bytes``, ``grace_seconds``, ...)."""
    started: list[tuple[BackgroundServer, Ingest]] = []

    def make(**app_kwargs: Any) -> Ingest:
        started.append(start_ingest(mongo_db, **app_kwargs))
        return started[-1][1]

    yield make
    for server, ingest in started:
        ingest.client.close()
        server.stop()


@pytest.fixture
def ingest(make_ingest: Callable[..., Ingest]) -> Ingest:
    return make_ingest()


# --- the strategy team's freqtrade fixtures, for the round trip API -> backtesting -----------

def _load_strategy_fixtures() -> Any:
    """tests/strategy/conftest.py under its own module name (its helpers import by path)."""
    import importlib.util
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "strategy"
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    spec = importlib.util.spec_from_file_location("strategy_conftest_for_ingest",
                                                  here / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


try:
    _strategy = _load_strategy_fixtures()
    standin = _strategy.standin
    freqtrade_cli = _strategy.freqtrade_cli
    run_backtest = _strategy.run_backtest
except (ImportError, AttributeError, OSError) as _exc:  # their helpers moved: fail loudly, here
    _missing = f"tests/strategy fixtures unavailable for the round trip: {_exc!r}"

    @pytest.fixture
    def run_backtest() -> None:
        pytest.fail(_missing)
