"""Human formatting of backtest metrics for reports and the command line.

``format_metric("max_drawdown", -0.0396942)`` -> ``"-3.97%"``;
``format_duration(pd.Timedelta(days=274))`` -> ``"274 d"``; ratios to two
decimals, counts with thousands separators, NaN as ``"n/a"`` and an infinite
profit factor (no losing trade) as ``"inf"``. ``metrics.json`` keeps the raw
numbers; this is only what people read. Not for parsing back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

#: Display names of :class:`research.backtest.metrics.Metrics` fields, in report order.
METRIC_LABELS: dict[str, str] = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "volatility": "Volatility (annualised)",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Longest drawdown",
    "max_drawdown_bars": "Longest drawdown (bars)",
    "calmar": "Calmar ratio",
    "exposure": "Exposure",
    "turnover": "Turnover",
    "turnover_annual": "Turnover per year",
    "n_trades": "Closed trades",
    "n_open_trades": "Open trades",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "bars": "Bars",
    "periods_per_year": "Bars per year",
}

SIGNED_PERCENT = frozenset({"total_return", "cagr", "return", "excess_return"})
PERCENT = frozenset({"volatility", "max_drawdown", "exposure", "win_rate"})
RATIO = frozenset({"sharpe", "sortino", "calmar", "profit_factor"})
TIMES = frozenset({"turnover"})
COUNT = frozenset({"n_trades", "n_open_trades", "max_drawdown_bars", "bars", "periods_per_year"})

_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def format_duration(value: pd.Timedelta | Any) -> str:
    """``274 days 00:00:00`` -> ``"274 d"``; ``1 day 04:30`` -> ``"1 d 4 h"`` (two units)."""
    if _missing(value):
        return "n/a"
    seconds = int(round(pd.Timedelta(value).total_seconds()))
    if seconds == 0:
        return "0"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count:,} {unit}")
    return sign + " ".join(parts[:2])


def format_percent(value: float, *, signed: bool = False, digits: int = 2) -> str:
    if _missing(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:+.{digits}%}" if signed else f"{value:.{digits}%}"


def format_bps(value: float) -> str:
    """A small return in basis points, signed: 0.00123 -> ``"+12.30 bps"``."""
    if _missing(value):
        return "n/a"
    return f"{value * 1e4:+.2f} bps"


def format_metric(key: str, value: Any) -> str:
    """One metric as people read it; unknown keys fall back to a short general format."""
    if key == "max_drawdown_duration" or isinstance(value, pd.Timedelta):
        return format_duration(value)
    if _missing(value):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in SIGNED_PERCENT:
        return format_percent(float(value), signed=True)
    if key in PERCENT:
        return format_percent(float(value))
    if key in COUNT:
        return f"{float(value):,.0f}"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if key in RATIO:
        return f"{float(value):.2f}"
    if key in TIMES:
        return f"{float(value):.2f}x"
    if key == "turnover_annual":
        return f"{float(value):.2f}x / year"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def metrics_table(columns: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Formatted metrics side by side: rows = labelled metrics, columns = strategy, benchmark."""
    keys = [k for k in METRIC_LABELS if any(k in m for m in columns.values())]
    keys += [k for m in columns.values() for k in m if k not in keys]
    data = {name: [format_metric(k, m[k]) if k in m else "" for k in keys]
            for name, m in columns.items()}
    return pd.DataFrame(data, index=[METRIC_LABELS.get(k, k) for k in keys])
