"""Map a typed signal frame onto a candle frame: the one decision rule of the whole project.

``ExternalSignalStrategy`` (backtesting, dry-run, live) and the research
backtest (:mod:`research.pipeline.positions`) both call :func:`match_signals`
with the same :class:`DecisionSettings`, so what research reports is what
Freqtrade trades. The user-facing description is ``docs/DECISION_RULE.md``.

Pure and vectorised (the as-of join is one ``np.searchsorted``, equivalent to a
forward ``merge_asof`` from signals to rows, but without pandas' per-call cost,
since this runs for every pair on every live bot loop; the only Python loop is
over the sparse *signal events* when min-hold/cooldown debounce is on, never
over bars). It is the single definition of the time semantics, used alike by
``freqtrade backtesting``, dry-run and live. Not I/O: reading MongoDB is
:mod:`signal_export.consumer.source`.

Semantics (bars labelled by open time ``t``; ``tf`` = timeframe; SPEC §5a):

* **Its bar.** A signal belongs to the first bar that opens at or after its
  ``ts`` (``bar(ts)``: ``ts`` itself on the grid, the next bar open off it), so
  exporting with ``align="ceil"`` (which stores ``bar(ts)``) changes nothing.
* **Match.** A signal with ``ts`` applies to the *first* candle row ``t`` with
  ``t - tolerance_bars*tf < ts <= t`` (an as-of join looking backward from the
  row). It never applies to a row earlier than its ``ts``, so a backtest can
  not see the future. On-grid ``ts = t`` hits row ``t``; an off-grid ``10:40``
  on 1h hits row ``11:00``; a signal newer than the last row is ``pending``;
  one with no row inside the window (before the frame, or a data gap wider
  than the tolerance) is ``unmatched``.
* **Decision time** of row ``t`` is its close ``t + tf`` (that is when
  Freqtrade evaluates it; the fill is at the next open, also ``t + tf``). Live,
  the last row is re-evaluated every loop until the next candle, so its
  decision time is ``now`` (pass ``now``).
* **Stale**: ``decision_time - tf - bar(ts) > max_delay`` (backtest: ``t -
  bar(ts) > max_delay``; live: how long after the close of the signal's bar
  the bot would act, bounded so a late or replayed signal is not traded long
  after the fact). Default 3 x tf.
* **Expired**: ``valid_until <= decision_time`` (the signal must still be
  valid when the order would be placed at the next open).
* **Mapping** (precedence action > weight > score, :func:`decide_sided`):
  ``action`` directly (long or short); ``weight > 0`` -> enter long, ``weight <
  0`` -> enter short (``|weight|`` sizes the stake), ``weight == 0`` -> exit
  the side held; ``score >= enter_score`` -> enter long, ``score <=
  exit_score`` -> exit long, in between -> ``no_action``.
* **Several strategy_ids** on one row: the first id in ``strategy_priority``
  that has a usable signal decides the row (ids not listed rank after, by
  name); within one id the latest ``ts`` (then highest ``version``) wins. The
  others are ``superseded``. So the priority list is an override order, e.g.
  ``risk_off,model`` lets ``risk_off`` veto ``model``'s enter with an exit.
* **Confirmation** (``confirm_n``): an enter is acted on only at the
  ``confirm_n``-th consecutive *row* carrying an enter; exits need no
  confirmation (reducing risk should not wait).
* **Dedupe / debounce** over the sequence of decided rows: an action equal to
  the last *emitted* one is ``deduped``; an exit less than ``min_hold_bars``
  after the last emitted enter, or an enter less than ``cooldown_bars`` after
  the last emitted exit, is ``debounced`` (dropped, not delayed). Freqtrade
  itself ignores an exit without an open trade and an enter with one.
* **Sides** (futures): the same over the side held (:func:`_sided_events`); an
  enter of the other side is a flip, its exit and entry on one row. Long-only
  input takes the vectorised long-only path and gives exactly its columns.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from signal_export.contract import (
    RISK_FIELDS,
    Action,
    ContractError,
    ceil_epoch_ms_to_bar,
    timeframe_delta,
)

TAG_PREFIX = "ext"


class DecisionSettings(BaseModel):
    """The knobs of the decision rule, one definition for the bot and for research.

    ``ExternalSignalStrategy`` reads them from the Freqtrade config's
    ``ext_signals`` block (:class:`signal_export.consumer.config.ExtSignalsConfig`
    extends this model); a research pipeline config takes the same keys in its
    own ``ext_signals`` block. Names, defaults and validation are therefore the
    same on both sides; ``docs/DECISION_RULE.md`` explains each one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance_bars: int = Field(1, ge=1, le=1000)
    max_delay_bars: float = Field(3.0, gt=0)
    enter_score: float = 0.6
    exit_score: float = 0.4
    min_hold_bars: int = Field(0, ge=0)
    cooldown_bars: int = Field(0, ge=0)
    confirm_n: int = Field(1, ge=1)
    #: Futures: the highest leverage a signal may ask for (Freqtrade caps it further by the
    #: pair's tiers); 1 = no leverage whatever the signal says.
    max_leverage: float = Field(1.0, ge=1.0, le=125.0)

    @model_validator(mode="after")
    def _thresholds(self) -> DecisionSettings:
        if not self.exit_score < self.enter_score:
            raise ValueError(f"exit_score ({self.exit_score}) must be below enter_score "
                             f"({self.enter_score})")
        return self

    @property
    def lookback_bars(self) -> int:
        """Bars of signal history read live: enough for staleness, tolerance and debounce state."""
        return int(self.max_delay_bars + self.tolerance_bars + 2 * (
            self.min_hold_bars + self.cooldown_bars + self.confirm_n)) + 3

    def cap_leverage(self, wanted: np.ndarray | float, exchange_max: float = np.inf
                     ) -> np.ndarray:
        """The leverage a trade takes: the signal's (NaN: none = 1), capped by
        ``max_leverage`` and the exchange's ``exchange_max`` for the pair, never below 1."""
        wanted = np.nan_to_num(np.asarray(wanted, dtype=float), nan=1.0, posinf=1.0, neginf=1.0)
        return np.maximum(1.0, np.minimum(np.minimum(wanted, self.max_leverage), exchange_max))

    def match_rules(self, timeframe: str, priority: tuple[str, ...] = ()) -> MatchRules:
        """The matcher's view of these settings (``priority``: strategy ids, first wins)."""
        return MatchRules(
            timeframe=timeframe, tolerance_bars=self.tolerance_bars,
            max_delay=self.max_delay_bars * timeframe_delta(timeframe),
            enter_score=self.enter_score, exit_score=self.exit_score,
            min_hold_bars=self.min_hold_bars, cooldown_bars=self.cooldown_bars,
            confirm_n=self.confirm_n, strategy_priority=tuple(priority),
        )


