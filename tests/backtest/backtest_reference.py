"""A deliberately naive bar-by-bar long/flat simulator, the oracle for property tests.

Written from the rules in ``simulate_long_flat``'s docstring, independently of
the vectorised engine: walk every bar, fill the newest wish at the bar's open
if there is an open, mark at the last known close.
"""

from __future__ import annotations

import math

import numpy as np


def simulate_reference(open_, close, signal, *, fee, slip, capital, model="vectorbt"):
    """One symbol. Returns (equity per bar, position per bar, trades as tuples)."""
    n = len(open_)
    cash, units, long, wish = capital, 0.0, False, signal is None
    last_close = math.nan
    equity, position, trades = [], [], []
    entry = None
    for t in range(n):
        o = open_[t]
        if not math.isnan(o) and wish != long:
            if wish:
                price = o * (1 + slip)
                if model == "vectorbt":
                    units = cash / (price * (1 + fee))
                else:
                    units = cash * (1 - fee) / price
                entry = (t, price, cash, units)
                cash, long = 0.0, True
            else:
                price = o * (1 - slip)
                cash = units * price * (1 - fee)
                trades.append((entry[0], t, entry[1], price, entry[2], cash))
                units, long = 0.0, False
        if not math.isnan(close[t]):
            last_close = close[t]
        equity.append(cash + (units * last_close if long else 0.0))
        position.append(1 if long else 0)
        if signal is not None and not math.isnan(signal[t]):
            wish = bool(signal[t])
    if long:
        trades.append((entry[0], -1, entry[1], last_close, entry[2], units * last_close))
    return np.array(equity), np.array(position), trades
