"""Small job/pipeline fixtures and a fake clock for the scheduler tests (imported by basename)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from research.pipeline import PipelineConfig, parse_config
from signal_export.scheduler.jobs import JobSpec

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)  # a bar boundary (1m and 1d grid)

PIPELINE: dict[str, Any] = {
    "name": "sched_test",
    "universe": ["BTC/USDT", "ETH/USDT", "SOL/USDT"],
    "timeframe": "1m",
    "start": "2026-03-01T00:00:00Z",
    "end": "2026-03-03T00:00:00Z",
    "data": {"kind": "synthetic", "seed": 5},
    "factors": [{"name": "rsi", "params": {"period": 14}}],
    "generator": {"type": "rank", "params": {"factor": "rsi_14", "top_n": 1, "actions": False}},
    "export": {"strategy_id": "sched_test", "version": 1},
}


def pipeline_config(tmp_path, **overrides: Any) -> PipelineConfig:
    data = {**PIPELINE, "report": {"output_dir": str(tmp_path / "report")}, **overrides}
    return parse_config(data)


def job_spec(**overrides: Any) -> JobSpec:
    data = {"name": "sched_test_1m", "pipeline": "unused.yaml", "offset_seconds": 2,
            "max_backfill_bars": 30, **overrides}
    return JobSpec.model_validate(data)
