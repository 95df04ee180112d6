"""Incremental factors: the newest bar's values for many symbols without recomputing history.

For the scheduled 1m job. Given stored history (at least :func:`history_length`
bars per symbol, newest last), :func:`latest_factors` returns one row per
symbol equal (to 1e-9) to the last row of :func:`compute_factors` over the
symbol's whole history.

How equality is achieved (chosen over carrying smoother state, which would
need TA-Lib internals and a state store): windowed factors are computed from
their window alone, so the last ``lookback`` bars suffice and they are
evaluated for all symbols at once on a (symbols x bars) array. TA-Lib's
recursive smoothers (RSI, ATR, ADX, MACD, EMA) depend on all history, but the
seed's influence decays geometrically; each such factor declares a warm-up
(``ceil(ln(1e-15)/ln(1-alpha))`` bars per smoothing stage, e.g. 482 for RSI-14,
1018 for ADX-14) after which the truncated computation matches the full one
to well below 1e-9. Those are run per symbol on just their warm-up window.
Not a scheduler and not a store: callers fetch the history and persist results.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from research.factors.registry import (
    FactorRequest,
    FactorSpec,
    MissingDataError,
    compute_factors,
    missing_requirements,
    resolve_specs,
    symbol_blocks,
    validate_bars_frame,
)


def history_length(factors: Iterable[FactorRequest]) -> int:
    """Bars of history per symbol (newest included) that :func:`latest_factors` needs."""
    specs = resolve_specs(factors)
    return max((max(s.warmup, s.lookback) for s in specs), default=1)


def _usable(specs: list[FactorSpec], columns: Iterable[str], on_missing: str) -> list[FactorSpec]:
    cols = list(columns)
    out = []
    for spec in specs:
        missing = missing_requirements(spec, cols)
        if not missing:
            out.append(spec)
        elif on_missing == "raise":
            raise MissingDataError(
                f"factor {spec.name!r} needs column(s) {missing}, absent from history")
    return out


def latest_factors(history: pd.DataFrame, factors: Iterable[FactorRequest], *,
                   on_missing: str = "skip") -> pd.DataFrame:
    """Factor values for each symbol's newest bar -> frame (datetime, symbol, factor columns).

    Symbols with at least :func:`history_length` bars go through the vectorised
    path; symbols with fewer bars (young listings) are computed in full on what
    they have, which is what a full recomputation would see too.
    """
    validate_bars_frame(history)
    specs = _usable(resolve_specs(factors), history.columns, on_missing)
    columns = [c for s in specs for c in s.columns]
    needed = sorted({c for s in specs for c in s.required_columns})
    width = max((max(s.warmup, s.lookback) for s in specs), default=1)

    ordered, starts, ends = symbol_blocks(history)  # ends: exclusive end of each symbol's rows
    uniq = ordered["symbol"].iloc[starts].to_numpy(dtype=object)
    full = (ends - starts) >= width
    parts: list[pd.DataFrame] = []

    if full.any():
        first = ends[full] - width
        rows = (first[:, None] + np.arange(width)[None, :]).ravel()
        block = {c: ordered[c].to_numpy(dtype=np.float64)[rows].reshape(-1, width) for c in needed}
        newest = ordered["datetime"].iloc[ends[full] - 1].reset_index(drop=True)
        out = {"datetime": newest, "symbol": uniq[full]}
        for spec in specs:
            out.update(_latest_for_spec(spec, block))
        parts.append(pd.DataFrame(out))

    if (~full).any():
        young_rows = np.concatenate([np.arange(a, b) for a, b in
                                     zip(starts[~full], ends[~full], strict=True)])
        young = ordered.iloc[young_rows]
        computed = compute_factors(young, specs, on_missing="skip")
        parts.append(computed.groupby("symbol", sort=True).tail(1))

    if not parts:
        return pd.DataFrame({"datetime": history["datetime"].iloc[:0],
                             "symbol": pd.Series(dtype=object),
                             **{c: pd.Series(dtype="float64") for c in columns}})
    result = pd.concat(parts, ignore_index=True)
    result["datetime"] = result["datetime"].astype(history["datetime"].dtype)
    return result[["datetime", "symbol", *columns]].sort_values("symbol", ignore_index=True)


def _latest_for_spec(spec: FactorSpec, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Newest values of ``spec`` for every row (symbol) of ``block``."""
    if spec.factor.latest is not None:
        out = spec.factor.latest(block, **spec.params)
        return {c: np.asarray(out[c], dtype=np.float64) for c in spec.columns}
    span = max(spec.warmup, spec.lookback)
    n_sym = next(iter(block.values())).shape[0]
    out_cols = spec.columns
    values = {c: np.empty(n_sym) for c in out_cols}
    window = {c: np.ascontiguousarray(block[c][:, -span:]) for c in spec.required_columns}
    for i in range(n_sym):  # loop over symbols (not bars): TA-Lib takes one series at a time
        computed = spec.factor.func({c: w[i] for c, w in window.items()}, **spec.params)
        for c in out_cols:
            values[c][i] = computed[c][-1]
    return values



def measure_warmup(request: FactorRequest, bars: dict[str, np.ndarray], tol: float = 1e-9) -> int:
    """Smallest history length whose newest value is within ``tol`` of the full computation.

    Error is measured as in the tests: absolute below 1, relative above. Uses a
    binary search (the seed's influence decays monotonically in practice) and
    checks the answer; for documenting the declared warm-ups, not for production.
    """
    spec = resolve_specs([request])[0]
    n = len(next(iter(bars.values())))
    exact = spec.compute(bars)

    def ok(length: int) -> bool:
        part = spec.compute({c: v[-length:] for c, v in bars.items()})
        for col in spec.columns:
            a, b = part[col][-1], exact[col][-1]
            if np.isnan(a) != np.isnan(b) or abs(a - b) > tol * max(1.0, abs(b)):
                return False
        return True

    lo, hi = max(1, spec.lookback), n
    if not ok(hi):
        raise ValueError(f"{spec.name}: even the whole series ({n} bars) is not within {tol}")
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


__all__ = ["history_length", "latest_factors", "measure_warmup"]
