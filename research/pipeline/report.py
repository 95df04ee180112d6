"""The pipeline's report folder, written so that a re-run reproduces it byte for byte.

Files (all deterministic functions of the config and the data): ``report.html``
(self-contained, from :func:`research.backtest.plots.html_report`),
``equity.png`` and ``positions.png``, ``metrics.json`` (backtest metrics and
signal counts, sorted keys), ``trades.csv``, ``signals.parquet`` (the exact
frame that is exported) and ``config.json`` (the validated config). Anything
that differs between runs - run id, wall-clock times, export counts, code
version - goes to the one separate file ``run_info.json``. Not the backtest or
the plots themselves (see :mod:`research.backtest`).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from research.backtest import BacktestResult
from research.backtest.inputs import wide_from_tidy
from research.backtest.plots import html_report, plot_equity_drawdown, plot_positions

REPORT_FILES = ("report.html", "equity.png", "positions.png", "metrics.json", "trades.csv",
                "signals.parquet", "config.json")
RUN_INFO_FILE = "run_info.json"


def jsonable(value: Any) -> Any:
    """Plain JSON values: NaN/inf -> None, timestamps/timedeltas -> ISO-ish strings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (pd.Timestamp, pd.Timedelta)):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


_PNG_RE = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def embedded_pngs(html_text: str) -> list[bytes]:
    """The PNG images embedded in an HTML report, in page order."""
    return [base64.b64decode(m) for m in _PNG_RE.findall(html_text)]


def dump_json(data: Any, path: Path) -> Path:
    path.write_text(json.dumps(jsonable(data), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def signal_counts(signals: pd.DataFrame) -> dict[str, Any]:
    """Rows, and rows per action / per symbol: what a researcher checks first."""
    actions = signals["action"].dropna().value_counts().sort_index()
    per_symbol = signals["symbol"].value_counts().sort_index()
    return {"rows": len(signals), "actions": {str(k): int(v) for k, v in actions.items()},
            "per_symbol": {str(k): int(v) for k, v in per_symbol.items()},
            "first_ts": signals["ts"].min() if len(signals) else None,
            "last_ts": signals["ts"].max() if len(signals) else None}


def write_report(out_dir: str | Path, *, result: BacktestResult, market: pd.DataFrame,
                 signals: pd.DataFrame, config: Mapping[str, Any], title: str) -> dict[str, Path]:
    """Write the deterministic report files into ``out_dir`` (created); returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    close = wide_from_tidy(market, "close")
    paths = {name: out / name for name in REPORT_FILES}
    html_report(result, close, paths["report.html"], title=title)
    images = embedded_pngs(paths["report.html"].read_text(encoding="utf-8"))
    if len(images) == 2:  # the report's own figures: drawing them again costs seconds
        paths["equity.png"].write_bytes(images[0])
        paths["positions.png"].write_bytes(images[1])
    else:
        plot_equity_drawdown(result, paths["equity.png"])
        plot_positions(result, close, path=paths["positions.png"])
    metrics = {"backtest": result.metrics.to_dict(), "signals": signal_counts(signals),
               "symbols": list(result.weights.index), "timeframe": result.timeframe,
               "fee": result.fee, "slippage_bps": result.slippage_bps,
               "initial_capital": result.initial_capital,
               "final_equity": float(result.equity.iloc[-1])}
    dump_json(metrics, paths["metrics.json"])
    result.trades.to_csv(paths["trades.csv"], index=False, float_format="%.10g")
    signals.to_parquet(paths["signals.parquet"], index=False)
    dump_json(config, paths["config.json"])
    return paths


def write_run_info(out_dir: str | Path, info: Mapping[str, Any]) -> Path:
    """The one file that differs between runs (ids, times, export counts)."""
    return dump_json(info, Path(out_dir) / RUN_INFO_FILE)
