"""The factor registry: named, documented factor definitions and the per-symbol engine.

A factor is a pure function over ONE symbol's bars (a mapping of column name ->
1-D float64 array, oldest first) that returns one or more named output arrays
of the same length. Its definition declares what it needs, like ccxt's
``exchange.has``: the input columns (``requires``), how many bars it needs for
a first value (``lookback``) and how many bars of history the incremental path
must keep so the newest value equals a full recomputation to 1e-9
(``warmup``; larger than ``lookback`` for recursive TA-Lib smoothers).

:func:`compute_factors` runs factors over a tidy multi-symbol frame, each symbol
with its own independent windows (seed 000: one symbol's data never reaches
another's), then optionally adds cross-sectional ranks / z-scores per timestamp
(seed 002). Its per-symbol work is :func:`factor_values`, the one definition
both paths run: in this process (the default) or on Dask workers
(``cluster=``, :mod:`research.factors.cluster`), with identical results. It is
not the place for I/O or for signal logic.

Parameters are checked before any factor function (TA-Lib) sees them: each
value must have its default's type (an int parameter takes an int, or a float
with no fraction; a float parameter any finite number) and lie within the
factor's declared ``limits`` (int parameters default to ``>= 1``, float ones to
``> 0``), and a factor may add a cross-parameter ``check`` (MACD: fast < slow).
A bad value raises :class:`FactorError` naming the factor and the parameter,
e.g. ``factor 'rsi': parameter 'period' must be an integer >= 2, got -5``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from signal_export.errors import BridgeError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

Bars = Mapping[str, np.ndarray]
FactorFunc = Callable[..., dict[str, np.ndarray]]
LatestFunc = Callable[..., dict[str, np.ndarray]]
#: Inclusive (minimum, maximum) of a numeric parameter; None leaves that side open.
Limits = tuple[float | None, float | None]
#: A cross-parameter check: the merged parameters -> a problem sentence, or None.
ParamsCheck = Callable[[Mapping[str, Any]], str | None]

#: Named data requirements -> the frame columns that satisfy them.
REQUIREMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "ohlcv": ("open", "high", "low", "close", "volume"),
    "close": ("close",),
    "funding_rate": ("funding_rate",),
    "mark_index": ("mark_price", "index_price"),
    "orderbook": ("bid_depth", "ask_depth"),
}

KEY_COLUMNS = ("datetime", "symbol")


class FactorError(BridgeError, ValueError):
    """A factor request or input frame that cannot be computed; the message names it."""


class MissingDataError(FactorError):
    """A factor's declared data requirement is not in the frame."""


@dataclass(frozen=True)
class FactorDef:
    """One registered factor: its function, outputs, requirements and window sizes."""

    name: str
    func: FactorFunc
    outputs: tuple[str, ...]  # format strings over params, e.g. "rsi_{period}"
    requires: frozenset[str]
    defaults: Mapping[str, Any]
    lookback: Callable[[Mapping[str, Any]], int]
    warmup: Callable[[Mapping[str, Any]], int]
    doc: str = ""
    #: Optional vectorised-across-symbols path: 2-D arrays (symbols x bars) -> newest values.
    latest: LatestFunc | None = None
    #: Declared limits of numeric parameters (see :func:`param_limits` for the defaults).
    limits: Mapping[str, Limits] = field(default_factory=dict)
    check: ParamsCheck | None = None

    def param_limits(self, name: str) -> Limits:
        """The inclusive limits of parameter ``name``: declared, else ints >= 1, floats > 0."""
        if name in self.limits:
            return self.limits[name]
        default = self.defaults[name]
        if isinstance(default, int) and not isinstance(default, bool):
            return (1, None)
        return (None, None)

    def describe_param(self, name: str) -> str:
        """``'period=14 (int, 2..100000)'``: a parameter, its default, type and range."""
        default = self.defaults[name]
        kind = type(default).__name__
        lo, hi = self.param_limits(name)
        if isinstance(default, float) and name not in self.limits:
            rng = "> 0"
        elif lo is None and hi is None:
            rng = ""
        elif hi is None:
            rng = f">= {lo:g}"
        elif lo is None:
            rng = f"<= {hi:g}"
        else:
            rng = f"{lo:g}..{hi:g}"
        return f"{name}={default!r} ({kind}{', ' + rng if rng else ''})"


