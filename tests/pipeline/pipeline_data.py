"""Small pipeline configs for the pipeline tests (imported by basename; 3 synthetic pairs)."""

from __future__ import annotations

import copy
from typing import Any

from research.pipeline import PipelineConfig, parse_config

BASE: dict[str, Any] = {
    "name": "t",
    "universe": ["BTC/USDT", "BINANCE:ETHUSDT", "SOL/USDT"],
    "timeframe": "1d",
    "start": "2024-01-01",
    "end": "2024-12-31",
    "data": {"kind": "synthetic", "seed": 11},
    "factors": ["rsi", {"name": "sma", "params": {"period": 20}}],
    "generator": {"type": "threshold",
                  "params": {"enter": "rsi_14 > 55 and close > sma_20", "exit": "rsi_14 < 45"}},
    "backtest": {"fee": 0.001, "slippage_bps": 5, "initial_capital": 10_000},
    "export": {"strategy_id": "pipe_test", "version": 1},
}


def config_dict(**overrides: Any) -> dict[str, Any]:
    """A deep copy of :data:`BASE` with top-level keys replaced."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(overrides))
    return data


def make_config(tmp_path, **overrides: Any) -> PipelineConfig:
    data = config_dict(**overrides)
    data.setdefault("report", {"output_dir": str(tmp_path / "report")})
    return parse_config(data)
