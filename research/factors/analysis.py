"""Factor evaluation: information coefficient (IC) and quantile returns against the next bar.

The target is the **next-bar return** of each symbol, ``close[t+1] / close[t] - 1``
on the timeframe's grid (NaN when bar t+1 is missing, so a hole is never
spanned); a factor value at bar t is known at that bar's close.

- **Cross-sectional IC** (the usual one): at each bar, the Spearman rank
  correlation between the factor and the next-bar return across the symbols
  that have both (at least ``min_symbols``, default 3: with two symbols every
  rank correlation is +-1). ``ic_mean`` is its mean over bars, ``ic_std`` the
  sample std (ddof 1), ``ic_ir`` = mean / std (the information ratio per bar),
  ``ic_t`` = ``ic_ir * sqrt(ic_bars)``.
- **Time-series IC**: per symbol, the Spearman correlation over time of the factor
  and the next-bar return; ``ts_ic`` is its mean over symbols (works for a
  one-symbol universe, where the cross-sectional IC does not exist).
- **Quantile returns**: per symbol, its bars are split into ``quantiles``
  equal-count buckets by the factor value (over the whole run); the mean
  next-bar return of each bucket is averaged over symbols. Per-symbol buckets
  keep factors in price units (an SMA level) comparable; ``spread`` is top
  minus bottom bucket.

Ranks use average ranks for ties, as :func:`scipy.stats.spearmanr` does.
Not a backtest and not a factor computation (see :mod:`research.factors.registry`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from signal_export.contract import timeframe_delta

IC_COLUMNS = ("ic_mean", "ic_std", "ic_ir", "ic_t", "ic_bars", "ts_ic", "ts_symbols")


def next_bar_returns(market: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """``datetime``, ``symbol``, ``next_return`` (``close[t+1] / close[t] - 1`` on the grid)."""
    wide = market.pivot(index="datetime", columns="symbol", values="close").sort_index()
    if len(wide):
        grid = pd.date_range(wide.index[0], wide.index[-1], freq=timeframe_delta(timeframe))
        wide = wide.reindex(grid.astype(wide.index.dtype))
    fwd = wide.shift(-1) / wide - 1.0
    fwd.index.name, fwd.columns.name = "datetime", "symbol"
    out = fwd.stack(future_stack=True).rename("next_return").reset_index()
    return out.dropna(subset=["next_return"]).reset_index(drop=True)


def _grouped_spearman(frame: pd.DataFrame, x: str, y: str, by: str,
                      min_count: int) -> pd.Series:
    """Spearman correlation of ``x`` and ``y`` within each ``by`` group of >= min_count rows."""
    data = frame[[by, x, y]].dropna()
    size = data.groupby(by, sort=True)[x].transform("size")
    data = data[size >= min_count]
    if data.empty:
        return pd.Series(dtype="float64")
    groups = data.groupby(by, sort=True)
    rx = groups[x].rank(method="average")
    ry = groups[y].rank(method="average")
    dx = rx - rx.groupby(data[by]).transform("mean")
    dy = ry - ry.groupby(data[by]).transform("mean")
    key = data[by]
    num = (dx * dy).groupby(key).sum()
    den = np.sqrt((dx * dx).groupby(key).sum() * (dy * dy).groupby(key).sum())
    return (num / den.where(den > 0)).astype("float64")


def _joined(factors: pd.DataFrame, market: pd.DataFrame, timeframe: str,
            columns: list[str]) -> pd.DataFrame:
    targets = next_bar_returns(market, timeframe)
    keys = factors[["datetime", "symbol", *columns]].copy()
    keys["datetime"] = keys["datetime"].astype(targets["datetime"].dtype)
    keys["symbol"] = keys["symbol"].astype(str)
    targets["symbol"] = targets["symbol"].astype(str)
    return keys.merge(targets, on=["datetime", "symbol"], how="inner")


def ic_series(factors: pd.DataFrame, market: pd.DataFrame, timeframe: str, column: str,
              *, min_symbols: int = 3) -> pd.Series:
    """The cross-sectional IC of ``column`` at each bar (index: bar open time)."""
    joined = _joined(factors, market, timeframe, [column])
    return _grouped_spearman(joined, column, "next_return", "datetime", min_symbols)


def information_coefficient(factors: pd.DataFrame, market: pd.DataFrame, timeframe: str,
                            columns: Iterable[str], *, min_symbols: int = 3) -> pd.DataFrame:
    """Per factor column: ``ic_mean, ic_std, ic_ir, ic_t, ic_bars, ts_ic, ts_symbols``."""
    columns = list(columns)
    joined = _joined(factors, market, timeframe, columns)
    rows = {}
    for col in columns:
        cs = _grouped_spearman(joined, col, "next_return", "datetime", min_symbols).dropna()
        ts = _grouped_spearman(joined, col, "next_return", "symbol", 3).dropna()
        n = len(cs)
        mean = float(cs.mean()) if n else float("nan")
        std = float(cs.std(ddof=1)) if n > 1 else float("nan")
        ir = mean / std if std and np.isfinite(std) and std > 0 else float("nan")
        rows[col] = {"ic_mean": mean, "ic_std": std, "ic_ir": ir,
                     "ic_t": ir * np.sqrt(n) if np.isfinite(ir) else float("nan"),
                     "ic_bars": n, "ts_ic": float(ts.mean()) if len(ts) else float("nan"),
                     "ts_symbols": len(ts)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(IC_COLUMNS))


def quantile_returns(factors: pd.DataFrame, market: pd.DataFrame, timeframe: str,
                     columns: Iterable[str], *, quantiles: int = 5) -> pd.DataFrame:
    """Mean next-bar return per factor quantile (``Q1`` lowest .. ``Qn``) and ``spread``."""
    if quantiles < 2:
        raise ValueError(f"quantiles must be >= 2, got {quantiles}")
    columns = list(columns)
    labels = [f"Q{i}" for i in range(1, quantiles + 1)]
    joined = _joined(factors, market, timeframe, columns)
    rows = {}
    for col in columns:
        data = joined[["symbol", col, "next_return"]].dropna()
        data = data[data.groupby("symbol")[col].transform("size") >= quantiles]
        if data.empty:
            rows[col] = dict.fromkeys([*labels, "spread"], float("nan"))
            continue
        order = data.groupby("symbol")[col].rank(method="first")
        count = data.groupby("symbol")[col].transform("size")
        bucket = np.ceil(order / count * quantiles).astype(int).clip(1, quantiles)
        per_symbol = data.groupby([data["symbol"], bucket])["next_return"].mean()
        means = per_symbol.groupby(level=1).mean().reindex(range(1, quantiles + 1))
        row = dict(zip(labels, means.to_numpy(dtype="float64"), strict=True))
        row["spread"] = row[labels[-1]] - row[labels[0]]
        rows[col] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=[*labels, "spread"])


@dataclass(frozen=True)
class FactorAnalysis:
    """IC table and quantile-return table of the factor columns a pipeline uses."""

    ic: pd.DataFrame
    quantiles: pd.DataFrame
    timeframe: str
    min_symbols: int

    def to_dict(self) -> dict[str, dict[str, dict[str, float]]]:
        return {"ic": self.ic.to_dict(orient="index"),
                "quantile_returns": self.quantiles.to_dict(orient="index")}


def analyse_factors(factors: pd.DataFrame, market: pd.DataFrame, timeframe: str,
                    columns: Iterable[str], *, quantiles: int = 5,
                    min_symbols: int = 3) -> FactorAnalysis:
    """IC (cross-sectional and time-series) and quantile returns of ``columns``."""
    columns = [c for c in columns if c in factors.columns]
    return FactorAnalysis(
        ic=information_coefficient(factors, market, timeframe, columns, min_symbols=min_symbols),
        quantiles=quantile_returns(factors, market, timeframe, columns, quantiles=quantiles),
        timeframe=timeframe, min_symbols=min_symbols)
