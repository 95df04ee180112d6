"""Vectorised fast path of frame validation: accept the clean rows of a signal DataFrame.

The pydantic :class:`~signal_export.contract.SignalDocument` stays the one
authority on the rules. This module only *accepts*: it checks the contract's
rules column-wise with numpy/pandas and returns, for the rows that certainly
pass, the same normalised records the model would produce. Every row it does
not accept (odd types, a broken rule, ``extra`` data, anything unusual) goes
through the model, which accepts or rejects it with a named error. So a bug
here can only cost speed or be caught by the parity tests, which check that
both paths give identical records and errors on the same corpus.

Measured reason for it: the model costs ~15-20 us per row; this path ~2 us.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from signal_export.contract import (
    LEVERAGE_MAX,
    NOTE_MAX_LEN,
    SOURCE_MAX_LEN,
    STRATEGY_ID_RE,
    Action,
    Align,
    ContractError,
    _grid_anchor_s,
    _parse_aware,
    resolve_symbol_pair,
    timeframe_seconds,
)

_NS = 1_000_000_000
_NS_UTC = pd.DatetimeTZDtype("ns", "UTC")
_SMALL = 2_048
_TO_NS = {"s": _NS, "ms": 1_000_000, "us": 1_000, "ns": 1}
#: Symbol/pair resolution is pure: the same few hundred pairs come back every bar.
_resolve = lru_cache(maxsize=65_536)(resolve_symbol_pair)
_ACTIONS = tuple(a.value for a in Action)


def _column(frame: pd.DataFrame, name: str) -> pd.Series | None:
    return frame[name] if name in frame.columns else None


def _missing(col: pd.Series | None, n: int) -> np.ndarray:
    return np.ones(n, bool) if col is None else col.isna().to_numpy()


def _aware_ns(col: pd.Series) -> np.ndarray | None:
    """int64 ns since epoch (UTC) for a tz-aware datetime column; ``None`` if not one."""
    if not isinstance(col.dtype, pd.DatetimeTZDtype):
        return None
    scale = _TO_NS.get(col.dtype.unit) if str(col.dtype.tz) == "UTC" else None
    if scale is not None:  # UTC already (the usual case): the stored integers, scaled
        ns = col.array.asi8 * scale
    else:
        ns = col.dt.tz_convert("UTC").astype(_NS_UTC).array.asi8
    return ns - np.mod(ns, 1000)  # python datetimes (the model's type) stop at microseconds


def _per_value(col: pd.Series, fn, missing: Any, dtype: str) -> np.ndarray:
    """``fn`` applied once per distinct value, spread back over the rows; ``missing`` where NA.

    (``factorize`` + a take: a tenth of the cost of ``Series.map`` on Arrow strings; below
    a few thousand rows a dict over ``tolist()`` is cheaper than factorize's fixed cost.)
    """
    if len(col) <= _SMALL:
        seen: dict[Any, Any] = {}
        out = []
        for v in col.tolist():
            if v is None or v is pd.NA or (isinstance(v, float) and v != v):
                out.append(missing)
            elif not isinstance(v, Hashable):  # a list or dict in a cell: judged, not cached
                out.append(fn(v))
            elif v in seen:
                out.append(seen[v])
            else:
                out.append(seen.setdefault(v, fn(v)))
        return np.array(out, dtype=dtype)
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    table = np.array([fn(v) for v in uniques] + [missing], dtype=dtype)
    return table[codes]  # code -1 (NA) takes the last entry: ``missing``


def _ok_str(col: pd.Series | None, n: int, max_len: int) -> np.ndarray:
    if col is None:
        return np.ones(n, bool)
    if pd.api.types.is_numeric_dtype(col.dtype) or isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.isna().to_numpy()
    is_str = col.map(lambda v: type(v) is str).to_numpy(dtype=bool)
    lengths = col.where(is_str).str.len().fillna(0).to_numpy()
    return col.isna().to_numpy() | (is_str & (lengths <= max_len))


def _float_values(col: pd.Series | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, ok) for an optional numeric column; object/bool columns are never fast."""
    if col is None:
        return np.full(n, np.nan), np.ones(n, bool)
    if col.dtype == bool or not pd.api.types.is_numeric_dtype(col.dtype):
        return np.full(n, np.nan), np.zeros(n, bool)
    values = col.to_numpy(dtype="float64", na_value=np.nan)
    ok = np.isnan(values) | np.isfinite(values)
    return values, ok


def _objects(values: np.ndarray, missing: np.ndarray) -> list[Any]:
    out = values.astype(object)
    out[missing] = None
    return out.tolist()


def _shared(columns: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Mask over ``rows``: the rows whose key (one value per column) another row also has."""
    keys = [np.asarray(c)[rows] for c in columns]
    order = np.lexsort(keys[::-1])
    same = np.ones(rows.size - 1, bool)
    for k in keys:
        ordered = k[order]
        same &= ordered[1:] == ordered[:-1]
    dup = np.zeros(rows.size, bool)
    dup[order[1:][same]] = True
    dup[order[:-1][same]] = True
    return dup


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datetimes(ns: np.ndarray) -> list[datetime]:
    """UTC datetimes of int64 ns stamps (microsecond-exact), one object per distinct stamp."""
    stamps, inverse = np.unique(ns, return_inverse=True)
    made = [_EPOCH + timedelta(microseconds=int(v) // 1000) for v in stamps.tolist()]
    return [made[i] for i in inverse.tolist()]


def _risk_values(frame: pd.DataFrame, n: int) -> list[np.ndarray]:
    """leverage, stop_loss, take_profit as float arrays (NaN = not set)."""
    return [_float_values(_column(frame, name), n)[0]
            for name in ("leverage", "stop_loss", "take_profit")]


def _action_weight_risk_ok(frame: pd.DataFrame, act: np.ndarray, act_missing: np.ndarray,
                           weight: np.ndarray, mapped: list, n: int) -> np.ndarray:
    """The contract's action/weight, risk-field and spot/futures rules, column-wise.

    (:func:`~signal_export.contract.check_action_weight`, ``check_risk_fields`` and
    ``check_market`` are the authority; rows failing here go to the model.)
    """
    w_nan = np.isnan(weight)
    enter_long = np.asarray(act == "enter_long", dtype=bool)
    enter_short = np.asarray(act == "enter_short", dtype=bool)
    is_exit = np.asarray((act == "exit_long") | (act == "exit_short"), dtype=bool)
    ok = ~(enter_long & ~w_nan & (weight <= 0)) & ~(enter_short & ~w_nan & (weight >= 0))
    ok &= ~(is_exit & ~w_nan & (weight != 0))
    side = np.where(enter_long, 1, np.where(enter_short, -1, 0))
    by_weight = act_missing & ~w_nan
    side = np.where(by_weight, np.sign(np.where(w_nan, 0.0, weight)), side)

    lev, sl, tp = _risk_values(frame, n)
    for name in ("leverage", "stop_loss", "take_profit"):
        ok &= _float_values(_column(frame, name), n)[1]
    given = ~(np.isnan(lev) & np.isnan(sl) & np.isnan(tp))
    ok &= ~given | (side != 0)
    ok &= np.isnan(lev) | ((lev >= 1.0) & (lev <= LEVERAGE_MAX))
    lev_eff = np.where(np.isnan(lev), 1.0, lev)
    ok &= np.isnan(sl) | ((sl > 0) & (sl * lev_eff < 1))
    ok &= np.isnan(tp) | ((tp > 0) & ~((side == -1) & (tp >= 1)))

    futures = np.fromiter((m is not None and ":" in m[1] for m in mapped), bool, n)
    short = enter_short | np.asarray(act == "exit_short", dtype=bool) | (~w_nan & (weight < 0))
    ok &= futures | (~short & (np.isnan(lev) | (lev == 1)))
    return ok


def fast_accept(frame: pd.DataFrame, *, align: Align, now: datetime | None, exchange: str,
                quotes: tuple[str, ...]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(mask of accepted rows, their normalised records in row order)."""
    n = len(frame)
    ok = np.ones(n, bool)
    if n == 0:
        return ok, []
    if any(c not in frame.columns for c in ("ts", "timeframe", "strategy_id")):
        return np.zeros(n, bool), []
    for c in frame.columns:
        if str(c).startswith("extra"):  # rows with extra data are left to the model
            ok &= frame[c].isna().to_numpy()

    # timeframe -> step, anchor
    tf = frame["timeframe"]

    def tf_step(v: Any) -> float:
        try:
            return float(timeframe_seconds(v))
        except ContractError:
            return np.nan

    step_s = _per_value(tf, tf_step, np.nan, "float64")
    ok &= ~np.isnan(step_s)
    step_ns = np.where(np.isnan(step_s), 60, step_s).astype("int64") * _NS
    anchor_ns = _per_value(tf, lambda v: _grid_anchor_s(v) if isinstance(v, str) else 0, 0,
                           "int64") * _NS

    # ts: tz-aware, on grid (or moved up to the next bar open), not in the future
    ts_ns = _aware_ns(frame["ts"])
    if ts_ns is None:
        return np.zeros(n, bool), []
    ts_missing = frame["ts"].isna().to_numpy()
    ok &= ~ts_missing
    ts_ns = np.where(ts_missing, 0, ts_ns)
    rem = np.mod(ts_ns - anchor_ns, step_ns)
    if align == "ceil":
        ts_ns = ts_ns + np.where(rem > 0, step_ns - rem, 0)
    else:
        ok &= rem == 0
    now_ns = pd.Timestamp(_parse_aware(now, "now") if now is not None
                          else pd.Timestamp.now(tz="UTC")).value
    ok &= ts_ns <= now_ns + step_ns

    # strategy_id
    sid = frame["strategy_id"]
    ok &= _per_value(sid, lambda v: type(v) is str and bool(STRATEGY_ID_RE.fullmatch(v)), False,
                     "bool")

    # symbol / pair
    sym_col, pair_col = _column(frame, "symbol"), _column(frame, "pair")
    sym = [None] * n if sym_col is None else _objects(sym_col.to_numpy(dtype=object),
                                                      sym_col.isna().to_numpy())
    pair = [None] * n if pair_col is None else _objects(pair_col.to_numpy(dtype=object),
                                                        pair_col.isna().to_numpy())
    resolved: dict[tuple, tuple[str, str] | None] = {}
    for combo in set(zip(sym, pair, strict=True)):
        try:
            resolved[combo] = _resolve(combo[0], combo[1], exchange, tuple(quotes))
        except (ContractError, TypeError):
            resolved[combo] = None
    mapped = [resolved[c] for c in zip(sym, pair, strict=True)]
    ok &= np.fromiter((m is not None for m in mapped), bool, n)

    # action / score / weight
    act_col = _column(frame, "action")
    act_missing = _missing(act_col, n)
    if act_col is not None:
        ok &= act_missing | act_col.isin(_ACTIONS).to_numpy()
    score, score_ok = _float_values(_column(frame, "score"), n)
    weight, weight_ok = _float_values(_column(frame, "weight"), n)
    ok &= score_ok & weight_ok
    w_nan = np.isnan(weight)
    ok &= w_nan | ((weight >= -1.0) & (weight <= 1.0))
    ok &= ~(act_missing & np.isnan(score) & w_nan)
    act = (np.full(n, None, dtype=object) if act_col is None
           else act_col.to_numpy(dtype=object))
    ok &= _action_weight_risk_ok(frame, act, act_missing, weight, mapped, n)

    # valid_until
    vu_col = _column(frame, "valid_until")
    vu_missing = _missing(vu_col, n)
    vu_ns = np.zeros(n, "int64")
    if vu_col is not None and not vu_missing.all():
        got = _aware_ns(vu_col)
        if got is None:
            ok &= vu_missing
        else:
            vu_ns = np.where(vu_missing, 0, got)
            ok &= vu_missing | (vu_ns > ts_ns)

    # note / source / version
    ok &= _ok_str(_column(frame, "note"), n, NOTE_MAX_LEN)
    ok &= _ok_str(_column(frame, "source"), n, SOURCE_MAX_LEN)
    ver_col = _column(frame, "version")
    version = np.ones(n, "int64")
    if ver_col is not None:
        vals, v_ok = _float_values(ver_col, n)
        v_nan = np.isnan(vals)
        whole = np.mod(np.where(v_nan, 1, vals), 1) == 0
        good = v_ok & (v_nan | ((vals >= 1) & (vals < 2**53) & whole))
        ok &= good
        version = np.where(v_nan | ~good, 1, vals).astype("int64")

    # a key shared by accepted rows: those rows go to the model path, where every copy is
    # rejected; so the accepted rows always have distinct keys
    accepted = np.flatnonzero(ok)
    if accepted.size > 1:
        pair_codes = pd.factorize(np.array([m[1] if m else "" for m in mapped], dtype=object))[0]
        ok[accepted[_shared(
            [pd.factorize(sid)[0], pair_codes, pd.factorize(tf)[0], ts_ns], accepted)]] = False

    rows = np.flatnonzero(ok)
    if rows.size == 0:
        return ok, []
    ts_py = _datetimes(ts_ns[rows])
    vu_rows = vu_missing[rows]
    vu_py = [None] * rows.size
    if not vu_rows.all():
        conv = _datetimes(np.where(vu_rows, 0, vu_ns[rows]))
        vu_py = [None if m else v for m, v in zip(vu_rows, conv, strict=True)]
    tf_vals = tf.to_numpy(dtype=object)[rows].tolist()
    sid_vals = sid.to_numpy(dtype=object)[rows].tolist()
    act_vals = _objects(act[rows], act_missing[rows])
    score_vals = _objects(score[rows], np.isnan(score[rows]))
    weight_vals = _objects(weight[rows], w_nan[rows])
    note_col, source_col = _column(frame, "note"), _column(frame, "source")
    note_vals = ([None] * rows.size if note_col is None
                 else _objects(note_col.to_numpy(dtype=object)[rows],
                               note_col.isna().to_numpy()[rows]))
    source_vals = ([None] * rows.size if source_col is None
                   else _objects(source_col.to_numpy(dtype=object)[rows],
                                 source_col.isna().to_numpy()[rows]))
    ver_vals = version[rows].tolist()
    risk_vals = [_objects(v[rows], np.isnan(v[rows])) for v in _risk_values(frame, n)]
    mapped_rows = [mapped[r] for r in rows.tolist()]
    records = [
        {"ts": ts, "timeframe": tf_v, "symbol": symbol_pair[0], "pair": symbol_pair[1],
         "strategy_id": sid_v, "action": act_v, "score": score_v, "weight": weight_v,
         "valid_until": vu_v, "note": note_v, "source": source_v, "version": ver_v,
         "extra": None, "leverage": lev_v, "stop_loss": sl_v, "take_profit": tp_v}
        for (ts, tf_v, symbol_pair, sid_v, act_v, score_v, weight_v, vu_v, note_v, source_v,
             ver_v, lev_v, sl_v, tp_v)
        in zip(ts_py, tf_vals, mapped_rows, sid_vals, act_vals, score_vals, weight_vals, vu_py,
               note_vals, source_vals, ver_vals, *risk_vals, strict=True)
    ]
    return ok, records
