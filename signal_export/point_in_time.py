"""Point-in-time signals: which version of each signal was visible at a given moment.

Why: the signal store keeps only the newest version of each key, so a backtest
run today would use revisions the live bot never saw (a quiet lookahead). Each
stored version therefore records ``available_at`` (when the store accepted it,
from the MongoDB *server's* clock, set by the exporter, never by a producer),
and every version a newer one replaced is kept in an append-only history
collection (``<signals collection>_history``; each entry also records
``superseded_at``). See docs/POINT_IN_TIME.md.

This module is the one definition of the ``as_known`` rule, pure (no I/O):

    the version of key K visible at time t is, among all versions of K (current
    and history) whose knowledge time is <= t, the one with the highest
    ``version``; equal versions (a same-version rewrite) by the later knowledge time.

A key with no version known by t is not visible at t. The knowledge time is
``available_at``; documents stored before ``available_at`` existed fall back
to ``updated_at`` (the exporter's clock when that version was written). The
reads that feed it are :func:`signal_export.store.signal_versions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from signal_export.contract import (
    AVAILABLE_AT_FIELD,  # when a stored version became visible (server clock; re-exported)
    CONTENT_HASH_FIELD,
    SIGNAL_KEY,
    UPDATED_AT_FIELD,
    ceil_epoch_ms_to_bar,
    ensure_utc,
    timeframe_delta,
)

__all__ = ["AVAILABLE_AT_FIELD", "HISTORY_SUFFIX", "KNOWN_AT", "MODES", "SUPERSEDED_AT_FIELD",
           "acting_delay", "as_known", "decision_deadline", "first_known",
           "history_collection_name", "versions_frame", "visible_at"]
#: When a history entry's version was replaced (server clock, history collection only).
SUPERSEDED_AT_FIELD = "superseded_at"
#: The history collection of signals collection ``name`` is ``name + HISTORY_SUFFIX``.
HISTORY_SUFFIX = "_history"
#: The column :func:`versions_frame` adds: available_at, or updated_at for older documents.
KNOWN_AT = "known_at"
#: The backtest modes of ext_signals and the research backtest.
MODES: tuple[str, ...] = ("latest", "as_known")


def acting_delay(timeframe: str, max_delay: timedelta) -> timedelta:
    """How long after its candle's close a live bot still acts on a signal.

    The signal's row is the newest closed candle from that close until the next one (it is
    re-evaluated every loop, ``process_only_new_candles = False``), and stale ``max_delay``
    after the close (the decision rule's ``effective_max_delay``): the earlier of the two.
    """
    return min(timeframe_delta(timeframe) - timedelta(milliseconds=1), max_delay)


def decision_deadline(ts: pd.Series, timeframe: str, delay: timedelta) -> pd.Series:
    """The latest moment a live bot acts on a signal with ``ts``: its bar's close (``ts`` on
    the bar grid, ceil as the contract aligns) plus ``delay`` (:func:`acting_delay`). A version
    visible only after it was never acted on live: ``as_known`` backtests leave it out and
    ``signal-reconcile`` calls its signal late."""
    ms = pd.to_datetime(ts, utc=True).astype("datetime64[ms, UTC]").array.asi8
    bar_open = pd.to_datetime(ceil_epoch_ms_to_bar(ms, timeframe), unit="ms", utc=True)
    return pd.Series(bar_open + pd.Timedelta(timeframe_delta(timeframe)) + pd.Timedelta(delay),
                     index=ts.index)


def history_collection_name(signals_collection: str) -> str:
    """``crypto_signals`` -> ``crypto_signals_history`` (the default history collection)."""
    return f"{signals_collection}{HISTORY_SUFFIX}"


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _key_codes(left: pd.DataFrame, right: pd.DataFrame,
               key: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One int64 code per key value, shared by both frames (times compared as UTC ns)."""
    n = len(left)
    code = np.zeros(n + len(right), dtype="int64")
    for name in key:
        col = pd.concat([left[name], right[name]], ignore_index=True)
        if name == "ts" or pd.api.types.is_datetime64_any_dtype(col):
            col = _utc(col)
        values, uniques = pd.factorize(col, use_na_sentinel=False)
        code = pd.factorize(code * len(uniques) + values)[0]  # dense: < rows, no overflow
    return code[:n], code[n:]


