"""Bad settings stop a component at start-up with the key named, and never echo a password."""

from __future__ import annotations

import pytest
from corpus import BAD_ENV_SETTINGS, BAD_EXT_SIGNALS

from signal_export.consumer.config import ConfigError, load_config
from signal_export.consumer.logic import ExternalSignalLogic
from signal_export.contract import ContractError
from signal_export.settings import ENV_VARS, load_settings


@pytest.fixture
def clean_env(monkeypatch):
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("name,line,named", BAD_ENV_SETTINGS,
                         ids=[c[0] for c in BAD_ENV_SETTINGS])
def test_bad_env_file_value_names_the_variable(tmp_path, clean_env, name, line, named):
    env_file = tmp_path / ".env"
    env_file.write_text(f"EXT_SIG_MONGO_URI=mongodb://u:hunter2@db:27017\n{line}\n")
    with pytest.raises(ContractError) as info:
        load_settings(env_file)
    assert named in str(info.value) and "hunter2" not in str(info.value)


def test_unknown_setting_is_refused(clean_env):
    with pytest.raises(TypeError, match="batchsize"):
        load_settings(None, batchsize=10)


@pytest.mark.parametrize("name,block,named", BAD_EXT_SIGNALS,
                         ids=[c[0] for c in BAD_EXT_SIGNALS])
def test_bad_ext_signals_block_names_the_key(name, block, named):
    with pytest.raises(ConfigError) as info:
        load_config({"timeframe": "1h", "ext_signals": block}, env={})
    assert named in str(info.value)


def test_bad_uri_from_the_environment_is_named_without_its_password():
    env = {"EXT_SIG_MONGO_URI": "mongodb//reader:hunter2@db:27017", "EXT_SIG_STRATEGY_ID": "a"}
    with pytest.raises(ConfigError) as info:
        load_config({"timeframe": "1h"}, env=env)
    assert "ext_signals.mongo_uri" in str(info.value) and "hunter2" not in str(info.value)


def test_the_strategy_refuses_to_start_on_a_bad_block():
    with pytest.raises(ConfigError, match="tolerance_bars"):
        ExternalSignalLogic({"timeframe": "1h", "ext_signals": {
            "strategy_ids": ["a"], "tolerance_bars": -1}}, live=True, env={})
