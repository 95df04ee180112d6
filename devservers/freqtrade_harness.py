"""Driving the real ``freqtrade`` CLI offline: config merging, backtests and dry-run bots.

A development tool for the demo and the tests: it layers a project config from
``configs/`` with the exchange stand-in's overlay and run-specific settings,
then runs an unmodified ``freqtrade`` subcommand in a subprocess. Users run
``freqtrade`` themselves with ``configs/*.json``; nothing in the product
imports this module.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FREQTRADE = str(Path(sys.executable).with_name("freqtrade"))
STRATEGY_PATH = REPO / "user_data" / "strategies"


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Freqtrade's own left-to-right config merge semantics, for dicts in memory."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def shell_env() -> dict[str, str]:
    """This process's environment without EXT_SIG_* / FREQTRADE__* from the shell, and without
    a terminal size (pytest-xdist's workers set ``COLUMNS=80``, which makes Freqtrade's tables
    cut the names the tests look for)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("EXT_SIG_", "FREQTRADE__")) and k not in ("COLUMNS", "LINES")}


def freqtrade_env(**extra: str) -> dict[str, str]:
    """Subprocess env: :func:`shell_env` with the repo importable."""
    env = shell_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def write_config(path: Path, base: str, *layers: Mapping[str, Any]) -> Path:
    """``configs/<base>`` merged with ``layers`` (stand-in overlay, run settings) into ``path``."""
    config = json.loads((REPO / "configs" / base).read_text())
    for layer in layers:
        config = deep_merge(config, layer)
    path.write_text(json.dumps(config, indent=2))
    return path


def write_config_layers(directory: Path, **layers: Mapping[str, Any]) -> list[Path]:
    """Each layer as ``directory/<name>.json``, in order: ``freqtrade -c a -c b`` merges them
    left to right, so a test keeps its own settings apart from the stand-in's overlay."""
    paths = []
    for name, layer in layers.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(layer))
        paths.append(path)
    return paths


def config_argv(paths: Path | Sequence[Path]) -> list[str]:
    """``-c`` arguments for one config file or several (merged left to right)."""
    paths = [paths] if isinstance(paths, Path) else paths
    return [arg for path in paths for arg in ("-c", str(path))]


def standin_test_config(pairs: Sequence[str], *, use_order_book: bool,
                        dry_run_wallet: float = 1000) -> dict[str, Any]:
    """A minimal dry-run config for a test strategy: static ``pairs`` (one trade each), 1d,
    100 USDT stakes, 0.1% fee; prices from the order book or from the ticker."""
    pricing = {"price_side": "other", "use_order_book": use_order_book}
    return {
        "stake_currency": "USDT", "stake_amount": 100, "dry_run": True,
        "dry_run_wallet": dry_run_wallet, "max_open_trades": len(pairs), "timeframe": "1d",
        "fee": 0.001, "exchange": {"pair_whitelist": list(pairs)},
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": dict(pricing), "exit_pricing": dict(pricing),
    }


def dry_run_test_layer(db_path: Path, bot_name: str) -> dict[str, Any]:
    """Over :func:`standin_test_config`, for ``freqtrade trade --dry-run``: 1m candles, running
    at once, a 2 s loop, trades in ``db_path``, prices from the top of the order book."""
    pricing = {"price_side": "other", "use_order_book": True, "order_book_top": 1}
    return {"timeframe": "1m", "initial_state": "running", "bot_name": bot_name,
            "db_url": f"sqlite:///{db_path}", "internals": {"process_throttle_secs": 2},
            "entry_pricing": dict(pricing), "exit_pricing": dict(pricing)}


def always_in_strategy(name: str, *, short: bool = False, timeframe: str = "1d",
                       leverage: float | None = None) -> str:
    """Source of a test strategy that enters on every candle and never exits on a signal
    (ROI 100x, stop -99%): a test of the exchange stand-in checks fills, nothing else."""
    side = "short" if short else "long"
    lines = [
        "from freqtrade.strategy import IStrategy", "", "",
        f"class {name}(IStrategy):",
        "    INTERFACE_VERSION = 3",
        f'    timeframe = "{timeframe}"',
        *(["    can_short = True"] if short else []),
        '    minimal_roi = {"0": 100}',
        "    stoploss = -0.99",
        "    startup_candle_count = 0", "",
        "    def populate_indicators(self, dataframe, metadata):",
        "        return dataframe", "",
        "    def populate_entry_trend(self, dataframe, metadata):",
        f'        dataframe["enter_{side}"] = 1',
        "        return dataframe", "",
        "    def populate_exit_trend(self, dataframe, metadata):",
        f'        dataframe["exit_{side}"] = 0',
        "        return dataframe",
    ]
    if leverage is not None:
        lines += ["", "    def leverage(self, pair, current_time, current_rate, proposed_leverage,",
                  "                 max_leverage, entry_tag, side, **kwargs):",
                  f"        return {float(leverage)!r}"]
    return "\n".join(lines) + "\n"