def versions_frame(current: pd.DataFrame, history: pd.DataFrame | None = None,
                   key: Sequence[str] = SIGNAL_KEY) -> pd.DataFrame:
    """Current documents and history entries as one frame of versions, with ``known_at``.

    Identical versions (same key, version and content hash: a history entry written
    just before a replace that never happened) are kept once. Rows without any
    knowledge time are dropped: nothing says when they became visible.
    """
    frames = [f for f in (current, history) if f is not None and not f.empty]
    if not frames:
        cols = list(dict.fromkeys([*key, "version", AVAILABLE_AT_FIELD, KNOWN_AT]))
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    known = (_utc(out[AVAILABLE_AT_FIELD]) if AVAILABLE_AT_FIELD in out
             else pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]"))
    if UPDATED_AT_FIELD in out:
        known = known.fillna(_utc(out[UPDATED_AT_FIELD]))
    out[KNOWN_AT] = known
    if "version" not in out:
        out["version"] = 1
    out["version"] = out["version"].fillna(1).astype("int64")
    out = out[out[KNOWN_AT].notna()]
    same = [*key, "version"] + ([CONTENT_HASH_FIELD] if CONTENT_HASH_FIELD in out else [])
    out = out.sort_values(KNOWN_AT, kind="stable").drop_duplicates(same, keep="first")
    return out.reset_index(drop=True)


def as_known(versions: pd.DataFrame, queries: pd.DataFrame, *, at: str = "decision_at",
             key: Sequence[str] = SIGNAL_KEY) -> pd.DataFrame:
    """For each row of ``queries`` (key columns + time column ``at``), the version visible
    at that time, by the rule of this module.

    ``versions``: :func:`versions_frame`. Returns ``queries`` (same index and order)
    with the visible version's other columns added; they are NaN/NaT where no version
    of the key was known yet. Vectorised (numpy): keys as integer codes, one sort, one
    running maximum and one ``searchsorted``; no loop over keys or bars.
    """
    key = list(key)
    extra = [c for c in versions.columns if c not in key and c not in queries.columns]
    if queries.empty or versions.empty:
        return queries.reindex(columns=[*queries.columns, *extra])
    v = versions.reset_index(drop=True)
    q = queries.reset_index(drop=True)
    vcode, qcode = _key_codes(v, q, key)
    vt = _utc(v[KNOWN_AT]).to_numpy("int64")
    qt_at = _utc(q[at])
    qt = qt_at.to_numpy("int64")
    # times as dense ranks over both frames, so (key code, time) packs into one int64
    _, t_rank = np.unique(np.concatenate([vt, qt]), return_inverse=True)
    span = int(t_rank.max()) + 1
    vkey = vcode * span + t_rank[:len(v)]
    qkey = qcode * span + t_rank[len(v):]
    # each version's rank by (version, known_at); walking a key in knowledge-time order, the
    # best rank so far is the version visible from then on (offset by key: one global cummax)
    by_version = np.lexsort([vt, v["version"].to_numpy("int64")])
    rank = np.empty(len(v), dtype="int64")
    rank[by_version] = np.arange(len(v))
    walk = np.argsort(vkey, kind="stable")
    best = np.maximum.accumulate(vcode[walk] * len(v) + rank[walk]) - vcode[walk] * len(v)
    pos = np.searchsorted(vkey[walk], qkey, side="right") - 1
    hit = (pos >= 0) & qt_at.notna().to_numpy()
    hit &= vcode[walk][np.where(pos >= 0, pos, 0)] == qcode
    rows = np.where(hit, by_version[best[np.where(hit, pos, 0)]], -1)
    picked = v[extra].reindex(rows).reset_index(drop=True)  # -1: no row, all NaN
    out = pd.concat([queries.reset_index(drop=True), picked], axis=1)
    out.index = queries.index
    return out


def visible_at(versions: pd.DataFrame, when: datetime | pd.Timestamp,
               key: Sequence[str] = SIGNAL_KEY) -> pd.DataFrame:
    """Every key's version visible at one moment ``when`` (keys not yet known left out)."""
    key = list(key)
    keys = versions.loc[:, key].drop_duplicates().reset_index(drop=True)
    keys["_when"] = ensure_utc(when, "when")
    out = as_known(versions, keys, at="_when", key=key)
    return out[out[KNOWN_AT].notna()].drop(columns="_when").reset_index(drop=True)


def first_known(versions: pd.DataFrame, key: Sequence[str] = SIGNAL_KEY) -> pd.DataFrame:
    """One row per key: when its first version became visible (``known_at``) - the time a
    live bot could first act on it (the freshness SLO measures this)."""
    key = list(key)
    if versions.empty:
        return pd.DataFrame(columns=[*key, KNOWN_AT])
    return versions.groupby(key, as_index=False, sort=True)[KNOWN_AT].min()
