"""Fixtures of the reliability suite: a signals collection with its indexes, own servers.

``signals``: a fresh ``crypto_signals`` + ``export_runs`` pair (unique key and
run indexes created) on the session server. ``own_server``: a local dev server
process of the test's own, for tests that kill, stop or slow it down (never the
shared session server). The strategy engineer's helpers in ``tests/strategy``
are made importable here (``strategy_helpers``) instead of being copied.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from signal_export.store import ensure_runs_indexes, ensure_signal_indexes

STRATEGY_TESTS = Path(__file__).resolve().parents[1] / "strategy"
if str(STRATEGY_TESTS) not in sys.path:
    sys.path.insert(0, str(STRATEGY_TESTS))


@pytest.fixture
def signals(mongo_db) -> SimpleNamespace:
    coll, runs = mongo_db["crypto_signals"], mongo_db["export_runs"]
    ensure_signal_indexes(coll)
    ensure_runs_indexes(runs)
    return SimpleNamespace(db=mongo_db, coll=coll, runs=runs)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator:
    from devservers.mongo.process import LocalMongoProcess

    server = LocalMongoProcess(data_dir=tmp_path / "own-mongo").start()
    yield server
    server.stop()
