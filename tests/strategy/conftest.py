"""Fixtures for driving the real ``freqtrade`` CLI against the local stand-ins.

``standin``: the Binance-compatible HTTP stand-in (exchangeInfo for the pairs
below). ``freqtrade_cli``: writes constructed candles with Freqtrade's own data
handler, merges configs/config.backtest.json + the stand-in overlay + the
test's settings and runs a ``freqtrade`` subcommand in a subprocess.
``run_backtest``: ``freqtrade backtesting`` with that, returning the exported
trades read back with ``load_backtest_data``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from strategy_helpers import FREQTRADE, PAIRS, REPO, deep_merge, freqtrade_env, write_candles


@pytest.fixture(scope="session")
def standin() -> Iterator[Any]:
    from devservers.exchange.server import ExchangeStandIn

    with ExchangeStandIn(pairs=PAIRS) as server:
        yield server


@pytest.fixture
def freqtrade_cli(tmp_path: Path, standin: Any, mongo_uri: str) -> Callable[..., str]:
    def run(subcommand: str, db: str, candles: Mapping[str, pd.DataFrame],
            ext_signals: Mapping[str, Any], timerange: str, timeframe: str = "1h",
            config: Mapping[str, Any] | None = None, args: list[str] | None = None,
            timeout: int = 180, strategy_path: Path | None = None,
            env: Mapping[str, str] | None = None, check: bool = True) -> str:
        datadir = tmp_path / "data" / "binance"
        datadir.mkdir(parents=True, exist_ok=True)
        write_candles(datadir, candles, timeframe)
        base = json.loads((REPO / "configs" / "config.backtest.json").read_text())
        test_cfg = deep_merge(base, standin.overlay())
        test_cfg = deep_merge(test_cfg, {"timeframe": timeframe,
                                         "exchange": {"pair_whitelist": sorted(candles)}})
        test_cfg["ext_signals"] = dict(ext_signals)
        test_cfg = deep_merge(test_cfg, config or {})
        cfg_path = tmp_path / "config.json"
        cfg_path.write_text(json.dumps(test_cfg))
        cmd = [FREQTRADE, subcommand, "-c", str(cfg_path), "--userdir", str(tmp_path),
               "--datadir", str(datadir), "--strategy", "ExternalSignalStrategy",
               "--strategy-path", str(strategy_path or REPO / "user_data" / "strategies"),
               "--timeframe", timeframe, "--timerange", timerange, *(args or [])]
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                              env=freqtrade_env(EXT_SIG_MONGO_URI=mongo_uri, EXT_SIG_DB=db,
                                                **(env or {})))
        log = proc.stdout + proc.stderr
        (tmp_path / f"freqtrade-{subcommand}.log").write_text(log)
        if check:
            assert proc.returncode == 0, log[-4000:]
        return log

    return run


@pytest.fixture
def run_backtest(tmp_path: Path, freqtrade_cli: Callable[..., str]) -> Callable[..., pd.DataFrame]:
    def run(db: str, candles: Mapping[str, pd.DataFrame], ext_signals: Mapping[str, Any],
            timerange: str, timeframe: str = "1h", config: Mapping[str, Any] | None = None,
            args: list[str] | None = None, results: Path | None = None,
            **kwargs: Any) -> pd.DataFrame:
        from freqtrade.data.btanalysis import load_backtest_data

        results = results or tmp_path / "bt"
        results.mkdir(exist_ok=True)
        log = freqtrade_cli("backtesting", db, candles, ext_signals, timerange, timeframe, config,
                            ["--cache", "none", "--export", "trades", "--backtest-directory",
                             str(results), *(args or [])], **kwargs)
        trades = load_backtest_data(results)
        trades.attrs["log"] = log
        return trades

    return run


@pytest.fixture
def counted_client(mongo_uri):
    """A client whose find/read commands are counted: ``(client, FindCounter)``."""
    import pymongo
    from strategy_helpers import FindCounter

    listener = FindCounter()
    client = pymongo.MongoClient(mongo_uri, tz_aware=True, event_listeners=[listener])
    yield client, listener
    client.close()
