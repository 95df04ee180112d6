"""A deliberately naive bar-by-bar long/short simulator: the oracle for the vectorised engine.

Written from Freqtrade's backtesting loop (``optimize/backtesting.py``: per candle,
entries, then exits in the order exit signal, stop-loss, ROI, and with shorts a second
run of the candle for the other side's entry once a trade closed) and the rules in
``simulate_long_short``'s docstring, independently of :mod:`research.backtest.longshort`.
One symbol; the vectorbt fee model.
"""

from __future__ import annotations

import math


def _roi_rate(price: float, s: int, tp: float, lev: float, fee: float) -> float:
    """Freqtrade's take-profit fill: the target's profit ratio as the strategy's custom_roi,
    rounded to 8 decimals (Trade.calc_profit_ratio), turned back into a rate
    (Trade.calc_close_rate_for_roi)."""
    target = price * (1 + s * tp)
    if s > 0:
        ratio = round((target * (1 - fee) / (price * (1 + fee)) - 1) * lev, 8)
        return (1 + ratio / lev) * price * (1 + fee) / (1 - fee)
    ratio = round((1 - target * (1 + fee) / (price * (1 - fee))) * lev, 8)
    return (1 - ratio / lev) * price * (1 - fee) / (1 + fee)


def simulate_reference_short(open_, high, low, close, signal, *, fee, slip, capital,
                             leverage=None, stop_loss=None, take_profit=None, funding=None):
    """Returns (equity per bar, position per bar, trades as dicts)."""
    n = len(open_)
    nan = math.nan

    def at(values, t):
        return nan if values is None else values[t]

    cash = capital
    trade = None  # dict while a position is open
    wish, want_at_open = 0, 0
    wish_start = want_from = 0  # signal bar where the current wish began / the wanted side
    blocked = False  # after a stop/target: no re-entry until the wanted side changes
    last_close = nan
    equity, position, trades = [], [], []
    for t in range(n):
        o = open_[t]
        valid = not math.isnan(o)
        if valid and t > 0:
            new_want = wish
            if new_want != want_at_open:
                blocked = False
                want_from = wish_start
            want_at_open = new_want
        held_now = 0
        if valid:
            # Freqtrade: an open trade's exit signal fills at the open; the candle is then run
            # again for an entry of the other side (a flip at one open); new trades are
            # checked for stops/targets on their entry candle.
            for _pass in (0, 1):
                if trade is None and want_at_open != 0 and not blocked and t > 0:
                    s = want_at_open
                    lev = at(leverage, want_from)
                    lev = 1.0 if math.isnan(lev) else lev
                    price = o * (1 + s * slip)
                    units = cash * lev / (price * (1 + s * fee))
                    sl, tp = at(stop_loss, want_from), at(take_profit, want_from)
                    trade = {"side": s, "entry_bar": t, "entry_price": price, "units": units,
                             "cash": cash, "lev": lev, "funding": 0.0,
                             "stop": nan if math.isnan(sl) else price * (1 - s * sl),
                             "target": nan if math.isnan(tp) else price * (1 + s * tp),
                             "target_fill": nan if math.isnan(tp) else _roi_rate(price, s, tp,
                                                                                lev, fee)}
                if trade is None:
                    break
                s = trade["side"]
                exit_price, reason = None, None
                if want_at_open != s and trade["entry_bar"] < t:
                    exit_price, reason = o * (1 - s * slip), "exit_signal"
                else:
                    if funding is not None and not math.isnan(funding[t]):
                        trade["funding"] += s * trade["units"] * o * funding[t]
                    st, tg = trade["stop"], trade["target"]
                    if not math.isnan(st) and (low[t] <= st if s > 0 else high[t] >= st):
                        gapped = st > high[t] if s > 0 else st < low[t]
                        exit_price, reason = (o if gapped else st) * (1 - s * slip), "stop_loss"
                    elif not math.isnan(tg) and (high[t] > tg if s > 0 else low[t] < tg):
                        gapped = t > trade["entry_bar"] and (o > tg if s > 0 else o < tg)
                        px = o if gapped else min(max(trade["target_fill"], low[t]), high[t])
                        exit_price, reason = px * (1 - s * slip), "roi"
                    held_now = s
                if exit_price is None:
                    break
                ratio = trade["lev"] * (s * exit_price * (1 - s * fee)
                                        / (trade["entry_price"] * (1 + s * fee)) - s)
                # the same expression as the vectorised engine: 1 + ratio, minus funding
                growth = max(0.0, (1 + ratio) - trade["funding"] / trade["cash"])
                cash = trade["cash"] * growth
                trades.append({"side": s, "entry_bar": trade["entry_bar"], "exit_bar": t,
                               "entry_price": trade["entry_price"],
                               "exit_price": exit_price, "reason": reason,
                               "leverage": trade["lev"], "entry_value": trade["cash"],
                               "exit_value": cash, "funding": trade["funding"]})
                if reason != "exit_signal":
                    blocked = True
                trade = None
                if reason != "exit_signal" or want_at_open == 0:
                    break
        elif trade is not None:
            held_now = trade["side"]
        if not math.isnan(close[t]):
            last_close = close[t]
        if trade is not None:
            s, u = trade["side"], trade["units"]
            equity.append(trade["cash"] * (1 - s * trade["lev"]) + s * u * last_close)
            held_now = s
        else:
            equity.append(cash)
        position.append(held_now)
        # the signal of this bar is known at its close
        if signal is not None and not math.isnan(signal[t]) and int(signal[t]) != wish:
            wish = int(signal[t])
            wish_start = t
    if trade is not None:
        trades.append({"side": trade["side"], "entry_bar": trade["entry_bar"], "exit_bar": -1,
                       "entry_price": trade["entry_price"], "exit_price": last_close,
                       "reason": "", "leverage": trade["lev"], "entry_value": trade["cash"],
                       "exit_value": None, "funding": trade["funding"]})
    return equity, position, trades
