"""The training command: config file + synthetic market -> a loadable artefact and metrics."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from research.models import load_artifact
from research.models.cli import load_config, main


def test_cli_trains_evaluates_and_saves_an_artefact(tmp_path, capsys):
    cfg = tmp_path / "lstm.yaml"
    cfg.write_text(yaml.safe_dump({
        "timeframe": "1h", "features": ["ret", "rsi"],
        "network": {"seq_len": 4, "hidden_size": 4, "num_layers": 1, "fc_size": 4},
        "train": {"epochs": 2, "progress": False, "num_threads": 1},
        "walk_forward": {"train_bars": 200, "test_bars": 100}}))
    out = tmp_path / "models" / "lstm.pt"
    assert main([str(cfg), "--out", str(out), "--synthetic-start", "2025-01-01",
                 "--synthetic-end", "2025-01-16", "--symbols", "BTC/USDT", "ETH/USDT"]) == 0
    summary = json.loads(capsys.readouterr().out)
    art = load_artifact(out, features=["ret_1", "rsi_14"])
    assert summary["version"] == art.version
    assert summary["metrics"]["folds"] == len(summary["folds"]) == 2  # 360 bars: 200+1 gap+...
    assert art.metrics["oos_n"] == summary["metrics"]["oos_n"] > 0
    assert art.data_range["symbols"] == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
    assert pd.Timestamp(art.data_range["end"]) == pd.Timestamp("2025-01-15 23:00", tz="UTC")


def test_config_file_with_a_misspelt_key_names_it(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("network: {hiden_size: 8}\n")
    with pytest.raises(ValueError, match="hiden_size"):
        load_config(cfg)