@dataclass(frozen=True)
class MatchRules:
    """The knobs of :func:`match_signals`; built by :meth:`DecisionSettings.match_rules`."""

    timeframe: str
    tolerance_bars: int = 1
    max_delay: timedelta | None = None
    enter_score: float = 0.6
    exit_score: float = 0.4
    min_hold_bars: int = 0
    cooldown_bars: int = 0
    confirm_n: int = 1
    strategy_priority: tuple[str, ...] = field(default_factory=tuple)

    @property
    def bar(self) -> timedelta:
        return timeframe_delta(self.timeframe)

    @property
    def effective_max_delay(self) -> timedelta:
        return self.max_delay if self.max_delay is not None else 3 * self.bar


@dataclass
class MatchResult:
    """Signal columns aligned to the candle frame's index, and the outcome counts."""

    frame: pd.DataFrame
    counts: Counter
    latest_ts: pd.Timestamp | None = None


def make_tag(strategy_id: str, version: int, weight: float | None = None) -> str:
    """``ext:<strategy_id>:v<version>[:w<weight>]`` (version 0 = unversioned)."""
    tag = f"{TAG_PREFIX}:{strategy_id}:v{int(version)}"
    if weight is not None and not math.isnan(weight):
        tag += f":w{weight:.6g}"
    return tag


def parse_tag(tag: str | None) -> tuple[str, int, float | None] | None:
    """Inverse of :func:`make_tag`; ``None`` for tags not written by this module."""
    if not tag or not tag.startswith(TAG_PREFIX + ":"):
        return None
    parts = tag[len(TAG_PREFIX) + 1:].split(":")
    weight: float | None = None
    try:
        if len(parts) >= 3 and parts[-1].startswith("w") and parts[-2].startswith("v"):
            weight = float(parts[-1][1:])
            parts = parts[:-1]
        if len(parts) < 2 or not parts[-1].startswith("v"):
            return None
        return ":".join(parts[:-1]), int(parts[-1][1:]), weight
    except ValueError:
        return None