def run_freqtrade(args: Sequence[str], cwd: Path, *, timeout: float,
                  env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """One ``freqtrade`` subcommand, output captured; ``env`` None inherits this process's."""
    return subprocess.run([FREQTRADE, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=None if env is None else dict(env))


def run_backtest(config_path: Path, userdir: Path, datadir: Path, timeframe: str, timerange: str,
                 env: Mapping[str, str], timeout: int = 300) -> pd.DataFrame:
    """``freqtrade backtesting`` of ExternalSignalStrategy; the trades it exported, as a frame."""
    from freqtrade.data.btanalysis import load_backtest_data

    results = userdir / "backtest_results"
    results.mkdir(parents=True, exist_ok=True)
    cmd = [FREQTRADE, *backtest_argv(config_path, userdir, datadir, timeframe, timerange,
                                     results)]
    proc = subprocess.run(cmd, cwd=userdir, capture_output=True, text=True, timeout=timeout,
                          env=dict(env))
    log = proc.stdout + proc.stderr
    (userdir / "freqtrade-backtesting.log").write_text(log)
    if proc.returncode != 0:
        raise RuntimeError(f"freqtrade backtesting failed ({proc.returncode}):\n{log[-4000:]}")
    trades = load_backtest_data(results)
    trades.attrs["log"] = log
    return trades


def leave_at_least(seconds: float) -> None:
    """Sleep into the next minute unless ``seconds`` remain in this one.

    An enter is for the last closed 1m candle; a bot acts on it only while that
    candle is the newest closed one. So a "write a signal, see it traded" phase
    must fit in one minute, or it fails on the clock rather than on the code.
    """
    now = datetime.now(UTC)
    left = 60 - now.second - now.microsecond / 1e6
    if left < seconds:
        time.sleep(left + 0.5)


TRADE_COLUMNS = ("id", "pair", "is_open", "open_date", "close_date", "open_rate", "close_rate",
                 "enter_tag", "exit_reason")


class DryRunBot:
    """``freqtrade trade --dry-run`` in a subprocess; trades read from its sqlite database.

    ``config_path`` may be several files (merged left to right); ``strategy`` and
    ``strategy_path`` name a test strategy instead of the config's in ``user_data``;
    ``env`` None inherits this process's environment.
    """

    def __init__(self, config_path: Path | Sequence[Path], userdir: Path, db_path: Path,
                 env: Mapping[str, str] | None, *, strategy: str | None = None,
                 strategy_path: Path = STRATEGY_PATH):
        self.config_path, self.userdir, self.db_path = config_path, userdir, db_path
        self.strategy, self.strategy_path = strategy, strategy_path
        self.env = None if env is None else dict(env)
        self.log_path = userdir / "freqtrade-dry-run.log"
        self._proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> DryRunBot:
        cmd = [FREQTRADE, "trade", "--dry-run", *config_argv(self.config_path),
               "--userdir", str(self.userdir),
               *(["--strategy", self.strategy] if self.strategy else []),
               "--strategy-path", str(self.strategy_path)]
        self._log = self.log_path.open("w")
        self._proc = subprocess.Popen(cmd, cwd=self.userdir, stdout=self._log,
                                      stderr=subprocess.STDOUT, env=self.env)
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def trades(self, columns: Sequence[str] = TRADE_COLUMNS) -> list[dict[str, Any]]:
        """``columns`` of every trade in the bot's database, oldest first ([] before it exists)."""
        if not self.db_path.exists():
            return []
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(
                f"select {', '.join(columns)} from trades order by id")]
        except sqlite3.OperationalError:  # tables not created yet
            return []
        finally:
            con.close()

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"freqtrade exited while waiting for {what}:\n"
                                   f"{self.log_text()[-4000:]}")
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"timed out waiting for {what}:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DryRunBot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def download_argv(config_path: Path | Sequence[Path], userdir: Path, datadir: Path,
                  timerange: str, *timeframes: str) -> list[str]:
    """``freqtrade download-data`` of the configs' pairs and ``timeframes`` into ``datadir``."""
    return ["download-data", *config_argv(config_path), "--userdir", str(userdir),
            "--datadir", str(datadir), "--timerange", timerange, "-t", *timeframes]


def backtest_argv(config_path: Path | Sequence[Path], userdir: Path, datadir: Path,
                  timeframe: str, timerange: str, results: Path, logfile: Path | None = None,
                  *, strategy: str = "ExternalSignalStrategy",
                  strategy_path: Path = STRATEGY_PATH) -> list[str]:
    """``freqtrade backtesting`` of ``strategy`` (ExternalSignalStrategy unless a test names
    its own), trades exported to ``results``."""
    return ["backtesting", *config_argv(config_path), "--userdir", str(userdir),
            "--datadir", str(datadir), "--strategy", strategy,
            "--strategy-path", str(strategy_path), "--timeframe", timeframe,
            "--timerange", timerange, "--cache", "none", "--export", "trades",
            "--backtest-directory", str(results),
            *(["--logfile", str(logfile)] if logfile is not None else [])]


def run_backtests_in_one_process(jobs: list[list[str]], workdir: Path, env: Mapping[str, str],
                                 timeout: int = 600) -> list[int]:
    """Run ``jobs`` (argv lists from :func:`backtest_argv`) with one Freqtrade start-up.

    Returns each job's exit code; see :mod:`devservers.freqtrade_batch`.
    """
    manifest = workdir / "freqtrade-batch.json"
    out = workdir / "freqtrade-batch-codes.json"
    manifest.write_text(json.dumps({"jobs": [{"argv": argv} for argv in jobs], "out": str(out)}))
    proc = subprocess.run([sys.executable, "-m", "devservers.freqtrade_batch", str(manifest)],
                          cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=dict(env))
    (workdir / "freqtrade-batch.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"freqtrade batch failed ({proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-4000:]}")
    return json.loads(out.read_text())