@dataclass(frozen=True)
class FactorSpec:
    """A factor with concrete parameters; ``columns`` are its output column names."""

    factor: FactorDef
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.factor.name

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(fmt.format(**self.params) for fmt in self.factor.outputs)

    @property
    def lookback(self) -> int:
        return int(self.factor.lookback(self.params))

    @property
    def warmup(self) -> int:
        return int(self.factor.warmup(self.params))

    @property
    def required_columns(self) -> tuple[str, ...]:
        cols: list[str] = []
        for req in sorted(self.factor.requires):
            cols.extend(c for c in REQUIREMENT_COLUMNS[req] if c not in cols)
        return tuple(cols)

    def compute(self, bars: Bars) -> dict[str, np.ndarray]:
        out = self.factor.func(bars, **self.params)
        return {col: out[col] for col in self.columns}


FACTORS: dict[str, FactorDef] = {}


IntOfParams = Callable[[Mapping[str, Any]], int]


def _as_int_fn(value: int | IntOfParams) -> IntOfParams:
    if callable(value):
        return value
    return lambda _params, _v=int(value): _v


def register_factor(
    name: str,
    *,
    outputs: Iterable[str],
    requires: Iterable[str] = ("ohlcv",),
    lookback: int | Callable[[Mapping[str, Any]], int],
    warmup: int | Callable[[Mapping[str, Any]], int] | None = None,
    latest: LatestFunc | None = None,
    limits: Mapping[str, Limits] | None = None,
    check: ParamsCheck | None = None,
    **defaults: Any,
) -> Callable[[FactorFunc], FactorFunc]:
    """Decorator: register ``func`` under ``name``; keyword defaults are its parameters.

    ``limits`` maps a numeric parameter to its inclusive (min, max) (e.g. TA-Lib's
    ``timeperiod`` is 2..100000 for RSI); ``check`` validates parameters together.
    """
    reqs = frozenset(requires)
    unknown = reqs - REQUIREMENT_COLUMNS.keys()
    if unknown:
        raise FactorError(f"factor {name!r}: unknown requirement(s) {sorted(unknown)}")
    stray = set(limits or ()) - set(defaults)
    if stray:
        raise FactorError(f"factor {name!r}: limits for unknown parameter(s) {sorted(stray)}")

    def deco(func: FactorFunc) -> FactorFunc:
        if name in FACTORS:
            raise FactorError(f"factor {name!r} is already registered")
        FACTORS[name] = FactorDef(
            name=name, func=func, outputs=tuple(outputs), requires=reqs,
            defaults=dict(defaults), lookback=_as_int_fn(lookback),
            warmup=_as_int_fn(warmup if warmup is not None else lookback),
            doc=(func.__doc__ or "").strip(), latest=latest, limits=dict(limits or {}),
            check=check,
        )
        return func

    return deco


def _ensure_loaded() -> None:
    # Importing the template modules registers their factors.
    from research.factors import crypto, statistical, technical  # noqa: F401


def list_factors() -> dict[str, FactorDef]:
    """All registered factors by name."""
    _ensure_loaded()
    return dict(FACTORS)


def get_factor(name: str) -> FactorDef:
    _ensure_loaded()
    try:
        return FACTORS[name]
    except KeyError:
        raise FactorError(
            f"unknown factor {name!r} (registered: {', '.join(sorted(FACTORS))})"
        ) from None


FactorRequest = str | FactorSpec | Mapping[str, Any]


def resolve_spec(request: FactorRequest) -> FactorSpec:
    """``'rsi'`` or ``{'name': 'rsi', 'params': {'period': 7}}`` -> a :class:`FactorSpec`."""
    if isinstance(request, FactorSpec):
        return request
    if isinstance(request, str):
        name, given = request, {}
    elif isinstance(request, Mapping):
        if "name" not in request:
            raise FactorError(f"factor request {dict(request)!r} has no 'name'")
        name, given = request["name"], dict(request.get("params") or {})
        extra = set(request) - {"name", "params"}
        if extra:
            raise FactorError(f"factor request {name!r}: unknown key(s) {sorted(extra)}")
    else:
        raise FactorError(f"factor request must be a name or a mapping, got {request!r}")
    fdef = get_factor(name)
    unknown = set(given) - set(fdef.defaults)
    if unknown:
        raise FactorError(
            f"factor {name!r}: unknown parameter(s) {sorted(unknown)} "
            f"(accepted: {sorted(fdef.defaults)})"
        )
    return FactorSpec(fdef, validate_params(fdef, given))


def _number_text(lo: float | None, hi: float | None, strict_positive: bool) -> str:
    if strict_positive:
        return " > 0"
    if lo is not None and hi is not None:
        return f" in {lo:g}..{hi:g}"
    if lo is not None:
        return f" >= {lo:g}"
    return f" <= {hi:g}" if hi is not None else ""


