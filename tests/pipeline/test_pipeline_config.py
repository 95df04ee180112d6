"""Pipeline configs: the examples load, and bad ones fail at load time naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_data import config_dict

from research.pipeline import PipelineConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["pipeline.demo.yaml", "pipeline.1m.yaml"])
def test_example_configs_load(name):
    config = load_config(ROOT / "configs" / name)
    assert config.universe == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT"]
    assert config.generator_config()["params"]["strategy_id"] == config.export.strategy_id


def test_symbols_in_either_form_and_inclusive_date_range():
    config = parse_config(config_dict(universe=["BTC/USDT", "BINANCE:ETHUSDT"],
                                      start="20240105", end="2024-01-10"))
    assert config.universe == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
    assert config.start_ts == pd.Timestamp("2024-01-05", tz="UTC")
    assert config.end_exclusive == pd.Timestamp("2024-01-11", tz="UTC")


def test_generator_inherits_strategy_id_timeframe_and_version():
    config = parse_config(config_dict(export={"strategy_id": "s1", "version": 3}))
    params = config.generator_config()["params"]
    assert (params["strategy_id"], params["timeframe"], params["version"]) == ("s1", "1d", 3)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"backtest": {"fee": 0.001, "slipage_bps": 5}}, "backtest.slipage_bps: unknown key"),
        ({"timeframe": "7x"}, "timeframe"),
        ({"universe": ["BTC/USDT", "BINANCE:BTCUSDT"]}, "listed twice"),
        ({"universe": ["BTC/XYZ"]}, "unknown quote currency 'XYZ'"),
        ({"factors": ["rsi", "no_such_factor"]}, "unknown factor 'no_such_factor'"),
        ({"factors": [{"name": "rsi", "params": {"window": 3}}]},
         "unknown parameter(s) ['window']"),
        ({"generator": {"type": "magic"}}, "generator type 'magic' is unknown"),
        ({"generator": {"type": "threshold", "params": {"enter": "rsi_14 <"}}},
         "generator: generator 'threshold': (params): rule 'rsi_14 <'"),
        ({"generator": {"type": "threshold",
                        "params": {"enter": "rsi_14 < 30", "strategy_id": "other"}}},
         "generator.params.strategy_id"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "before start"),
        ({"start": "2024-01-01T00:00:00"}, "start: '2024-01-01T00:00:00' has no UTC offset"),
        ({"backtest": {"weights": {"XRP/USDT": 0.5}}}, "not in the universe"),
        ({"backtest": {"fee": 2}}, "backtest.fee"),
        ({"export": {"strategy_id": "has space"}}, "export.strategy_id"),
        ({"export": {"strategy_id": "ok", "dryrun": True}}, "export.dryrun: unknown key"),
        ({"data": {"kind": "ftp"}}, "data"),
        ({"data": {"kind": "file"}}, "data.file.path"),
    ],
)
def test_bad_configs_fail_with_the_key_named(change, expected):
    with pytest.raises(PipelineConfigError) as err:
        parse_config(config_dict(**change), source="my.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("my.yaml: ")


def test_missing_required_keys_are_named():
    data = config_dict()
    del data["export"], data["factors"]
    with pytest.raises(PipelineConfigError) as err:
        parse_config(data)
    assert "export: Field required" in str(err.value)
    assert "factors: Field required" in str(err.value)


def test_json_and_yaml_files_load_the_same(tmp_path):
    data = config_dict()
    (tmp_path / "c.json").write_text(json.dumps(data))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    assert load_config(tmp_path / "c.json") == load_config(tmp_path / "c.yaml")


def test_unreadable_and_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(PipelineConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("universe: [BTC/USDT\n")
    with pytest.raises(PipelineConfigError, match="not valid yaml"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(PipelineConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")
