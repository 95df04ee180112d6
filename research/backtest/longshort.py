"""The long/short/flat kernel: leverage, per-trade stops and take-profits, Freqtrade's rules.

Arrays are ``(symbols, bars)`` as in :mod:`research.backtest.engine`; nothing loops
over bars. The wanted side (-1/0/+1 after each bar's close) is cut into *runs*; each
non-flat run is a candidate trade, filled at the next open. Stops and targets are
found for all trades at once: the trades' bars are gathered, their price levels
repeated over them (``np.repeat`` of per-trade values) and compared with the bars'
low/high, and the first hit of each trade is one ``searchsorted`` into the hit positions. A flip
(long -> short) closes the old trade and opens the new one at the same open, as
Freqtrade's backtester does (with ``can_short`` it runs a candle a second time for an
entry signal of the other side once a trade closed).

Freqtrade's backtesting rules copied here (``freqtrade/optimize/backtesting.py``,
``strategy/interface.py``, 2026.9):

* exits in a candle are tried in the order exit signal (at the open), stop-loss,
  ROI: a stop and a target touched in the same candle exit at the stop;
* a long's stop hits when ``low <= stop`` and fills at the stop price, or at the
  open if the whole candle lies below it (``stop > high``); shorts mirrored;
* a target (ROI) hits when ``high > target`` (short: ``low < target``) and fills at
  the target, or at the open when the candle opened beyond it (not on the entry candle);
* the entry candle is checked for stops/targets too (the entry fills at its open);
* profit ratio with fee ``f`` and leverage ``L``: long ``L * (x(1-f) / (e(1+f)) - 1)``,
  short ``L * (1 - x(1+f) / (e(1-f)))``; a sleeve grows by ``1 + ratio``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.backtest.engine import EngineOutput, FeeModel, fill_at_opens
from research.backtest.inputs import MarketArrays, ffill_rows

#: Exit reasons (Freqtrade's ``ExitType`` values; the target is its ROI exit).
EXIT_SIGNAL, STOP_LOSS, TAKE_PROFIT, STILL_OPEN = 0, 1, 2, 3
EXIT_REASONS: tuple[str, ...] = ("exit_signal", "stop_loss", "roi", "")
#: Bars per piece of the exit scan and of the equity (2 MB of float64): a piece's temporaries
#: stay in the cache (1 << 22 made the stop/target scan twice as slow at 52 M bars).
_PIECE_CELLS = 1 << 18


@dataclass(frozen=True)
class RiskArrays:
    """Optional inputs of the long/short kernel, in the ``(symbols, bars)`` layout.

    ``leverage``/``stop_loss``/``take_profit`` hold each signal bar's value (NaN = not
    set); a trade takes the values of the bar where its side was first wanted.
    ``funding`` is a rate per bar (NaN/0 = no funding at that bar's open). Any of them may
    be a 0-d array: one value for every bar. ``price_decimals`` (per symbol) puts stop and
    target fills on the exchange's tick, as Freqtrade does.
    """

    high: np.ndarray | None = None
    low: np.ndarray | None = None
    leverage: np.ndarray | None = None
    stop_loss: np.ndarray | None = None
    take_profit: np.ndarray | None = None
    funding: np.ndarray | None = None
    price_decimals: np.ndarray | None = None  # per symbol; -1: prices not rounded


@dataclass(frozen=True)
class LongShortOutput(EngineOutput):
    """:class:`EngineOutput` plus the side, leverage, exit reason and funding of each trade."""

    trade_side: np.ndarray  # int8: 1 long, -1 short
    trade_leverage: np.ndarray
    trade_exit_reason: np.ndarray  # index into EXIT_REASONS
    trade_funding: np.ndarray  # funding paid (negative: received)
    trade_bars_held: np.ndarray


def wanted_sides(signal: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """-1/0/+1 wanted after each bar's close (NaN keeps the last wish; flat before any)."""
    if signal is None:
        return np.ones(shape, dtype=np.int8)
    if signal.dtype.kind == "f":
        if np.isnan(signal).any():
            signal = np.nan_to_num(ffill_rows(signal), nan=0.0)
        return signal.astype(np.int8)
    return signal.astype(np.int8, copy=False)


def _first_hit(cond: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per segment the first position in ``[start, end)`` where ``cond`` holds, else -1."""
    hits = np.flatnonzero(cond)
    if hits.size == 0:
        return np.full(len(starts), -1, dtype=np.int64)
    pos = np.searchsorted(hits, starts)
    first = np.append(hits, np.iinfo(np.int64).max)[pos]
    return np.where(first < ends, first, -1)


def _paint(starts: np.ndarray, ends: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """``size`` cells holding ``values[i]`` on ``[starts[i], ends[i])``, NaN elsewhere
    (segments sorted and disjoint)."""
    points = np.empty(2 * len(starts) + 1, dtype=np.int64)
    points[0] = 0
    points[1::2] = starts
    points[2::2] = ends
    vals = np.full(2 * len(starts) + 1, np.nan)
    vals[1::2] = values
    return np.repeat(vals, np.diff(points, append=size))


def _scan_span(idx_t: np.ndarray, lo_cell: int, hi_cell: int, flat_start: np.ndarray,
               flat_end: np.ndarray, side: np.ndarray, stop: np.ndarray, target: np.ndarray,
               hi: np.ndarray, lo: np.ndarray, first_stop: np.ndarray,
               first_target: np.ndarray) -> None:
    """:func:`scan_exits` for trades that cover most of ``[lo_cell, hi_cell)``: the high/low
    of the span are views, the levels painted over it per side (NaN in the gaps); both
    sides' hits go into one mask (the trades are disjoint), searched once per level."""
    size = hi_cell - lo_cell
    h, lw = hi[lo_cell:hi_cell], lo[lo_cell:hi_cell]
    s, e = flat_start[idx_t] - lo_cell, flat_end[idx_t] - lo_cell
    long_ = side[idx_t] > 0
    for levels, out, tests in (
        (stop, first_stop, ((lw, np.less_equal), (h, np.greater_equal))),
        (target, first_target, ((h, np.greater), (lw, np.less))),
    ):
        lv = levels[idx_t]
        has = ~np.isnan(lv)
        hit = None
        for mine, (price, compare) in zip((has & long_, has & ~long_), tests, strict=True):
            if mine.any():
                one = compare(price, _paint(s[mine], e[mine], lv[mine], size))
                hit = one if hit is None else np.logical_or(hit, one, out=hit)
        found = np.full(len(idx_t), -1, dtype=np.int64)
        if hit is not None:
            got = _first_hit(hit, s[has], e[has])
            found[has] = np.where(got >= 0, got + lo_cell, -1)
        out[idx_t] = found


def scan_exits(flat_start: np.ndarray, flat_end: np.ndarray, side: np.ndarray,
               stop: np.ndarray, target: np.ndarray, high: np.ndarray, low: np.ndarray,
               n_bar: int) -> tuple[np.ndarray, np.ndarray]:
    """First stop and first target bar (flat index, -1 if none) of each trade.

    ``flat_*`` are ``row * n_bar + bar``; ``stop``/``target`` are prices (NaN = none). The
    bars of the trades are gathered (in cache-sized batches), the
    levels repeated over them with the side folded into the sign (a short's stop hits at
    ``-high <= -stop``), and each trade's first hit is one ``searchsorted``. Work is
    proportional to the bars the trades hold, so re-scanning a few trades is cheap.
    """
    first_stop = np.full(len(side), -1, dtype=np.int64)
    first_target = np.full(len(side), -1, dtype=np.int64)
    todo = np.flatnonzero(~(np.isnan(stop) & np.isnan(target)) & (flat_end > flat_start))
    if todo.size == 0:
        return first_stop, first_target
    hi, lo = high.ravel(), low.ravel()
    lengths = flat_end[todo] - flat_start[todo]
    ends = np.cumsum(lengths)
    cuts = np.searchsorted(ends, np.arange(_PIECE_CELLS, int(ends[-1]), _PIECE_CELLS),
                           side="right")
    for part in np.split(np.arange(todo.size), np.unique(cuts)):
        if part.size == 0:
            continue
        idx_t = todo[part]
        n = lengths[part]
        lo_cell, hi_cell = int(flat_start[idx_t[0]]), int(flat_end[idx_t[-1]])
        if 2 * int(n.sum()) >= hi_cell - lo_cell:  # dense: scan the span as contiguous views
            _scan_span(idx_t, lo_cell, hi_cell, flat_start, flat_end, side, stop, target,
                       hi, lo, first_stop, first_target)
            continue
        offsets = np.cumsum(n) - n
        total = int(n.sum())
        cells = np.repeat(flat_start[idx_t] - offsets, n) + np.arange(total)
        is_long = np.repeat(side[idx_t] > 0, n)
        sign = np.where(side[idx_t] > 0, 1.0, -1.0)
        for levels, out, price_long, price_short, compare in (
            (stop, first_stop, lo, hi, np.less_equal),
            (target, first_target, hi, lo, np.greater),
        ):
            lv = levels[idx_t]
            if np.isnan(lv).all():
                continue
            bar_price = np.where(is_long, price_long[cells], -price_short[cells])
            hit = compare(bar_price, np.repeat(sign * lv, n))
            got = _first_hit(hit, offsets, offsets + n)
            out[idx_t] = np.where(got >= 0, flat_start[idx_t] + (got - offsets), -1)
    return first_stop, first_target


def segment_lines(seg_start: np.ndarray, a: np.ndarray, b: np.ndarray, close: np.ndarray,
                  nan_close: bool = False) -> np.ndarray:
    """``a[k] + b[k] * close`` over each segment ``k`` of the flattened ``close`` (segments
    sorted by start, the first at 0, each up to the next start), in ``close``'s shape.

    Written in pieces of :data:`_PIECE_CELLS` so that the repeated ``a``/``b`` of a piece
    never leave the cache: the bars are read once and the equity written once, where whole
    ``np.repeat``s would write and re-read two more arrays of the full size. ``nan_close``:
    ``close`` may be NaN where ``b`` is 0 (before a symbol's first bar), left out there.
    """
    flat = close.ravel()
    size = flat.size
    out = np.empty(size)
    edges = np.append(np.arange(0, size, _PIECE_CELLS), size)
    first = np.searchsorted(seg_start, edges[:-1], side="right") - 1
    stop = np.searchsorted(seg_start, edges[1:], side="left")
    for c0, c1, i0, i1 in zip(edges[:-1].tolist(), edges[1:].tolist(), first.tolist(),
                              stop.tolist(), strict=True):
        starts = seg_start[i0:i1].copy()
        starts[0] = c0
        n = np.diff(starts, append=c1)
        piece = np.repeat(b[i0:i1], n)
        np.multiply(piece, flat[c0:c1], out=piece, where=(piece != 0) if nan_close else True)
        np.add(piece, np.repeat(a[i0:i1], n), out=out[c0:c1])
    return out.reshape(close.shape)


def to_tick(price: np.ndarray, decimals: np.ndarray | None, direction: np.ndarray | int
            ) -> np.ndarray:
    """Prices on a tick of ``10 ** -decimals`` (-1: unrounded), as Freqtrade's
    ``price_to_precision`` rounds the price's decimal form: ``direction`` 1 up, -1 down, 0
    nearest with ties up; a price on the grid is kept. Grid and tie points are computed as
    ``k / 10**d`` (the double nearest that decimal), so comparing doubles compares decimals.
    """
    if decimals is None:
        return price
    scale = 10.0 ** np.maximum(decimals, 0)
    k = np.floor(price * scale)
    k = np.where(price < k / scale, k - 1, k)
    k = np.where(price >= (k + 1) / scale, k + 1, k)  # now k/scale <= price < (k+1)/scale
    on_grid = k / scale == price
    up = np.where(on_grid, k, k + 1)
    nearest = np.where(price >= (k + 0.5) / scale, k + 1, k)
    direction = np.broadcast_to(direction, np.shape(price))
    chosen = np.where(direction > 0, up, np.where(direction < 0, k, nearest))
    return np.where(decimals >= 0, chosen / scale, price)


def stop_price(entry: np.ndarray, side: np.ndarray, stop_loss: np.ndarray,
               decimals: np.ndarray | None) -> np.ndarray:
    """``entry * (1 - side * stop_loss)``, rounded away from the entry to the tick (Freqtrade:
    ``ROUND_UP`` for longs, ``ROUND_DOWN`` for shorts)."""
    return to_tick(entry * (1.0 - side * stop_loss), decimals, side)


def roi_rate(entry: np.ndarray, side: np.ndarray, take_profit: np.ndarray,
             leverage: np.ndarray, fee: float) -> np.ndarray:
    """The rate Freqtrade's backtester fills a take-profit at, before the tick.

    The strategy hands the target ``entry * (1 + side * take_profit)`` to Freqtrade as a
    ``custom_roi`` profit ratio; Freqtrade rounds that ratio to 8 decimals
    (``Trade.calc_profit_ratio``) and turns it back into a rate
    (``calc_close_rate_for_roi``). The rounding moves the rate by up to ~1e-8 relative,
    enough to change the tick a target lands on, so the same round trip is made here."""
    target = entry * (1.0 + side * take_profit)
    long = side > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(long, (target * (1 - fee) / (entry * (1 + fee)) - 1) * leverage,
                         (1 - target * (1 + fee) / (entry * (1 - fee))) * leverage)
        ratio = np.round(ratio, 8)
        return np.where(long, (1 + ratio / leverage) * entry * (1 + fee) / (1 - fee),
                        (1 - ratio / leverage) * entry * (1 - fee) / (1 + fee))


def _at_row(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[rows]


def held_sides(signal: np.ndarray | None, open_valid: np.ndarray | None,
               shape: tuple[int, int]) -> np.ndarray:
    """Side wanted at each bar's open (-1/0/+1): the newest wish before it, as
    :func:`research.backtest.engine.held_positions` does for 0/1 (fills only at an open)."""
    if signal is None:
        if open_valid is None:
            return np.ones(shape, dtype=np.int8)
        return np.logical_or.accumulate(open_valid, axis=1).view(np.int8)
    return fill_at_opens(wanted_sides(signal, shape), open_valid, shape)


@dataclass
class _Trades:
    """Candidate trades: one per non-flat run of the side wanted at the opens."""

    row: np.ndarray
    side: np.ndarray
    entry_if_flat: np.ndarray  # the run's first bar: its open fills the entry
    natural_exit: np.ndarray  # bar whose open the exit signal fills at (n_bar: none)


def _candidates(held: np.ndarray) -> _Trades:
    n_sym, n_bar = held.shape
    flat = held.ravel()
    change = np.empty(flat.size, dtype=bool)
    change[0] = True
    np.not_equal(flat[1:], flat[:-1], out=change[1:])
    change[::n_bar] = True
    starts = np.flatnonzero(change)
    del change
    run_row, run_col = np.divmod(starts, n_bar)
    run_end = np.append(starts[1:], flat.size) - run_row * n_bar
    run_end = np.minimum(run_end, n_bar)
    run_side = flat[starts]
    cand = np.flatnonzero(run_side != 0)
    return _Trades(row=run_row[cand], side=run_side[cand], entry_if_flat=run_col[cand],
                   natural_exit=run_end[cand])


def _signal_bars(signal: np.ndarray, rows: np.ndarray, fill_bar: np.ndarray) -> np.ndarray:
    """The signal bar where the side filled at ``fill_bar`` was first wanted (its run start)."""
    n_sym, n_bar = signal.shape
    wish = wanted_sides(signal, signal.shape).ravel()
    change = np.empty(wish.size, dtype=bool)
    change[0] = True
    np.not_equal(wish[1:], wish[:-1], out=change[1:])
    change[::n_bar] = True
    starts = np.flatnonzero(change)
    pos = np.searchsorted(starts, rows * n_bar + fill_bar - 1, side="right") - 1
    return starts[pos] - rows * n_bar


def _at(values: np.ndarray | None, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if values is None:
        return np.full(len(rows), np.nan)
    if values.ndim == 0:  # one value for every bar
        return np.full(len(rows), float(values))
    return values[rows, cols]


def simulate_long_short_arrays(market: MarketArrays, risk: RiskArrays, capital: np.ndarray,
                               fee: float, slippage: float,
                               fee_model: FeeModel) -> LongShortOutput:
    """Run the long/short simulation; ``capital`` is the initial margin per symbol sleeve."""
    n_sym, n_bar = market.open.shape
    held = held_sides(market.signal, market.open_valid, (n_sym, n_bar))
    cand = _candidates(held)
    row, side = cand.row, cand.side
    per_bar = [v for v in (risk.leverage, risk.stop_loss, risk.take_profit)
               if v is not None and v.ndim]
    sig_bar = (_signal_bars(market.signal, row, cand.entry_if_flat)
               if per_bar and market.signal is not None else np.zeros(len(row), dtype=np.int64))
    lev = np.nan_to_num(_at(risk.leverage, row, sig_bar), nan=1.0)
    sl = _at(risk.stop_loss, row, sig_bar)
    tp = _at(risk.take_profit, row, sig_bar)
    use_exits = not (np.isnan(sl).all() and np.isnan(tp).all())
    opens = market.open.ravel()

    # A flip exits and enters at the same open (Freqtrade re-runs the candle for the new
    # side once a trade closed), so every trade starts where its run of the side starts.
    exit_x = cand.natural_exit
    entry = cand.entry_if_flat
    first_stop = np.full(len(row), -1, dtype=np.int64)
    first_target = np.full(len(row), -1, dtype=np.int64)
    if use_exits and len(row):
        e_price = opens[row * n_bar + entry] * (1.0 + side * slippage)
        stop_p = stop_price(e_price, side, sl, _at_row(risk.price_decimals, row))
        target_p = e_price * (1.0 + side * tp)
        first_stop, first_target = scan_exits(row * n_bar + entry, row * n_bar + exit_x, side,
                                              stop_p, target_p, risk.high, risk.low, n_bar)

    keep = np.flatnonzero(entry < exit_x)
    row, side, lev = row[keep], side[keep], lev[keep]
    entry, exit_x = entry[keep], exit_x[keep]
    fs, ft = first_stop[keep], first_target[keep]
    stop_first = (fs >= 0) & ((ft < 0) | (fs <= ft))
    target_first = (ft >= 0) & ~stop_first
    reason = np.where(stop_first, STOP_LOSS, np.where(target_first, TAKE_PROFIT, EXIT_SIGNAL))
    hit_bar = np.where(stop_first, fs, ft) - row * n_bar  # valid where reason is stop/target
    closed = (reason != EXIT_SIGNAL) | (exit_x < n_bar)
    reason = np.where(closed, reason, STILL_OPEN)

    entry_price = opens[row * n_bar + entry] * (1.0 + side * slippage)
    exit_price = np.empty(len(row))
    sig = reason == EXIT_SIGNAL
    exit_price[sig] = opens[(row * n_bar + exit_x)[sig]] * (1.0 - side[sig] * slippage)
    still = reason == STILL_OPEN
    exit_price[still] = market.close_filled[row[still], n_bar - 1]
    for code, frac in ((STOP_LOSS, -sl[keep]), (TAKE_PROFIT, tp[keep])):
        m = reason == code
        if not m.any():
            continue
        k = (row * n_bar + hit_bar)[m]
        s = side[m]
        decimals = _at_row(risk.price_decimals, row[m])
        o, h, lw = opens[k], risk.high.ravel()[k], risk.low.ravel()[k]
        if code == STOP_LOSS:  # the whole candle beyond the stop: the open
            level = stop_price(entry_price[m], s, -frac[m], decimals)
            gapped = np.where(s > 0, level > h, level < lw)
        else:  # opened beyond the target after the entry candle: the open
            level = entry_price[m] * (1.0 + s * frac[m])
            gapped = (hit_bar[m] > entry[m]) & np.where(s > 0, o > level, o < level)
            level = roi_rate(entry_price[m], s, frac[m], lev[m], fee)
            level = to_tick(np.minimum(np.maximum(level, lw), h), decimals, 0)
        exit_price[m] = np.where(gapped, o, level) * (1.0 - s * slippage)
    stopped = (reason == STOP_LOSS) | (reason == TAKE_PROFIT)
    mark_end = np.where(stopped, hit_bar, np.where(still, n_bar, exit_x))  # close flat from here
    held_end = np.where(stopped, hit_bar + 1, mark_end)

    # Cash: a sleeve grows by 1 + the trade's profit ratio; units per cash at leverage 1.
    if fee_model is FeeModel.VECTORBT:
        upc = 1.0 / (entry_price * (1.0 + side * fee))
    else:
        upc = (1.0 - fee) / entry_price  # spot only (checked by the caller)
    proceeds = np.where(still, exit_price, exit_price * (1.0 - side * fee))
    growth = side * lev * upc * proceeds + (1.0 - side * lev)
    funding = np.zeros(len(row))
    if risk.funding is not None:
        paid = np.nan_to_num(risk.funding) * market.open
        paid = np.nan_to_num(paid)
        csum = np.zeros((n_sym, n_bar + 1))
        np.cumsum(paid, axis=1, out=csum[:, 1:])
        per_unit = csum[row, held_end] - csum[row, entry]
        funding_per_cash = side * lev * upc * per_unit
        growth = growth - funding_per_cash
    np.maximum(growth, 0.0, out=growth)  # a sleeve cannot lose more than its margin
    inclusive = pd.Series(growth).groupby(row, sort=False).cumprod().to_numpy()
    cash_before = np.ones(len(row))
    if len(row):
        cash_before[1:] = inclusive[:-1]
        first = np.ones(len(row), dtype=bool)
        first[1:] = row[1:] != row[:-1]
        cash_before[first] = 1.0
    cash_before *= capital[row]
    cash_after = inclusive * capital[row]
    units = cash_before * lev / (entry_price * (1.0 + side * fee)) \
        if fee_model is FeeModel.VECTORBT else cash_before * upc
    if risk.funding is not None:
        funding = units * side * per_unit

    # Equity: A + B * close per segment: a trade's bars are marked (A = C (1 - side L),
    # B = side units), a flat stretch holds cash (A = cash, B = 0).
    base = row * n_bar
    ends = mark_end < n_bar  # a trade marked to the last close has no flat segment after it
    n_end = int(ends.sum())
    seg_start = np.concatenate((np.arange(n_sym) * n_bar, base + entry, (base + mark_end)[ends]))
    # ties: a row's start first, then trades in order, each entry before its own mark end
    trade_no = np.arange(len(row), dtype=np.int64)
    seg_kind = np.concatenate((np.full(n_sym, -1, np.int64), 2 * trade_no,
                               2 * trade_no[ends] + 1))
    order = np.lexsort((seg_kind, seg_start))
    seg_a = np.concatenate((capital, cash_before * (1.0 - side * lev), cash_after[ends]))[order]
    seg_b = np.concatenate((np.zeros(n_sym), side * units, np.zeros(n_end)))[order]
    equity = segment_lines(seg_start[order], seg_a, seg_b, market.close_filled,
                           nan_close=market.open_valid is not None)
    if stopped.any():  # flat from the stop's bar to the end of the wanted side's run
        seg_side = np.concatenate((np.zeros(n_sym, np.int8), side, np.zeros(n_end, np.int8)))
        position = np.repeat(seg_side[order], np.diff(seg_start[order], append=n_sym * n_bar))
        position = position.reshape(n_sym, n_bar)
        position[row[stopped], hit_bar[stopped]] = side[stopped]
    else:  # every trade is marked over its whole run: the sides held are the positions
        position = held

    is_closed = ~still
    exit_value = side * units * proceeds + cash_before * (1.0 - side * lev)  # = cash_after
    if risk.funding is not None:
        exit_value -= funding
    np.maximum(exit_value, 0.0, out=exit_value)
    entry_fee = units * entry_price * fee if fee_model is FeeModel.VECTORBT \
        else cash_before * fee
    exit_fee = np.where(is_closed, units * exit_price * fee, 0.0)
    notional_in = units * entry_price
    notional_out = units * exit_price
    long_ = side > 0
    buys = notional_in[long_].sum() + notional_out[~long_ & is_closed].sum()
    sells = notional_out[long_ & is_closed].sum() + notional_in[~long_].sum()
    return LongShortOutput(
        position=position,
        equity=equity,
        trade_symbol=row,
        trade_entry_bar=entry,
        trade_exit_bar=np.where(still, -1, np.where(stopped, hit_bar, exit_x)),
        trade_entry_price=entry_price,
        trade_exit_price=exit_price,
        trade_units=units,
        trade_entry_value=cash_before,
        trade_exit_value=exit_value,
        trade_fees=entry_fee + exit_fee,
        buy_notional=float(buys.sum()),
        sell_notional=float(sells.sum()),
        trade_side=side,
        trade_leverage=lev,
        trade_exit_reason=reason.astype(np.int8),
        trade_funding=funding,
        trade_bars_held=held_end - entry,
    )