def _check_param(fdef: FactorDef, key: str, value: Any) -> Any:
    """``value`` checked (and an integral float made an int) against the default's type."""
    default = fdef.defaults[key]
    lo, hi = fdef.param_limits(key)
    where = f"factor {fdef.name!r}: parameter {key!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise FactorError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value, ok = int(value), True
        kind, positive = "an integer", False
    elif isinstance(default, float):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value))
        kind, positive = "a finite number", key not in fdef.limits
        if ok:
            value = float(value)
    else:
        if not isinstance(value, type(default)):
            raise FactorError(f"{where} must be a {type(default).__name__}, got {value!r}")
        return value
    rule = kind + _number_text(lo, hi, positive)
    if not ok:
        raise FactorError(f"{where} must be {rule}, got {value!r} ({type(value).__name__})")
    if (positive and value <= 0) or (lo is not None and value < lo) or (
            hi is not None and value > hi):
        raise FactorError(f"{where} must be {rule}, got {value!r}")
    return value


def validate_params(fdef: FactorDef, given: Mapping[str, Any]) -> dict[str, Any]:
    """The factor's defaults updated with ``given``, each checked before any computation."""
    params = {**fdef.defaults, **{k: _check_param(fdef, k, v) for k, v in given.items()}}
    problem = fdef.check(params) if fdef.check is not None else None
    if problem:
        raise FactorError(f"factor {fdef.name!r}: {problem}")
    return params


def resolve_specs(requests: Iterable[FactorRequest]) -> list[FactorSpec]:
    specs = [resolve_spec(r) for r in requests]
    seen: dict[str, str] = {}
    for spec in specs:
        for col in spec.columns:
            if col in seen:
                raise FactorError(f"output column {col!r} produced by two factor requests")
            seen[col] = spec.name
    return specs


def missing_requirements(spec: FactorSpec, columns: Iterable[str]) -> list[str]:
    """The input columns ``spec`` needs that are absent from ``columns``."""
    have = set(columns)
    return [c for c in spec.required_columns if c not in have]


def available_factors(columns: Iterable[str]) -> dict[str, list[str]]:
    """Every registered factor -> the input columns it still lacks (empty list: computable).

    The one capability check, like ccxt's ``exchange.has``.
    """
    cols = list(columns)
    return {name: missing_requirements(FactorSpec(f, dict(f.defaults)), cols)
            for name, f in list_factors().items()}


def validate_bars_frame(frame: pd.DataFrame) -> None:
    """Check the tidy input convention; raise :class:`FactorError` naming the problem.

    Duplicate bars are detected by :func:`symbol_blocks` after sorting (cheaper).
    """
    for col in KEY_COLUMNS:
        if col not in frame.columns:
            raise FactorError(f"input frame has no {col!r} column (columns: {list(frame.columns)})")
    dt = frame["datetime"]
    if not isinstance(dt.dtype, pd.DatetimeTZDtype):
        raise FactorError(
            "input frame 'datetime' must be tz-aware UTC (got a naive or non-datetime column)")


