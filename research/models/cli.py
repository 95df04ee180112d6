"""Command line: walk-forward evaluate and train an LSTM artefact from a model config.

``python -m research.models CONFIG.yaml --out models/lstm.pt`` with market data
from the deterministic synthetic market (``--synthetic-start/--synthetic-end``,
``--symbols``, ``--seed``) or a CSV/Parquet candle file (``--file``). It runs
the walk-forward evaluation (unless ``--no-walk-forward``), trains the newest
window, attaches the out-of-sample metrics (the drift baseline) and saves the
artefact, then prints a JSON summary (path, version, metrics). The artefact
path is what a pipeline config's ``generator: {type: lstm, params:
{model_path: ...}}`` points at. Not the pipeline runner.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd
import yaml

from research.models.artifact import save_artifact
from research.models.config import LSTMConfig
from research.models.dataset import build_feature_frame
from research.models.fitting import train_artifact
from research.models.walkforward import run_walk_forward


def load_config(path: str | Path) -> LSTMConfig:
    """An :class:`LSTMConfig` from a YAML or JSON file (unknown keys are errors)."""
    text = Path(path).read_text()
    data = yaml.safe_load(text) if str(path).endswith((".yaml", ".yml")) else json.loads(text)
    return LSTMConfig.model_validate(data or {})


def load_candles(args: argparse.Namespace, timeframe: str) -> pd.DataFrame:
    if args.file:
        from research.data.file_import import read_ohlcv_file
        return read_ohlcv_file(args.file, timeframe=timeframe)
    from research.data.synthetic import SyntheticMarket, generate_ohlcv
    market = SyntheticMarket(seed=args.seed, **({"symbols": tuple(args.symbols)}
                                                if args.symbols else {}))
    start, end = (pd.Timestamp(v, tz="UTC") for v in (args.synthetic_start, args.synthetic_end))
    return generate_ohlcv(market, start, end, timeframe)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m research.models", description=__doc__.split(
        "\n")[0])
    p.add_argument("config", help="LSTM model config (YAML/JSON)")
    p.add_argument("--out", required=True, help="artefact path to write (.pt)")
    p.add_argument("--file", help="CSV/Parquet candle file instead of synthetic data")
    p.add_argument("--synthetic-start", default="2026-01-01")
    p.add_argument("--synthetic-end", default="2026-01-08")
    p.add_argument("--symbols", nargs="*", help="synthetic universe (default: the market's)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-walk-forward", action="store_true", help="skip the evaluation")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_config(args.config)
    features = build_feature_frame(load_candles(args, config.timeframe), config)
    metrics, folds = {}, []
    if not args.no_walk_forward:
        result = run_walk_forward(features, config)
        metrics, folds = result.metrics, result.folds
    artifact = train_artifact(features, config, metrics=metrics)
    path = save_artifact(artifact, args.out)
    print(json.dumps({"artifact": str(path), "version": artifact.version,
                      "content_hash": artifact.content_hash, "metrics": metrics,
                      "folds": [{k: f[k] for k in ("index", "test_start", "auc", "hit_rate", "n")}
                                for f in folds],
                      "data_range": artifact.data_range}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
