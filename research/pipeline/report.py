"""The pipeline's report folder, written so that a re-run reproduces it byte for byte.

Files (all deterministic functions of the config and the data): ``report.html``
(self-contained, from :func:`research.backtest.plots.html_report`: formatted
metrics next to the buy-and-hold benchmark of the same universe, equity with
the benchmark, positions, the factor analysis, trades with open ones shown as
``open``), ``equity.png`` and ``positions.png``, ``metrics.json`` (raw backtest
metrics, the benchmark's, signal counts, and per factor column the IC and
quantile returns of :mod:`research.factors.analysis`; sorted keys),
``trades.csv``, ``signals.parquet`` (the exact frame that is exported) and
``config.json`` (the validated config). Anything
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
from research.backtest.benchmark import buy_and_hold
from research.backtest.format import format_bps
from research.backtest.inputs import wide_from_tidy
from research.backtest.plots import html_report, plot_equity_drawdown, plot_positions
from research.factors import compute_factors
from research.factors.analysis import FactorAnalysis, analyse_factors
from research.factors.registry import resolve_specs

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


def factor_columns(config: Mapping[str, Any]) -> list[str]:
    """The output columns of the config's factor requests (not OHLCV, not cross-sections)."""
    return [c for spec in resolve_specs(config.get("factors") or []) for c in spec.columns]


def factor_analysis(config: Mapping[str, Any], market: pd.DataFrame, timeframe: str,
                    factors: pd.DataFrame | None = None) -> FactorAnalysis | None:
    """IC and quantile returns of the pipeline's factors (computed from ``market`` when
    ``factors`` is not given); None when the config names no factor."""
    columns = factor_columns(config)
    if not columns:
        return None
    if factors is None:
        factors = compute_factors(market, config["factors"])
    return analyse_factors(factors, market, timeframe, columns)


def _num(value: float, digits: int) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.{digits}f}"


def factor_section(analysis: FactorAnalysis, symbols: int) -> str:
    """The report's factor analysis: IC table, quantile-return table, what they mean."""
    ic = analysis.ic
    ic_view = pd.DataFrame({
        "IC mean": ic["ic_mean"].map(lambda v: _num(v, 3)),
        "IC std": ic["ic_std"].map(lambda v: "n/a" if not math.isfinite(v) else f"{v:.3f}"),
        "IC IR (mean/std)": ic["ic_ir"].map(lambda v: _num(v, 3)),
        "t-stat": ic["ic_t"].map(lambda v: _num(v, 2)),
        "bars": ic["ic_bars"].map(lambda v: f"{int(v):,}"),
        "time-series IC": ic["ts_ic"].map(lambda v: _num(v, 3)),
        "symbols": ic["ts_symbols"].map(lambda v: f"{int(v):,}"),
    }, index=ic.index)
    q = analysis.quantiles
    q_view = q.map(format_bps)
    note = ""
    if symbols < analysis.min_symbols:
        note = (f"<p>The cross-sectional IC needs at least {analysis.min_symbols} symbols per "
                f"bar; this universe has {symbols}, so read the time-series IC.</p>")
    return "\n".join([
        "<p>Spearman rank information coefficient of each factor at bar t against the "
        "next-bar return (close[t+1] / close[t] - 1). <b>IC</b>: across symbols at each bar, "
        "then mean, std and IR = mean / std over bars; <b>time-series IC</b>: per symbol "
        "over time, mean over symbols.</p>", note,
        ic_view.to_html(),
        "<p>Mean next-bar return by factor quantile (Q1 = lowest values; buckets per symbol "
        "over the run, averaged over symbols), and the top-minus-bottom spread.</p>",
        q_view.to_html(),
    ])


def write_report(out_dir: str | Path, *, result: BacktestResult, market: pd.DataFrame,
                 signals: pd.DataFrame, config: Mapping[str, Any], title: str,
                 factors: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the deterministic report files into ``out_dir`` (created); returns name -> path.

    ``factors``: the pipeline's factor frame, for the factor analysis (recomputed from
    ``market`` and ``config['factors']`` when not given).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    close = wide_from_tidy(market, "close")
    paths = {name: out / name for name in REPORT_FILES}
    benchmark = buy_and_hold(result, market)
    analysis = factor_analysis(config, market, result.timeframe, factors)
    sections = [] if analysis is None else [
        ("Factor analysis", factor_section(analysis, len(result.weights)))]
    html_report(result, close, paths["report.html"], title=title, benchmark=benchmark,
                sections=sections)
    images = embedded_pngs(paths["report.html"].read_text(encoding="utf-8"))
    if len(images) == 2:  # the report's own figures: drawing them again costs seconds
        paths["equity.png"].write_bytes(images[0])
        paths["positions.png"].write_bytes(images[1])
    else:
        plot_equity_drawdown(result, paths["equity.png"], benchmark=benchmark)
        plot_positions(result, close, path=paths["positions.png"])
    metrics = {"backtest": result.metrics.to_dict(), "signals": signal_counts(signals),
               "symbols": list(result.weights.index), "timeframe": result.timeframe,
               "fee": result.fee, "slippage_bps": result.slippage_bps,
               "initial_capital": result.initial_capital,
               "final_equity": float(result.equity.iloc[-1]),
               "benchmark": {"kind": "buy_and_hold", **benchmark.metrics.to_dict(),
                             "final_equity": float(benchmark.equity.iloc[-1])},
               "excess_return": result.metrics.total_return - benchmark.metrics.total_return,
               "factors": None if analysis is None else analysis.to_dict()}
    dump_json(metrics, paths["metrics.json"])
    result.trades.to_csv(paths["trades.csv"], index=False, float_format="%.10g")
    signals.to_parquet(paths["signals.parquet"], index=False)
    dump_json(config, paths["config.json"])
    return paths


def write_run_info(out_dir: str | Path, info: Mapping[str, Any]) -> Path:
    """The one file that differs between runs (ids, times, export counts)."""
    return dump_json(info, Path(out_dir) / RUN_INFO_FILE)
