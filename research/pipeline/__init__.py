"""The one-command research pipeline: factor -> signal -> backtest -> report -> export.

Load a config with :func:`load_config` and run it with :func:`run_pipeline`
(whole range, with report) or :func:`run_latest` (newest bar only, for the
scheduler). The CLI is ``research pipeline CONFIG``.
"""

from research.pipeline.config import (
    PipelineConfig,
    PipelineConfigError,
    config_as_dict,
    load_config,
    parse_config,
)
from research.pipeline.market import MarketDataError, load_market
from research.pipeline.positions import Decisions, decide_positions
from research.pipeline.report import REPORT_FILES, RUN_INFO_FILE
from research.pipeline.run import (
    ExportSummary,
    LatestResult,
    PipelineResult,
    factor_frame,
    generate_signals,
    newest_closed_bar,
    run_latest,
    run_pipeline,
)

__all__ = [
    "REPORT_FILES", "RUN_INFO_FILE", "Decisions", "ExportSummary", "LatestResult",
    "MarketDataError", "PipelineConfig", "PipelineConfigError", "PipelineResult",
    "config_as_dict", "decide_positions", "factor_frame", "generate_signals", "load_config",
    "load_market", "newest_closed_bar", "parse_config", "run_latest", "run_pipeline",
]
