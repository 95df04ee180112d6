"""``research list factors|generators`` and bad factor parameters in a pipeline config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_data import config_dict

from research.cli import EXIT_INPUT, EXIT_OK, main
from research.factors import list_factors
from research.signals.registry import GENERATORS, generator_parameters, list_generators

RESEARCH = Path(sys.executable).with_name("research")


def test_list_factors_prints_every_registered_factor_with_parameters_and_defaults(capsys):
    assert main(["list", "factors"]) == EXIT_OK
    out = capsys.readouterr().out
    registered = list_factors()
    assert out.splitlines()[0].startswith(f"{len(registered)} factors")
    for name, fdef in registered.items():
        line = next(x for x in out.splitlines() if x.split() and x.split()[0] == name)
        for key in fdef.defaults:
            assert fdef.describe_param(key) in line
    assert "period=14 (int, 2..100000)" in out and "fast=12" in out and "nbdev=2.0" in out
    assert "-> rsi_{period}; needs close" in out
    assert "Relative Strength Index" in out


def test_list_factors_json_is_the_registry(capsys):
    assert main(["list", "factors", "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["defaults"] for r in rows} == {
        n: dict(f.defaults) for n, f in list_factors().items()}


def test_list_generators_prints_parameters_and_defaults(capsys):
    assert main(["list", "generators"]) == EXIT_OK
    out = capsys.readouterr().out
    kinds = list_generators()
    assert set(kinds) >= {"threshold", "rank", "ensemble", "trap", "lstm"}
    assert set(kinds) == set(GENERATORS)  # the registry, nothing else
    assert out.splitlines()[0].startswith(f"{len(kinds)} generators")
    for kind, cls in kinds.items():
        assert any(line.startswith(kind) for line in out.splitlines())
        for param in generator_parameters(cls):
            if not param.common:
                assert param.text() in out
    assert "enter (str, required)" in out and "mode (state|events, default 'state')" in out
    assert "top_n (int, required)" in out and "window (int, default 20)" in out
    assert "strategy_id, timeframe, source, version" in out


def test_list_needs_a_known_kind():
    with pytest.raises(SystemExit) as info:
        main(["list", "models"])
    assert info.value.code == 2


def _pipeline_with(tmp_path: Path, factor: dict) -> Path:
    data = config_dict(factors=["rsi", factor])
    data["report"] = {"output_dir": str(tmp_path / "report")}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("factor", "message"), [
    ({"name": "sma", "params": {"period": -5}},
     "factors: factor 'sma': parameter 'period' must be an integer in 1..100000, got -5"),
    ({"name": "sma", "params": {"period": "abc"}},
     "factors: factor 'sma': parameter 'period' must be an integer in 1..100000, got 'abc' "
     "(str)"),
    ({"name": "macd", "params": {"fast": 40}},
     "factors: factor 'macd': parameter 'fast' (40) must be smaller than 'slow' (26)"),
])
def test_a_bad_factor_parameter_in_a_pipeline_config_is_one_clear_line(tmp_path, factor,
                                                                       message):
    config = _pipeline_with(tmp_path, factor)
    proc = subprocess.run([str(RESEARCH), "pipeline", str(config), "--dry-run", "--quiet",
                           "--env-file", "/nonexistent/.env"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_INPUT
    assert proc.stderr.strip() == f"error: {config}: {message}"
    assert "Traceback" not in proc.stderr and "TA_BAD_PARAM" not in proc.stderr
