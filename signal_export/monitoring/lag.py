"""Signal lag per strategy/pair: how long ago the bar that produced the newest signal closed.

``lag = now - latest ts - one bar`` (SPEC §6): a signal's ``ts`` is its bar's
open, so ``ts + bar`` is the close that produced it. On an every-bar producer,
lag stays in ``[0, bar)`` while the exporter keeps up; it passes ``bar +
budget`` when the newest closed bar's signal is later than the export budget,
and ``N x bar`` when N bars went by without a signal. Pure, over the frame of
:func:`signal_export.store.latest_signals`. Not the alert rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from signal_export.contract import ensure_utc, timeframe_seconds

LAG_COLUMNS = ("strategy_id", "pair", "timeframe", "ts", "lag_s", "bar_s")


def signal_lag(latest: pd.DataFrame, now: datetime,
               expected: Mapping[tuple[str, str], Iterable[str]] | None = None) -> pd.DataFrame:
    """One row per (strategy_id, pair, timeframe) with ``lag_s`` (seconds) and ``bar_s``.

    ``expected``: ``{(strategy_id, timeframe): pairs}`` adds rows (``ts`` NaT,
    ``lag_s`` inf) for pairs that should have signals but have none at all.
    """
    now_ts = ensure_utc(now, "now")
    frame = latest.loc[:, ["strategy_id", "pair", "timeframe", "ts"]].copy()
    if expected:
        have = set(zip(frame["strategy_id"], frame["timeframe"], frame["pair"], strict=True))
        extra = [{"strategy_id": s, "timeframe": tf, "pair": p, "ts": pd.NaT}
                 for (s, tf), pairs in expected.items() for p in pairs if (s, tf, p) not in have]
        if extra:
            frame = pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    bar_s = frame["timeframe"].map({tf: timeframe_seconds(tf)
                                    for tf in frame["timeframe"].unique()}).astype("float64")
    age = (now_ts - frame["ts"]).dt.total_seconds()
    frame["lag_s"] = np.where(frame["ts"].isna(), np.inf, age - bar_s)
    frame["bar_s"] = bar_s
    return frame.sort_values(["strategy_id", "pair"], ignore_index=True)[list(LAG_COLUMNS)]
