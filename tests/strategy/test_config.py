"""ext_signals settings, the shipped configs, and the strategy as Freqtrade's CLI sees it."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from strategy_helpers import FREQTRADE, REPO, deep_merge, freqtrade_env

from devservers.exchange.overlay import freqtrade_exchange_overlay
from signal_export.consumer.config import ConfigError, load_config

CONFIGS = REPO / "configs"


def ft(block: dict | None = None, **top) -> dict:
    return {"timeframe": "1h", "ext_signals": block or {}, **top}


def test_timeframe_comes_from_the_freqtrade_config_and_must_be_valid():
    assert load_config({"timeframe": "4h", "ext_signals": {"strategy_ids": ["a"]}},
                       env={}).timeframe == "4h"
    with pytest.raises(ConfigError, match="ext_signals.timeframe"):
        load_config({"timeframe": "7m", "ext_signals": {"strategy_ids": ["a"]}}, env={})


def test_defaults_and_rules():
    cfg = load_config(ft({"strategy_ids": ["a"]}), env={})
    rules = cfg.to_rules()
    assert rules.tolerance_bars == 1 and rules.max_delay == timedelta(hours=3)
    assert cfg.missing_signal_policy.value == "hold"


def test_env_overrides_block_and_splits_comma_list():
    env = {"EXT_SIG_STRATEGY_ID": "risk, model", "EXT_SIG_MONGO_URI": "mongodb://h:1",
           "EXT_SIG_DB": "d", "EXT_SIG_COLLECTION": "c"}
    cfg = load_config(ft({"strategy_ids": ["x"], "db": "ignored"}), env=env)
    assert cfg.strategy_ids == ("risk", "model")
    assert (cfg.mongo_uri, cfg.db, cfg.collection) == ("mongodb://h:1", "d", "c")
    assert cfg.to_rules().strategy_priority == ("risk", "model")


def test_dotenv_file_is_read_but_never_overrides_real_env(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("EXT_SIG_STRATEGY_ID=from-dotenv\nEXT_SIG_DB=dotdb\n")
    monkeypatch.delenv("EXT_SIG_STRATEGY_ID", raising=False)
    monkeypatch.setenv("EXT_SIG_DB", "realdb")
    cfg = load_config(ft(), dotenv_path=env_file)
    assert cfg.strategy_ids == ("from-dotenv",) and cfg.db == "realdb"


@pytest.mark.parametrize(("block", "needle"), [
    ({"strategy_ids": ["a"], "tolerance_bar": 2}, "ext_signals.tolerance_bar: Extra inputs"),
    ({"strategy_ids": ["a"], "tolerance_bars": 0}, "ext_signals.tolerance_bars"),
    ({"strategy_ids": ["a"], "confirm_n": "two"}, "ext_signals.confirm_n"),
    ({"strategy_ids": ["a"], "missing_signal_policy": "panic"},
     "ext_signals.missing_signal_policy"),
    ({"strategy_ids": ["a"], "enter_score": 0.3, "exit_score": 0.5}, "exit_score (0.5)"),
    ({"strategy_ids": ["a"], "max_stake_fraction": 1.5}, "ext_signals.max_stake_fraction"),
    ({"strategy_ids": ["a", "a"]}, "duplicate strategy id"),
    ({"strategy_ids": []}, "ext_signals.strategy_ids"),
    ({}, "EXT_SIG_STRATEGY_ID"),
    ({"strategy_ids": ["a"], "mongo_uri": "http://x"}, "ext_signals.mongo_uri"),
    ({"strategy_ids": ["a"], "timeframe": "7m"}, "ext_signals.timeframe"),
    ({"strategy_ids": ["a"], "timeframe": "1d"}, "differs from the strategy timeframe"),
])
def test_bad_settings_fail_with_the_key_named(block, needle):
    with pytest.raises(ConfigError) as err:
        load_config(ft(block), env={})
    assert needle in str(err.value)


def test_password_never_in_error_or_log_form():
    cfg = load_config(ft({"strategy_ids": ["a"]}),
                      env={"EXT_SIG_MONGO_URI": "mongodb://reader:s3cret@db:27017/x"})
    assert "s3cret" not in cfg.redacted_uri() and "reader" in cfg.redacted_uri()
    with pytest.raises(ConfigError) as err:
        load_config(ft({"strategy_ids": ["a"]}), env={"EXT_SIG_MONGO_URI": "mongo://u:s3cret@h"})
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize("name", ["backtest", "dry-run", "live"])
def test_shipped_configs_pass_freqtrade_show_config(name, tmp_path):
    path = CONFIGS / f"config.{name}.json"
    proc = subprocess.run([FREQTRADE, "show-config", "-c", str(path), "--userdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=freqtrade_env(),
                          cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Your combined configuration is" in out, out[-3000:]
    assert " ERROR " not in out
    cfg = json.loads(path.read_text())
    env = {"EXT_SIG_STRATEGY_ID": "from-env"} if name == "live" else {}
    load_config(cfg, env=env)  # the ext_signals block itself is valid
    assert cfg["entry_pricing"]["price_side"] == "other"
    if name == "live":
        assert cfg["dry_run"] is False and cfg["exchange"]["key"] == "" == cfg["exchange"]["secret"]
        with pytest.raises(ConfigError, match="EXT_SIG_STRATEGY_ID"):
            load_config(cfg, env={})  # live never trades a default strategy id


def test_offline_template_matches_the_stand_in_helper():
    template = (CONFIGS / "config.offline.template.json").read_text()
    url = "http://127.0.0.1:43210"
    assert json.loads(template.replace("{PORT}", "43210")) == freqtrade_exchange_overlay(url)


def test_list_strategies_shows_external_signal_strategy(tmp_path):
    proc = subprocess.run([FREQTRADE, "list-strategies", "--userdir", str(tmp_path),
                           "--strategy-path", str(REPO / "user_data" / "strategies")],
                          capture_output=True, text=True, timeout=120, env=freqtrade_env(),
                          cwd=tmp_path)
    lines = [ln for ln in proc.stdout.splitlines() if "ExternalSignalStrategy" in ln]
    assert proc.returncode == 0 and len(lines) == 1, proc.stdout + proc.stderr
    assert " OK " in lines[0]


@pytest.mark.freqtrade
def test_bad_ext_signals_stop_freqtrade_at_startup_with_a_clear_message(tmp_path, standin):
    base = json.loads((CONFIGS / "config.backtest.json").read_text())
    cfg = deep_merge(deep_merge(base, standin.overlay()), {"ext_signals": {"tolerance_bar": 2}})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    (tmp_path / "data" / "binance").mkdir(parents=True)
    proc = subprocess.run([FREQTRADE, "backtesting", "-c", str(path), "--userdir", str(tmp_path),
                           "--strategy-path", str(REPO / "user_data" / "strategies"),
                           "--timerange", "20260101-20260102"],
                          capture_output=True, text=True, timeout=120, env=freqtrade_env(),
                          cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ext_signals.tolerance_bar: Extra inputs are not permitted" in out
