"""ext_signals settings, the shipped configs, and the strategy as Freqtrade's CLI sees it."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import timedelta
from enum import Enum

import pytest
from strategy_helpers import FREQTRADE, REPO, deep_merge, freqtrade_env

from devservers.exchange.overlay import freqtrade_exchange_overlay
from signal_export.consumer.config import (
    ConfigError,
    ExtSignalsConfig,
    describe_sources,
    load_config,
)

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
    assert cfg.signal_view == "latest" and cfg.history_collection_name() == "crypto_signals_history"
    known = load_config(ft({"strategy_ids": ["a"], "signal_view": "as_known",
                            "history_collection": "h"}), env={})
    assert known.signal_view == "as_known" and known.history_collection_name() == "h"


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
    ({"strategy_ids": ["a"], "signal_view": "asknown"},
     "ext_signals.signal_view: Value error, must be one of latest, as_known (got 'asknown')"),
    ({"strategy_ids": ["a"], "history_collection": " "}, "ext_signals.history_collection"),
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


@pytest.mark.parametrize("name", ["backtest", "dry-run", "live", "futures"])
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


def test_sources_name_where_each_setting_came_from(tmp_path):
    sources: dict[str, str] = {}
    cfg = load_config(ft({"strategy_ids": ["demo"], "db": "cfgdb"}),
                      env={"EXT_SIG_STRATEGY_ID": "model", "EXT_SIG_DB": "cfgdb"},
                      sources=sources)
    assert sources == {
        "mongo_uri": "default", "db": "EXT_SIG_DB in the environment (the config's "
                                      "ext_signals.db is the same)",
        "collection": "default",
        "strategy_ids": "EXT_SIG_STRATEGY_ID in the environment, overriding the config's "
                        "ext_signals.strategy_ids=['demo']"}
    overridden, line = describe_sources(sources, cfg)
    assert overridden and "strategy_ids=model from EXT_SIG_STRATEGY_ID" in line
    # a URI from the environment replacing the config's: neither password is shown
    sources = {}
    cfg = load_config(ft({"strategy_ids": ["a"], "mongo_uri": "mongodb://u:cfgpw@h"}),
                      env={"EXT_SIG_MONGO_URI": "mongodb://u:envpw@h"}, sources=sources)
    line = describe_sources(sources, cfg)[1]
    assert "cfgpw" not in line and "envpw" not in line and "overriding" in line
    # the same id from a .env file: named as the file; not an override
    env_file = tmp_path / ".env"
    env_file.write_text("EXT_SIG_STRATEGY_ID=a, b\n")
    sources = {}
    import os

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("EXT_SIG_")}
    try:
        cfg = load_config(ft({"strategy_ids": ["a", "b"]}), dotenv_path=env_file,
                          sources=sources)
    finally:
        for k in [k for k in os.environ if k.startswith("EXT_SIG_")]:
            del os.environ[k]
        os.environ.update(saved)
    assert sources["strategy_ids"] == (f"EXT_SIG_STRATEGY_ID in {env_file} (the config's "
                                       "ext_signals.strategy_ids is the same)")
    assert not describe_sources(sources, cfg)[0]


def test_shipped_configs_trade_what_the_shipped_pipelines_export():
    import yaml

    from research.pipeline.config import load_config as load_pipeline
    from signal_export.consumer.matching import DecisionSettings
    from signal_export.contract import symbol_to_pair

    demo = load_pipeline(CONFIGS / "pipeline.demo.yaml")
    backtest = json.loads((CONFIGS / "config.backtest.json").read_text())
    assert backtest["ext_signals"]["strategy_ids"] == [demo.export.strategy_id]
    assert backtest["timeframe"] == demo.timeframe
    # and with the pipeline's decision settings, so the backtest is the research backtest
    for key, value in demo.ext_signals.model_dump().items():
        assert backtest["ext_signals"][key] == value, key
    # the dry-run bot trades a strategy the shipped scheduler jobs export, on its timeframe
    jobs = yaml.safe_load((CONFIGS / "jobs.example.yaml").read_text())["jobs"]
    exported = set()
    for job in jobs:
        pipe = load_pipeline(REPO / job["pipeline"])
        exported.add((pipe.export.strategy_id, job.get("timeframe", pipe.timeframe)))
    dry = json.loads((CONFIGS / "config.dry-run.json").read_text())
    assert [(sid, dry["timeframe"]) for sid in dry["ext_signals"]["strategy_ids"]] == [
        ("minute_rank", "1m")]
    assert ("minute_rank", "1m") in exported
    # the futures bot trades the futures pipeline's book: its id, timeframe, pairs, leverage
    fut_pipe = load_pipeline(CONFIGS / "pipeline.futures.yaml")
    fut = json.loads((CONFIGS / "config.futures.json").read_text())
    assert fut["ext_signals"]["strategy_ids"] == [fut_pipe.export.strategy_id]
    assert fut["timeframe"] == fut_pipe.timeframe
    assert fut["exchange"]["pair_whitelist"] == [symbol_to_pair(s) for s in fut_pipe.universe]
    assert fut["ext_signals"]["max_leverage"] >= fut_pipe.generator.params["leverage"]
    for key, value in fut_pipe.ext_signals.model_dump().items():
        assert fut["ext_signals"].get(key, DecisionSettings.model_fields[key].default) == value


def _shown(value) -> str:
    """A model default as the README table writes it."""
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "off"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return json.dumps(list(value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


#: Required fields the table describes instead of "(required)".
TABLE_DEFAULT_TEXT = {"timeframe": "(Freqtrade's `timeframe`)"}


def test_the_readme_settings_table_is_the_settings_model():
    """Every ext_signals key is in consumer/README.md's table, with its real default."""
    text = (REPO / "signal_export" / "consumer" / "README.md").read_text()
    table = text.split("| key | default | meaning |", 1)[1].split("\n\n", 1)[0]
    documented: dict[str, str] = {}
    for row in table.strip().splitlines()[1:]:
        keys_cell, default_cell = [c.strip() for c in row.strip("|").split("|")[:2]]
        keys = re.findall(r"`(\w+)`", keys_cell)
        defaults = re.split(r" / |, ", default_cell) if len(keys) > 1 else [default_cell]
        assert len(keys) == len(defaults), row
        for key, default in zip(keys, defaults, strict=True):
            assert key not in documented, f"{key} twice"
            documented[key] = default
    fields = ExtSignalsConfig.model_fields
    assert set(documented) == set(fields), (sorted(set(fields) - set(documented)),
                                            sorted(set(documented) - set(fields)))
    for key, info in fields.items():
        if info.is_required():
            expected = TABLE_DEFAULT_TEXT.get(key, "(required)")
        else:
            expected = _shown(info.get_default(call_default_factory=True))
        assert documented[key].strip("`") == expected, (key, documented[key], expected)


def test_the_readmes_freqtrade_commands_parse_with_freqtrades_own_cli():
    """The everyday freqtrade lines of README.md are pasteable: Freqtrade's argument parser
    takes them, and none searches user_data/strategies twice (``DUPLICATE NAME``)."""
    import shlex

    from freqtrade.commands import Arguments

    lines = [ln.split("   #")[0].strip() for ln in (REPO / "README.md").read_text().splitlines()
             if ln.startswith(".venv/bin/freqtrade ")]
    subcommands = {shlex.split(ln)[1] for ln in lines}
    assert {"plot-dataframe", "hyperopt", "list-strategies", "backtesting", "trade"} <= subcommands
    for line in lines:
        argv = shlex.split(line)[1:]
        parsed = Arguments(argv).get_parsed_arg()
        assert parsed.get("command") == argv[0], line
        if parsed.get("strategy_path"):
            assert "user_data" not in parsed["strategy_path"], line
        for path in parsed.get("config") or []:
            assert (REPO / path).is_file(), line
