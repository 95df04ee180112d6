"""The contract's futures risk fields on the consumer side (``leverage``, ``stop_loss``,
``take_profit``): how a read decodes them and which values drop a signal.

The signal read carries them itself (``SignalSource(risk=True)``: the one ``find`` of a
poll or backtest range projects them; :mod:`.normalise` and, column-wise, :mod:`.range_read`
turn them into float columns, NaN where a document has none). Each value becomes a float64
(:func:`risk_numbers`): NaN when absent or null, ``-inf`` when present but not a number (so
it fails every check below). :func:`invalid_risk` is the one definition of the contract's
cross-field checks (``signal_export/contract.py``: leverage in [1, 125], ``stop_loss > 0``
with ``stop_loss * leverage < 1``, ``take_profit > 0`` and ``< 1`` on a short); a document
breaking one is ``malformed`` as a whole, counted and warned once naming the field: a stop
must never be silently lost. Not the decision: :mod:`.matching` carries the values to the
entry row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from signal_export.contract import RISK_FIELDS


def risk_numbers(values: list[Any]) -> np.ndarray:
    """Decoded values of one risk field -> float64 (see the module doc for NaN / -inf)."""
    return np.array([np.nan if v is None else float(v) if isinstance(v, int | float)
                     and not isinstance(v, bool) else -np.inf for v in values],
                    dtype=np.float64)


def invalid_risk(risk: Mapping[str, np.ndarray], short: np.ndarray) -> dict[str, np.ndarray]:
    """Per reason, the rows whose risk values break the contract (absent values are fine).

    ``risk``: per field of ``RISK_FIELDS``, float64 values (NaN: absent, -inf: present but
    not a number); ``short``: the rows that enter a short (``enter_short`` or weight < 0).
    """
    lev, sl, tp = (np.asarray(risk[f], dtype=np.float64) for f in RISK_FIELDS)
    given = {f: ~np.isnan(v) for f, v in zip(RISK_FIELDS, (lev, sl, tp), strict=True)}
    lev_eff = np.where(given["leverage"], lev, 1.0)
    with np.errstate(invalid="ignore"):
        return {
            "leverage not a number in [1, 125]": given["leverage"] & ~((lev >= 1) & (lev <= 125)),
            "stop_loss not a number > 0 with stop_loss * leverage < 1": given["stop_loss"] & ~(
                (sl > 0) & (sl * lev_eff < 1)),
            "take_profit not a number > 0 (< 1 on a short)": given["take_profit"] & ~(
                (tp > 0) & ~(short & (tp >= 1))),
        }