def empty_signal_columns(n: int, index: pd.Index) -> pd.DataFrame:
    """The signal columns with no signal anywhere (also the outage state)."""
    return pd.DataFrame({
        "enter_long": np.zeros(n, dtype="int64"),
        "exit_long": np.zeros(n, dtype="int64"),
        "enter_tag": np.full(n, None, dtype=object),
        "exit_tag": np.full(n, None, dtype=object),
        "ext_weight": np.full(n, np.nan),
    }, index=index)


def signal_values(candles: pd.DataFrame, signals: pd.DataFrame | None,
                  rules: MatchRules) -> pd.DataFrame:
    """The stored ``score`` and ``weight`` per candle row, for charts (``ext_score``,
    ``ext_signal_weight``): the values of the signal that applies to the row by the
    as-of rule of :func:`match_signals` (within the tolerance; of several, the same
    winner: strategy priority, then latest ``ts``, then highest ``version``), whatever
    it decides. NaN on rows without a signal. Not a decision: thresholds, staleness,
    validity and debounce are :func:`match_signals`' business.
    """
    n = len(candles)
    out = pd.DataFrame({"ext_score": np.full(n, np.nan), "ext_signal_weight": np.full(n, np.nan)},
                       index=candles.index)
    if n == 0 or signals is None or signals.empty:
        return out
    row_ms = _epoch_ms(candles["date"])
    sig_ms = _epoch_ms(signals["ts"])
    pos = np.searchsorted(row_ms, sig_ms, side="left")
    pos_c = np.minimum(pos, n - 1)
    bar_ms = int(rules.bar.total_seconds() * 1000)
    use = np.flatnonzero((pos < n) & (row_ms[pos_c] - sig_ms < max(rules.tolerance_bars, 1)
                                      * bar_ms))
    if use.size == 0:
        return out
    rank = _priority_ranks(signals["strategy_id"].to_numpy(dtype=object)[use],
                           rules.strategy_priority)
    versions = signals["version"].to_numpy(dtype=np.int64)[use]
    order = np.lexsort((-versions, -sig_ms[use], rank, pos_c[use]))
    rows_sorted = pos_c[use][order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = rows_sorted[1:] != rows_sorted[:-1]
    win = use[order[first]]
    out.iloc[pos_c[win], 0] = signals["score"].to_numpy(dtype=float)[win]
    out.iloc[pos_c[win], 1] = signals["weight"].to_numpy(dtype=float)[win]
    return out


#: Decision codes of :func:`decide_sided` (0 = no action).
ENTER_LONG, EXIT_LONG, ENTER_SHORT, EXIT_SHORT, FLAT = 1, -1, 2, -2, -3
#: ``ExternalSignalStrategy.stoploss``: Freqtrade's stop for a trade whose signal has none
#: (a fraction of the margin: the price stop lies ``|stoploss| / leverage`` from the entry).
DEFAULT_STOPLOSS = -0.99

# RISK_FIELDS (the contract's): a signal frame may carry them; the matcher copies the entry
# signal's values onto its row as ``ext_<field>``.


def decide_sided(signals: pd.DataFrame, rules: MatchRules) -> np.ndarray:
    """The decision code per signal (precedence action > weight > score): ``ENTER_LONG``,
    ``EXIT_LONG``, ``ENTER_SHORT``, ``EXIT_SHORT``, ``FLAT`` (weight 0: no position either
    side) or 0 (no action). Scores are long-only (``enter_score``/``exit_score``)."""
    action = signals["action"].to_numpy(dtype=object)
    weight = signals["weight"].to_numpy(dtype=float)
    score = signals["score"].to_numpy(dtype=float)
    by_score = np.where(score >= rules.enter_score, ENTER_LONG,
                        np.where(score <= rules.exit_score, EXIT_LONG, 0))
    by_weight = np.where(weight > 0, ENTER_LONG, np.where(weight < 0, ENTER_SHORT, FLAT))
    by_action = np.select(
        [action == Action.ENTER_LONG.value, action == Action.ENTER_SHORT.value,
         action == Action.EXIT_SHORT.value], [ENTER_LONG, ENTER_SHORT, EXIT_SHORT], EXIT_LONG)
    return np.where(pd.notna(action), by_action,
                    np.where(~np.isnan(weight), by_weight,
                             np.where(np.isnan(score), 0, by_score))).astype(np.int8)


def _epoch_ms(values: pd.Series) -> np.ndarray:
    """tz-aware datetimes (any unit) -> int64 ms since the epoch; NaT -> int64 min."""
    return values.to_numpy(dtype="datetime64[ms]").view(np.int64)  # tz-aware: UTC instants


def stable_until(candles: pd.DataFrame, signals: pd.DataFrame | None, rules: MatchRules,
                 now: datetime) -> int:
    """The first ``now`` (epoch ms) at which :func:`match_signals` with these inputs could
    decide differently than at ``now``; later values of ``now`` before it decide alike.

    Only the last row's decision time follows ``now`` (``max(close, now)``), and only its
    signals can turn ``stale`` (after ``bar(ts) + tf + max_delay``) or ``expired`` (at
    ``valid_until``), both monotone in ``now``. Lets the live loop reuse a pair's decision.
    """
    n = len(candles)
    if n == 0 or signals is None or signals.empty:
        return _NO_CHANGE
    row_ms = _epoch_ms(candles["date"][-2:] if n >= 2 else candles["date"])
    last, prev = int(row_ms[-1]), (int(row_ms[0]) if n >= 2 else _NAT)
    bar_ms = int(rules.bar.total_seconds() * 1000)
    sig_ms = _epoch_ms(signals["ts"])
    tol_ms = max(rules.tolerance_bars, 1) * bar_ms
    on_last = (sig_ms > prev) & (sig_ms <= last) & (last - sig_ms < tol_ms)
    if not on_last.any():
        return _NO_CHANGE
    now_ms = int(pd.Timestamp(now).tz_convert("UTC").value // 1_000_000)
    max_delay_ms = int(rules.effective_max_delay.total_seconds() * 1000)
    stale_after = ceil_epoch_ms_to_bar(sig_ms[on_last], rules.timeframe) + bar_ms + max_delay_ms
    vu = _epoch_ms(pd.to_datetime(signals["valid_until"], utc=True))[on_last]
    flips = np.concatenate([stale_after[stale_after >= now_ms] + 1,
                            vu[(vu != _NAT) & (vu > now_ms)]])
    return int(flips.min()) if flips.size else _NO_CHANGE


_NAT = np.iinfo(np.int64).min
_NO_CHANGE = np.iinfo(np.int64).max



def _priority_ranks(strategy_ids: np.ndarray, priority: tuple[str, ...]) -> np.ndarray:
    """Listed ids by their position; unlisted ones after them, by name."""
    prio = {sid: i for i, sid in enumerate(priority)}
    unlisted = sorted({s for s in strategy_ids.tolist() if s not in prio})
    prio.update({sid: len(priority) + i for i, sid in enumerate(unlisted)})
    return np.array([prio[s] for s in strategy_ids.tolist()], dtype=np.int64)


def match_signals(
    candles: pd.DataFrame,
    signals: pd.DataFrame,
    rules: MatchRules,
    *,
    now: datetime | None = None,
) -> MatchResult:
    """Signal columns (enter_long, exit_long, enter_tag, exit_tag, ext_weight) for ``candles``.

    ``candles``: Freqtrade frame with a tz-aware ``date`` column, sorted ascending.
    ``signals``: a normalised frame for this pair (see ``normalise_signals``).
    ``now``: live only - the decision time of the last row (see module doc).

    Implementation: the backward as-of join is ``np.searchsorted`` of each signal's ``ts``
    into the row dates (first row ``t >= ts``) bounded by the tolerance; everything after
    is array arithmetic (this runs for every pair on every live bot loop).
    """
    n = len(candles)
    out = empty_signal_columns(n, candles.index)
    counts: Counter = Counter()
    if n == 0 or signals is None or signals.empty:
        return MatchResult(out, counts)
    dates = candles["date"]
    if getattr(dates.dt, "tz", None) is None:
        raise ContractError("candles 'date' must be tz-aware UTC")
    bar_ms = int(rules.bar.total_seconds() * 1000)
    row_ms = _epoch_ms(dates)
    sig_ms = _epoch_ms(signals["ts"])
    vu_ms = _epoch_ms(pd.to_datetime(signals["valid_until"], utc=True))

    pos = np.searchsorted(row_ms, sig_ms, side="left")  # first row with t >= ts
    pending = pos >= n
    pos_c = np.minimum(pos, n - 1)
    tol_ms = max(rules.tolerance_bars, 1) * bar_ms
    matched = ~pending & (row_ms[pos_c] - sig_ms < tol_ms)
    counts["pending"] += int(pending.sum())
    counts["unmatched"] += int((~pending & ~matched).sum())
    if not matched.any():
        return MatchResult(out, counts)

    decision = row_ms[pos_c] + bar_ms
    if now is not None:
        now_ms = int(pd.Timestamp(now).tz_convert("UTC").value // 1_000_000)
        decision = np.where(pos_c == n - 1, np.maximum(decision, now_ms), decision)
    max_delay_ms = int(rules.effective_max_delay.total_seconds() * 1000)
    own_bar = ceil_epoch_ms_to_bar(sig_ms, rules.timeframe)
    stale = matched & (decision - bar_ms - own_bar > max_delay_ms)
    expired = matched & ~stale & (vu_ms != _NAT) & (vu_ms <= decision)
    decided = decide_sided(signals, rules)
    live = matched & ~stale & ~expired
    counts["stale"] += int(stale.sum())
    counts["expired"] += int(expired.sum())
    counts["no_action"] += int((live & (decided == 0)).sum())

    use = np.flatnonzero(live & (decided != 0))
    if use.size == 0:
        return MatchResult(out, counts)
    sids = signals["strategy_id"].to_numpy(dtype=object)[use]
    versions = signals["version"].to_numpy(dtype=np.int64)[use]
    weights_u = signals["weight"].to_numpy(dtype=float)[use]
    rank = _priority_ranks(sids, rules.strategy_priority)
    # per row: best priority, then latest ts, then highest version (lexsort: last key primary)
    order = np.lexsort((-versions, -sig_ms[use], rank, pos_c[use]))
    rows_sorted = pos_c[use][order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = rows_sorted[1:] != rows_sorted[:-1]
    win = order[first]
    counts["superseded"] += int(order.size - win.size)
    counts["matched"] += int(win.size)

    win_rows = pos_c[use][win]
    act = np.zeros(n, dtype=np.int8)
    act[win_rows] = decided[use][win]
    tags = np.full(n, None, dtype=object)
    weights = np.full(n, np.nan)
    weights[win_rows] = weights_u[win]
    tags[win_rows] = [make_tag(s, v, w) for s, v, w in zip(
        sids[win].tolist(), versions[win].tolist(), weights_u[win].tolist(), strict=True)]

    act = _confirm(act, rules.confirm_n, counts)
    sided = bool(np.isin(act, (ENTER_SHORT, EXIT_SHORT)).any())
    if sided:
        enter, exit_, enter_s, exit_s = _sided_events(act, row_ms, rules, counts)
    else:  # long-only: the original rule (weight 0 = exit_long), vectorised without debounce
        act = _dedupe_debounce(np.where(act == FLAT, EXIT_LONG, act).astype(np.int8), row_ms,
                               rules, counts)
        enter, exit_ = act == ENTER_LONG, act == EXIT_LONG
    any_enter = enter | enter_s if sided else enter
    any_exit = exit_ | exit_s if sided else exit_
    columns = {
        "enter_long": enter.astype("int64"),
        "exit_long": exit_.astype("int64"),
        "enter_tag": np.where(any_enter, tags, None),
        "exit_tag": np.where(any_exit, tags, None),
        "ext_weight": np.where(any_enter, weights, np.nan),
    }
    if sided:
        columns["enter_short"] = enter_s.astype("int64")
        columns["exit_short"] = exit_s.astype("int64")
    for name in RISK_FIELDS:  # the entry signal's risk values, on its entry row
        if name in signals.columns:
            values = np.full(n, np.nan)
            values[win_rows] = signals[name].to_numpy(dtype=float)[use][win]
            columns["ext_" + name] = np.where(any_enter, values, np.nan)
    frame = pd.DataFrame(columns, index=candles.index)
    latest = pd.Timestamp(int(sig_ms[use].max()), unit="ms", tz="UTC")
    return MatchResult(frame, counts, latest_ts=latest)


def _sided_events(act: np.ndarray, row_ms: np.ndarray, rules: MatchRules, counts: Counter
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Long and short: enter_long, exit_long, enter_short, exit_short per row.

    The same dedupe/debounce as :func:`_dedupe_debounce`, over the side the bot was last
    told to hold (none yet, flat, long, short): an enter of the side already held and an
    exit of a side not held are ``deduped``; an enter of the other side is a **flip** (the
    held side's exit and the new entry on one row, as Freqtrade trades it: exit, then the
    entry at the same open), debounced as a whole inside ``min_hold_bars`` of the last
    enter; an enter inside ``cooldown_bars`` of the last exit is debounced. ``FLAT``
    (weight 0) exits whichever side is held (``exit_long`` before any position, as
    long-only). Loops over the sparse signal events, not bars.
    """
    n = act.size
    flags = {key: np.zeros(n, dtype=bool) for key in ("el", "xl", "es", "xs")}
    bars = row_ms / (rules.bar.total_seconds() * 1000.0)
    held: int | None = None  # None: nothing emitted yet; 0 flat; 1 long; -1 short
    last_enter, last_exit = -math.inf, -math.inf
    for i in np.flatnonzero(act).tolist():
        a, b = int(act[i]), bars[i]
        if a in (ENTER_LONG, ENTER_SHORT):
            side = 1 if a == ENTER_LONG else -1
            if held == side:
                counts["deduped"] += 1
                continue
            flip = held == -side
            if (flip and b - last_enter < rules.min_hold_bars) or b - last_exit < \
                    rules.cooldown_bars:
                counts["debounced"] += 1
                continue
            if flip:
                flags["xl" if held == 1 else "xs"][i] = True
            flags["el" if side == 1 else "es"][i] = True
            held, last_enter = side, b
            continue
        side = {EXIT_LONG: 1, EXIT_SHORT: -1}.get(a, held if held in (1, -1) else 1)
        if held not in (None, side):
            counts["deduped"] += 1
            continue
        if b - last_enter < rules.min_hold_bars:
            counts["debounced"] += 1
            continue
        flags["xl" if side == 1 else "xs"][i] = True
        held, last_exit = 0, b
    return flags["el"], flags["xl"], flags["es"], flags["xs"]


def _confirm(act: np.ndarray, confirm_n: int, counts: Counter) -> np.ndarray:
    """Keep an enter only on the confirm_n-th consecutive row entering the same side
    (vectorised run lengths)."""
    if confirm_n <= 1:
        return act
    is_enter = (act == ENTER_LONG) | (act == ENTER_SHORT)
    idx = np.arange(act.size)
    starts = is_enter.copy()
    starts[1:] &= act[1:] != act[:-1]  # a run: consecutive rows entering the same side
    run_pos = idx - np.maximum.accumulate(np.where(starts, idx, 0)) + 1
    keep = is_enter & (run_pos == confirm_n)
    counts["debounced"] += int((is_enter & (run_pos < confirm_n)).sum())
    counts["deduped"] += int((is_enter & (run_pos > confirm_n)).sum())
    out = act.copy()
    out[is_enter & ~keep] = 0
    return out


def _dedupe_debounce(act: np.ndarray, row_ms: np.ndarray, rules: MatchRules,
                     counts: Counter) -> np.ndarray:
    """Drop repeats of the last emitted action and exits/enters inside min-hold/cooldown."""
    ev = np.flatnonzero(act)
    if ev.size == 0:
        return act
    out = np.zeros_like(act)
    vals = act[ev]
    if rules.min_hold_bars <= 0 and rules.cooldown_bars <= 0:
        # no debounce: "last emitted" == "last event", so a vectorised diff suffices
        keep = np.ones(ev.size, dtype=bool)
        keep[1:] = vals[1:] != vals[:-1]
        counts["deduped"] += int((~keep).sum())
        out[ev[keep]] = vals[keep]
        return out
    bars = row_ms[ev] / (rules.bar.total_seconds() * 1000.0)
    last, last_enter, last_exit = 0, -math.inf, -math.inf
    for i in range(ev.size):  # loop over sparse signal events, not bars
        a, b = int(vals[i]), bars[i]
        if a == last:
            counts["deduped"] += 1
            continue
        if a == -1 and b - last_enter < rules.min_hold_bars:
            counts["debounced"] += 1
            continue
        if a == 1 and b - last_exit < rules.cooldown_bars:
            counts["debounced"] += 1
            continue
        out[ev[i]] = a
        last = a
        if a == 1:
            last_enter = b
        else:
            last_exit = b
    return out