def symbol_blocks(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``frame`` ordered by (symbol, datetime) and the [start, end) row range of each symbol.

    Already-ordered input (the common case: readers return it so) is not re-sorted.
    Duplicate (symbol, datetime) bars are an error naming the first one.
    """
    codes, _ = pd.factorize(frame["symbol"], sort=True)
    dt = frame["datetime"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    same_symbol = codes[1:] == codes[:-1]
    ordered_already = bool(np.all((codes[1:] > codes[:-1]) | (same_symbol & (dt[1:] >= dt[:-1]))))
    if ordered_already:
        ordered = frame.reset_index(drop=True)
    else:
        order = np.lexsort((dt, codes))
        ordered = frame.take(order).reset_index(drop=True)
        codes, dt = codes[order], dt[order]
        same_symbol = codes[1:] == codes[:-1]
    dup = np.flatnonzero(same_symbol & (dt[1:] == dt[:-1]))
    if len(dup):
        row = ordered.iloc[int(dup[0])]
        raise FactorError(f"input frame has duplicate bars, first: symbol={row['symbol']!r} "
                          f"datetime={row['datetime']}")
    if len(codes) == 0:
        return ordered, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(~same_symbol) + 1]
    ends = np.r_[starts[1:], len(codes)]
    return ordered, starts, ends


def bars_of(group: pd.DataFrame, columns: Iterable[str]) -> dict[str, np.ndarray]:
    return {c: np.ascontiguousarray(group[c].to_numpy(dtype=np.float64)) for c in columns}


def factor_values(inputs: Bars, starts: np.ndarray, ends: np.ndarray,
                  specs: Sequence[FactorSpec], out: np.ndarray | None = None) -> np.ndarray:
    """Factor values (output columns x rows) of consecutive symbol blocks ``[start, end)``.

    The one definition of the per-symbol work: each symbol's rows get their own
    windows. :func:`compute_factors` runs it over the whole frame in process
    (writing into its result block ``out``); :mod:`research.factors.cluster`
    runs it over chunks of symbols on Dask workers.
    """
    n_rows = int(ends[-1]) if len(ends) else 0
    columns = [c for s in specs for c in s.columns]
    position = {c: i for i, c in enumerate(columns)}
    if out is None:
        out = np.full((len(columns), n_rows), np.nan)
    for start, end in zip(starts, ends, strict=True):  # one symbol at a time: independent windows
        bars = {c: arr[start:end] for c, arr in inputs.items()}
        for spec in specs:
            for col, arr in spec.compute(bars).items():
                out[position[col], start:end] = arr
    return out


def compute_factors(
    frame: pd.DataFrame,
    factors: Iterable[FactorRequest],
    *,
    cross_section: Iterable[str] | str | None = None,
    on_missing: str = "skip",
    keep: Iterable[str] = (),
    cluster: Client | None = None,
) -> pd.DataFrame:
    """Compute ``factors`` per symbol with independent windows -> tidy frame.

    Output columns: ``datetime``, ``symbol``, any ``keep`` input columns (e.g.
    ``close`` for rules), then every factor column; plus ``<col>_rank``
    (percentile rank in (0, 1]) and/or ``<col>_z`` per timestamp when
    ``cross_section`` contains ``"rank"`` / ``"zscore"``. A factor whose data
    requirement is absent is skipped with a warning (``on_missing="skip"``,
    listed in ``result.attrs["skipped"]``) or raises :class:`MissingDataError`
    (``on_missing="raise"``). ``cluster``: a ``distributed.Client``
    (:func:`research.factors.cluster.open_cluster`) whose workers compute the
    symbols instead of this process; the frame is identical either way.
    """
    if on_missing not in ("skip", "raise"):
        raise FactorError(f"on_missing must be 'skip' or 'raise', got {on_missing!r}")
    validate_bars_frame(frame)
    specs = resolve_specs(factors)
    usable, skipped = [], {}
    for spec in specs:
        missing = missing_requirements(spec, frame.columns)
        if missing:
            msg = (f"factor {spec.name!r} needs column(s) {missing} "
                   f"(requirement {sorted(spec.factor.requires)}), absent from the input frame")
            if on_missing == "raise":
                raise MissingDataError(msg)
            log.warning("skipping factor: %s", msg, extra={"factor": spec.name, "missing": missing})
            skipped[spec.name] = msg
        else:
            usable.append(spec)
    keep = [c for c in keep if c not in KEY_COLUMNS]
    for col in keep:
        if col not in frame.columns:
            raise FactorError(f"keep column {col!r} is not in the input frame")
    needed = sorted({c for s in usable for c in s.required_columns})
    ordered, starts, ends = symbol_blocks(frame)
    inputs = bars_of(ordered, needed)
    factor_cols = [c for s in usable for c in s.columns]
    values = np.full((len(factor_cols), len(ordered)), np.nan)  # one block: no copy into pandas
    if cluster is None:
        factor_values(inputs, starts, ends, usable, out=values)
    else:  # the same factor_values, over chunks of symbols on the cluster's workers
        from research.factors.cluster import cluster_factor_values

        cluster_factor_values(cluster, inputs, starts, ends, usable, out=values)
    result = pd.concat([ordered[list(KEY_COLUMNS) + keep],
                        pd.DataFrame(values.T, index=ordered.index, columns=factor_cols,
                                     copy=False)], axis=1)
    if cross_section:
        modes = {cross_section} if isinstance(cross_section, str) else set(cross_section)
        result = add_cross_section(result, [c for s in usable for c in s.columns], modes)
    result.attrs["skipped"] = skipped
    return result


def add_cross_section(frame: pd.DataFrame, columns: Iterable[str],
                      modes: Iterable[str]) -> pd.DataFrame:
    """Add per-timestamp percentile ranks (``_rank``) and/or z-scores (``_z``) of ``columns``."""
    modes = set(modes)
    bad = modes - {"rank", "zscore"}
    if bad:
        raise FactorError(f"cross_section modes must be 'rank' and/or 'zscore', got {sorted(bad)}")
    columns = list(columns)
    out = frame.copy()
    by_ts = out.groupby("datetime", sort=False)[columns]
    if "rank" in modes:
        ranks = by_ts.rank(pct=True, method="average")
        for c in columns:
            out[f"{c}_rank"] = ranks[c]
    if "zscore" in modes:
        mean = by_ts.transform("mean")
        std = by_ts.transform("std")  # ddof=1; NaN for a single symbol
        for c in columns:
            out[f"{c}_z"] = (out[c] - mean[c]) / std[c].where(std[c] > 0)
    return out
