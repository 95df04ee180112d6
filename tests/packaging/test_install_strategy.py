"""A trader gets the strategy with one command: ``signal-bridge install-strategy --userdir DIR``.

The command copies the strategy the package ships into ``DIR/strategies``;
Freqtrade then lists and loads it from that userdir (its own CLI and its
``StrategyResolver``). The repository's ``user_data/strategies`` file is a
subclass shim of the same packaged class, not a second copy. ``signal-bridge
freqtrade`` hands ``FREQTRADE__*_FILE`` secrets to Freqtrade as values.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devservers.freqtrade_harness import shell_env
from signal_export.bridge import install_strategy, main, resolve_file_variables
from signal_export.security.secrets import SecretError
from signal_export.strategies import STRATEGY_FILE, STRATEGY_NAME

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FILE_PASSWORD = "from-a-mounted-file-1234"  # pragma: allowlist secret


def _load(strategy_dir: Path, userdir: Path):
    from freqtrade.enums import RunMode
    from freqtrade.resolvers import StrategyResolver

    config = {"strategy": STRATEGY_NAME, "strategy_path": str(strategy_dir),
              "user_data_dir": userdir, "timeframe": "1h", "stake_currency": "USDT",
              "ext_signals": {"strategy_ids": ["demo"]}, "runmode": RunMode.BACKTEST,
              "dry_run": True, "trading_mode": "spot", "margin_mode": "",
              "stoploss": -0.99, "minimal_roi": {"0": 100}}
    return StrategyResolver.load_strategy(config)


def test_install_strategy_copies_the_packaged_file_and_is_idempotent(tmp_path, capsys):
    userdir = tmp_path / "user_data"
    assert main(["install-strategy", "--userdir", str(userdir)]) == 0
    target = userdir / "strategies" / f"{STRATEGY_NAME}.py"
    assert target.read_bytes() == STRATEGY_FILE.read_bytes()
    assert capsys.readouterr().out.startswith(f"installed: {target}")
    assert install_strategy(userdir) == (target, "unchanged")
    target.write_text(target.read_text() + "\n# local edit\n")
    assert main(["install-strategy", "--userdir", str(userdir)]) == 1
    assert "--force" in capsys.readouterr().err
    assert install_strategy(userdir, force=True) == (target, "updated")
    assert target.read_bytes() == STRATEGY_FILE.read_bytes()


def test_freqtrade_lists_and_loads_the_installed_strategy(tmp_path, monkeypatch):
    userdir = tmp_path / "user_data"
    subprocess.run([BIN / "signal-bridge", "install-strategy", "--userdir", str(userdir)],
                   check=True, capture_output=True, timeout=60)
    env = shell_env()  # not freqtrade_env: the installed strategy, not the repository's
    listed = subprocess.run([BIN / "freqtrade", "list-strategies", "--userdir", str(userdir)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    row = next(line for line in listed.stdout.splitlines() if STRATEGY_NAME in line)
    assert " OK " in row and "LOAD FAILED" not in row, row
    for name in [k for k in os.environ if k.startswith("EXT_SIG_")]:
        monkeypatch.delenv(name)
    strategy = _load(userdir / "strategies", userdir)
    assert type(strategy).__file__ == str(userdir / "strategies" / f"{STRATEGY_NAME}.py")
    assert strategy.ext.cfg.strategy_ids == ("demo",)


def test_the_repository_strategy_is_the_packaged_class_not_a_copy(monkeypatch):
    from signal_export.strategies.ExternalSignalStrategy import ExternalSignalStrategy

    for name in [k for k in os.environ if k.startswith("EXT_SIG_")]:
        monkeypatch.delenv(name)
    shim = REPO / "user_data" / "strategies" / f"{STRATEGY_NAME}.py"
    strategy = _load(shim.parent, REPO / "user_data")
    assert type(strategy).__mro__[1] is ExternalSignalStrategy
    overridden = sorted(k for k in vars(type(strategy)) if not k.startswith("_"))
    assert overridden == [], f"the shim overrides {overridden}"
    assert len(shim.read_text().splitlines()) < 30, "the shim must stay a shim"


def test_strategy_path_prints_the_packaged_directory(capsys):
    assert main(["strategy-path"]) == 0
    assert capsys.readouterr().out.strip() == str(STRATEGY_FILE.parent)


def test_freqtrade_file_secrets_become_values_and_the_file_variables_go(tmp_path):
    secret = tmp_path / "api_password"
    secret.write_text(f"{FILE_PASSWORD}\n")
    env = {"FREQTRADE__API_SERVER__PASSWORD_FILE": str(secret), "FREQTRADE__BOT_NAME": "b",
           "EXT_SIG_MONGO_URI_FILE": "/left/for/the/strategy"}
    assert resolve_file_variables(env) == ["FREQTRADE__API_SERVER__PASSWORD"]
    assert env == {"FREQTRADE__API_SERVER__PASSWORD": FILE_PASSWORD,
                   "FREQTRADE__BOT_NAME": "b", "EXT_SIG_MONGO_URI_FILE": "/left/for/the/strategy"}
    both = {"FREQTRADE__X_FILE": str(secret), "FREQTRADE__X": "y"}
    with pytest.raises(SecretError, match="both set"):
        resolve_file_variables(both)


def test_signal_bridge_freqtrade_runs_freqtrade_with_the_file_value(tmp_path):
    (tmp_path / "bot_name").write_text("bot-from-a-secret-file\n")
    config = tmp_path / "config.json"
    config.write_text('{"stake_currency": "USDT", "dry_run": true, "stake_amount": 10, '
                      '"max_open_trades": 1, "timeframe": "1h", "entry_pricing": {}, '
                      '"exit_pricing": {}, "pairlists": [{"method": "StaticPairList"}], '
                      '"exchange": {"name": "binance", "pair_whitelist": []}}')
    env = shell_env()
    env["FREQTRADE__BOT_NAME_FILE"] = str(tmp_path / "bot_name")
    proc = subprocess.run([BIN / "signal-bridge", "freqtrade", "show-config", "--userdir",
                           str(tmp_path), "--config", str(config)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"bot_name": "bot-from-a-secret-file"' in proc.stdout
