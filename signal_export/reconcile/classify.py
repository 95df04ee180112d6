"""Bot vs as_known backtest: line the trades up and say why each difference happened.

Pure (frames in, frames out). Every backtest trade is the enter the bot should
have made at the backtest's open (``expected_at``); the bot's trade of the same
strategy id and pair opened within ``late_bars`` bars of it is the same trade
(:func:`_pair_trades`: a forward as-of join with that tolerance; the monitor's
signal matching in :mod:`signal_export.monitoring.reconcile` looks forward
without a bound and would hand a missed trade the bot's next one). Each
resulting row gets one ``cause``:

* ``match``: same trade, same fills; ``slippage``: same trade, different fill
  prices (bps per side, P&L difference in the stake currency);
* backtest traded, bot did not (``backtest_only``): ``signal_late`` (its first
  version became visible after ``bar(ts) + timeframe + tolerance``),
  ``store_outage`` (the bot could not read the store then),
  ``refused_lock`` / ``refused_max_open_trades`` / ``refused_stake`` (Freqtrade
  refused the enter), else ``other``;
* bot traded, backtest did not (``bot_only``): ``manual_trade`` (enter tag not
  ``ext:...``: force-entries and hand-made trades), ``signal_late`` (the bot
  acted on a signal that arrived after the close: live still trades it within
  the candle, the as_known backtest cannot), else ``other``;
* both traded but left at different times: ``signal_late`` when the signal was
  late, else ``other``.

Every row's ``pnl_difference`` is bot profit minus backtest profit, so the
per-cause sums add up to the total difference. Trade frames are
:func:`signal_export.monitoring.execution.trades_frame` plus ``profit_abs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from signal_export.contract import ensure_utc, timeframe_delta
from signal_export.monitoring.execution import slippage_bps
from signal_export.point_in_time import KNOWN_AT, decision_deadline, first_known

CAUSES: tuple[str, ...] = (
    "match", "slippage", "signal_late", "store_outage", "refused_max_open_trades",
    "refused_stake", "refused_lock", "manual_trade", "other", "pending")
#: Causes that are not a difference between the bot and the backtest.
SAME = frozenset({"match", "pending"})
ROW_COLUMNS = (
    "cause", "detail", "outcome", "strategy_id", "pair", "expected_at", "bot_trade_id",
    "backtest_trade_id", "bot_open_time", "backtest_open_time", "bot_close_time",
    "backtest_close_time", "bot_open_rate", "backtest_open_rate", "bot_close_rate",
    "backtest_close_rate", "entry_slippage_bps", "exit_slippage_bps", "bot_profit",
    "backtest_profit", "pnl_difference", "signal_ts", "signal_version", "signal_known_at",
    "late_by_s")
SIGNAL_COLUMNS = ("strategy_id", "pair", "ts", "action", "version", "known_at", "deadline",
                  "late", "late_by_s", "in_outage")
_NS = "datetime64[ns, UTC]"
#: Fill prices closer than this (relative) count as the same fill.
PRICE_EPS = 1e-9


@dataclass(frozen=True)
class BotContext:
    """What the bot's side says about the period, besides its trades.

    ``outages``: start/end (end NaT: still out) of the bot's signal-store outages;
    ``locks``: pair ('*' = all), start, end, reason; ``refusals``: time, pair (None: any),
    kind ('stake' or 'lock'), message (Freqtrade's log lines); ``max_open_trades``:
    from the bot's config (None: unknown, never used as a cause).
    """

    max_open_trades: int | None = None
    outages: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"start": pd.Series(dtype=_NS), "end": pd.Series(dtype=_NS)}))
    locks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"pair": pd.Series(dtype=object), "start": pd.Series(dtype=_NS),
         "end": pd.Series(dtype=_NS), "reason": pd.Series(dtype=object)}))
    refusals: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"time": pd.Series(dtype=_NS), "pair": pd.Series(dtype=object),
         "kind": pd.Series(dtype=object), "message": pd.Series(dtype=object)}))


@dataclass(frozen=True)
class Rules:
    """The timing knobs: the candle length, how late a signal may arrive, the match window."""

    timeframe: str
    tolerance: timedelta = timedelta(0)
    late_bars: int = 1
    tolerance_bars: int = 1  # the strategy's match window (DecisionSettings.tolerance_bars)

    @property
    def bar(self) -> pd.Timedelta:
        return pd.Timedelta(timeframe_delta(self.timeframe))


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype(_NS)


def _np(values: pd.Series, nat_as_max: bool = False) -> np.ndarray:
    """UTC times as a numpy datetime64[ns] array (NaT, or the far future if ``nat_as_max``)."""
    arr = _utc(values).dt.tz_convert(None).to_numpy("datetime64[ns]")
    if nat_as_max:
        arr = np.where(np.isnat(arr), np.datetime64("2262-01-01", "ns"), arr)
    return arr


def signal_timeliness(versions: pd.DataFrame, rules: Rules,
                      outages: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per signal key: when its first version became visible, its deadline
    (``bar(ts) + timeframe + tolerance``), whether and by how much it was late, and whether
    the deadline fell in a store outage of the bot."""
    if versions is None or versions.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SIGNAL_COLUMNS})
    key = ["strategy_id", "pair", "timeframe", "ts"]
    first = first_known(versions, key)
    firsts = versions.sort_values(KNOWN_AT, kind="stable").drop_duplicates(key, keep="first")
    cols = [c for c in ("action", "version") if c in firsts]
    out = first.merge(firsts[[*key, *cols]], on=key, how="left")
    out["ts"] = _utc(out["ts"])
    out[KNOWN_AT] = _utc(out[KNOWN_AT])
    if "action" not in out:
        out["action"] = None
    out["deadline"] = decision_deadline(out["ts"], rules.timeframe, rules.tolerance).astype(_NS)
    late_by = (out[KNOWN_AT] - out["deadline"]).dt.total_seconds()
    out["late"] = late_by > 0
    out["late_by_s"] = late_by.where(out["late"])
    out["in_outage"] = _in_windows(out["deadline"], outages)
    return out.rename(columns={KNOWN_AT: "known_at"}).reindex(
        columns=list(SIGNAL_COLUMNS)).sort_values(["strategy_id", "pair", "ts"],
                                                   ignore_index=True)


def producer_lateness(signals: pd.DataFrame) -> pd.DataFrame:
    """Per strategy id (producer): signals, late signals, share late, worst lateness."""
    if signals.empty:
        return pd.DataFrame(columns=["strategy_id", "signals", "late", "late_ratio",
                                     "max_late_by_s"])
    g = signals.groupby("strategy_id", sort=True)
    out = pd.DataFrame({"signals": g.size(), "late": g["late"].sum().astype("int64"),
                        "max_late_by_s": g["late_by_s"].max()}).reset_index()
    out["late_ratio"] = out["late"] / out["signals"]
    return out[["strategy_id", "signals", "late", "late_ratio", "max_late_by_s"]]


def _in_windows(times: pd.Series, windows: pd.DataFrame | None,
                end: pd.Series | None = None) -> np.ndarray:
    """Per time (or per interval [times, end)), whether it overlaps any window."""
    if windows is None or windows.empty or times.empty:
        return np.zeros(len(times), dtype=bool)
    t0 = _np(times)[:, None]
    t1 = t0 if end is None else _np(end)[:, None]
    ws = _np(windows["start"])[None, :]
    we = _np(windows["end"], nat_as_max=True)[None, :]
    hit = (ws <= t1) & (t0 < we) if end is not None else (ws <= t0) & (t0 < we)
    return hit.any(axis=1)


def _pair_trades(bot: pd.DataFrame, backtest: pd.DataFrame, window: pd.Timedelta,
                 end: pd.Timestamp) -> pd.DataFrame:
    """Each backtest trade with the bot's trade of the same strategy id and pair that opened
    within ``window`` from the backtest's open (the first one; one bot trade pairs once),
    plus the bot's trades nothing explains. Columns: outcome, strategy_id, pair,
    expected_at, backtest_trade_id, bot_trade_id.

    A forward as-of join with a tolerance: a bot trade outside the window is never taken
    from a later backtest trade it belongs to (a missed trade followed by a matched one).
    """
    key = ["strategy_id", "pair"]
    left = pd.DataFrame({
        "strategy_id": backtest["strategy_id"].fillna("?").astype(object).to_numpy(),
        "pair": backtest["pair"].astype(object).to_numpy(),
        "expected_at": _utc(backtest["open_time"]).reset_index(drop=True),
        "backtest_trade_id": backtest["trade_id"].to_numpy(float)}).astype(
        {"strategy_id": object, "pair": object}).sort_values("expected_at")
    tagged = bot[bot["strategy_id"].notna()]
    right = pd.DataFrame({
        "strategy_id": tagged["strategy_id"].astype(object).to_numpy(),
        "pair": tagged["pair"].astype(object).to_numpy(),
        "happened_at": _utc(tagged["open_time"]).reset_index(drop=True),
        "bot_trade_id": tagged["trade_id"].to_numpy(float)}).astype(
        {"strategy_id": object, "pair": object}).sort_values("happened_at")
    if left.empty:
        pairs = left.assign(bot_trade_id=pd.Series(dtype=float))
    else:
        pairs = pd.merge_asof(left, right, left_on="expected_at", right_on="happened_at",
                              by=key, direction="forward",
                              tolerance=window - pd.Timedelta(1, "ns"))
        dup = pairs["bot_trade_id"].notna() & pairs.duplicated("bot_trade_id", keep="first")
        pairs.loc[dup, "bot_trade_id"] = np.nan
    pairs["outcome"] = np.where(
        pairs["bot_trade_id"].notna(), "both",
        np.where(pairs["expected_at"] + window > end, "pending", "backtest_only"))
    taken = set(pairs["bot_trade_id"].dropna())
    extra = bot[~bot["trade_id"].astype(float).isin(taken)]
    extra = pd.DataFrame({"outcome": "bot_only",
                          "strategy_id": extra["strategy_id"].astype(object).to_numpy(),
                          "pair": extra["pair"].astype(object).to_numpy(),
                          "expected_at": pd.Series(pd.NaT, index=range(len(extra)), dtype=_NS),
                          "backtest_trade_id": np.nan,
                          "bot_trade_id": extra["trade_id"].to_numpy(float)})
    cols = ["outcome", "strategy_id", "pair", "expected_at", "backtest_trade_id",
            "bot_trade_id"]
    frames = [f for f in (pairs.reindex(columns=cols), extra) if not f.empty]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.concat(frames, ignore_index=True)
    out["strategy_id"] = out["strategy_id"].where(
        out["strategy_id"].notna() & (out["strategy_id"] != "?"), None)
    return out


def _signal_for(rows: pd.DataFrame, at: pd.Series, signals: pd.DataFrame, rules: Rules
                ) -> pd.DataFrame:
    """For each row, the signal the strategy used on the candle that opens at ``at``:
    the newest ts in (at - tolerance_bars*tf, at] of that strategy id and pair."""
    if signals.empty or rows.empty:
        nat = pd.Series(pd.NaT, index=rows.index, dtype=_NS)
        return pd.DataFrame({"signal_ts": nat, "signal_version": np.nan,
                             "signal_known_at": nat, "late_by_s": np.nan,
                             "signal_late": False}, index=rows.index)
    left = pd.DataFrame({"_i": np.arange(len(rows)), "_at": _utc(at).to_numpy(),
                         "strategy_id": rows["strategy_id"].astype(object).to_numpy(),
                         "pair": rows["pair"].astype(object).to_numpy()}).astype(
        {"strategy_id": object, "pair": object})
    left = left[left["_at"].notna()].sort_values("_at")
    right = signals.assign(_ts=_utc(signals["ts"])).astype(
        {"strategy_id": object, "pair": object}).sort_values("_ts")
    hit = pd.merge_asof(left, right[["strategy_id", "pair", "_ts", "version", "known_at",
                                     "late", "late_by_s"]],
                        left_on="_at", right_on="_ts", by=["strategy_id", "pair"],
                        direction="backward",
                        tolerance=rules.tolerance_bars * rules.bar - pd.Timedelta(1, "ns"))
    hit = hit.set_index("_i").reindex(np.arange(len(rows)))
    return pd.DataFrame({
        "signal_ts": _utc(hit["_ts"]).to_numpy(),
        "signal_version": hit["version"].to_numpy(float),
        "signal_known_at": _utc(hit["known_at"]).to_numpy(),
        "late_by_s": hit["late_by_s"].to_numpy(float),
        "signal_late": hit["late"].astype("boolean").fillna(False).to_numpy(bool)},
        index=rows.index)


def _count_open(trades: pd.DataFrame, start: np.ndarray, end: np.ndarray,
                inclusive_start: bool = False) -> np.ndarray:
    """How many ``trades`` overlap each [start, end): opened before ``end`` and not closed
    by ``start`` (sorted searches, no rows x trades matrix)."""
    opens = np.sort(_np(trades["open_time"]))
    closes = np.sort(_np(trades["close_time"], nat_as_max=True))
    opened = np.searchsorted(opens, end, side="left")
    closed = np.searchsorted(closes, start, side="left" if inclusive_start else "right")
    return (opened - closed).astype("int64")


def _open_between(trades: pd.DataFrame, start: pd.Series, end: pd.Series,
                  exclude_pair: pd.Series | None = None) -> np.ndarray:
    """Per row: how many of ``trades`` were open at some point of [start, end), trades on
    the row's own pair left out when ``exclude_pair`` is given."""
    if trades.empty or start.empty:
        return np.zeros(len(start), dtype="int64")
    s, e = _np(start), _np(end)
    count = _count_open(trades, s, e)
    if exclude_pair is not None:
        pairs = exclude_pair.to_numpy()
        for pair, group in trades.groupby("pair", sort=False):  # a loop over pairs
            rows = pairs == pair
            if rows.any():
                count[rows] -= _count_open(group, s[rows], e[rows])
    return count


def _refused(rows: pd.DataFrame, ctx: BotContext, kind: str, window: pd.Timedelta,
             bar: pd.Timedelta) -> pd.Series:
    """The first refusal log line of ``kind`` for the row's pair (or any pair) in
    [expected_at - bar, expected_at + window); None where there is none."""
    found = pd.Series(None, index=rows.index, dtype=object)
    ref = ctx.refusals[ctx.refusals["kind"] == kind] if not ctx.refusals.empty else ctx.refusals
    if ref.empty or rows.empty:
        return found
    t = _np(ref["time"])[None, :]
    e = _np(rows["expected_at"])[:, None]
    pair_ok = ref["pair"].isna().to_numpy()[None, :] | (
        ref["pair"].to_numpy()[None, :] == rows["pair"].to_numpy()[:, None])
    hit = pair_ok & (t >= e - bar.to_timedelta64()) & (t < e + window.to_timedelta64())
    any_hit = hit.any(axis=1)
    first = hit.argmax(axis=1)
    msgs = ref["message"].to_numpy()
    found[any_hit] = msgs[first[any_hit]]
    return found


def _locked(rows: pd.DataFrame, ctx: BotContext, at: pd.Series) -> pd.Series:
    found = pd.Series(None, index=rows.index, dtype=object)
    if ctx.locks.empty or rows.empty:
        return found
    t = _np(at)[:, None]
    ls = _np(ctx.locks["start"])[None, :]
    le = _np(ctx.locks["end"])[None, :]
    pair_ok = (ctx.locks["pair"].to_numpy()[None, :] == "*") | (
        ctx.locks["pair"].to_numpy()[None, :] == rows["pair"].to_numpy()[:, None])
    hit = pair_ok & (ls <= t) & (t < le)
    any_hit = hit.any(axis=1)
    reasons = ctx.locks["reason"].fillna("").astype(str).to_numpy()
    pairs = ctx.locks["pair"].astype(str).to_numpy()
    first = hit.argmax(axis=1)
    found[any_hit] = [f"pair lock on {pairs[i]}: {reasons[i]}" for i in first[any_hit]]
    return found


def _late_detail(late_by: pd.Series) -> pd.Series:
    return "signal arrived " + late_by.round(1).astype(str) + " s after its decision deadline"


def align(bot: pd.DataFrame, backtest: pd.DataFrame, rules: Rules, end: datetime
          ) -> pd.DataFrame:
    """Backtest trades lined up with the bot's: one row per backtest trade (both, missed,
    pending) and per unexplained bot trade (bot_only), with both sides' fields."""
    enters = _pair_trades(bot, backtest, rules.late_bars * rules.bar, ensure_utc(end, "to"))
    side = {"bot": bot.set_index("trade_id"), "backtest": backtest.set_index("trade_id")}
    for name, frame in side.items():
        ids = enters[f"{name}_trade_id"]
        for col in ("open_time", "close_time", "open_rate", "close_rate", "profit_abs"):
            vals = frame[col].reindex(ids.to_numpy()).to_numpy()
            target = f"{name}_{'profit' if col == 'profit_abs' else col}"
            enters[target] = vals
    for col in ("bot_open_time", "bot_close_time", "backtest_open_time", "backtest_close_time"):
        enters[col] = _utc(enters[col])
    enters["expected_at"] = _utc(enters["expected_at"]).fillna(enters["bot_open_time"])
    enters["strategy_id"] = enters["strategy_id"].where(enters["strategy_id"].notna(), None)
    return enters.reset_index(drop=True)


def classify(bot: pd.DataFrame, backtest: pd.DataFrame, signals: pd.DataFrame, rules: Rules,
             ctx: BotContext, end: datetime) -> pd.DataFrame:
    """Every aligned row with its ``cause`` and ``detail`` (see the module docstring).

    ``signals``: :func:`signal_timeliness` of the period's signal versions.
    """
    bar = rules.bar
    window = rules.late_bars * bar
    rows = align(bot, backtest, rules, end)
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ROW_COLUMNS})
    out = rows.copy()
    # the candle whose signal decided: for the backtest the one before its open; for a
    # bot-only trade the last closed candle when the bot entered
    bot_candle = _utc(out["bot_open_time"]).dt.floor(_freq(bar)) - bar
    candle = (out["expected_at"] - bar).where(out["outcome"] != "bot_only", bot_candle)
    out = out.join(_signal_for(out, candle, signals, rules))
    bp = out["bot_profit"].astype(float)
    tp = out["backtest_profit"].astype(float)
    out["pnl_difference"] = bp.fillna(0.0) - tp.fillna(0.0)
    out["entry_slippage_bps"] = slippage_bps(
        out["bot_open_rate"].to_numpy(float), out["backtest_open_rate"].to_numpy(float),
        np.full(len(out), "enter", dtype=object))
    out["exit_slippage_bps"] = slippage_bps(
        out["bot_close_rate"].to_numpy(float), out["backtest_close_rate"].to_numpy(float),
        np.full(len(out), "exit", dtype=object))
    cause = pd.Series("other", index=out.index, dtype=object)
    detail = pd.Series("", index=out.index, dtype=object)
    late = out["signal_late"].to_numpy(bool)
    outcome = out["outcome"]

    both = (outcome == "both").to_numpy()
    exit_gap = (out["bot_close_time"] - out["backtest_close_time"]).abs()
    same_exit = (out["bot_close_time"].isna() & out["backtest_close_time"].isna()) | (
        exit_gap < window)
    same_fill = (np.abs(out["entry_slippage_bps"].fillna(0.0)) * 1e-4 <= PRICE_EPS) & (
        np.abs(out["exit_slippage_bps"].fillna(0.0)) * 1e-4 <= PRICE_EPS)
    on_time = both & same_exit.to_numpy()
    cause[on_time & same_fill.to_numpy()] = "match"
    slip = on_time & ~same_fill.to_numpy()
    cause[slip] = "slippage"
    detail[slip] = [f"entry {e:+.1f} bps, exit {x:+.1f} bps" for e, x in zip(
        out["entry_slippage_bps"][slip].fillna(0.0), out["exit_slippage_bps"][slip].fillna(0.0),
        strict=True)]
    diff_both = both & ~on_time
    cause[diff_both & late] = "signal_late"
    detail[diff_both & late] = _late_detail(out["late_by_s"])[diff_both & late]
    rest = diff_both & ~late
    detail[rest] = ("exit at another time: bot " + out["bot_close_time"].astype(str)
                    + ", backtest " + out["backtest_close_time"].astype(str))[rest]

    missed = (outcome == "backtest_only").to_numpy()
    _classify_missed(out, missed, late, bot, ctx, window, bar, cause, detail)

    extra = (outcome == "bot_only").to_numpy()
    manual = extra & out["strategy_id"].isna().to_numpy()
    cause[manual] = "manual_trade"
    tags = bot.set_index("trade_id")["enter_tag"].reindex(out["bot_trade_id"].to_numpy())
    detail[manual] = ("enter tag " + pd.Series(tags.to_numpy(), index=out.index).fillna(
        "(none)").astype(str) + " is not a signal's")[manual]
    lx = extra & ~manual & late
    cause[lx] = "signal_late"
    detail[lx] = (_late_detail(out["late_by_s"])
                  + "; the bot still traded it within the candle")[lx]
    ox = extra & ~manual & ~late
    same_pair_bt = _same_pair_open(backtest, out, out["bot_open_time"])
    detail[ox & same_pair_bt] = "the backtest already had a trade open on this pair"
    detail[ox & ~same_pair_bt] = "the backtest did not trade this signal"
    cause[(outcome == "pending").to_numpy()] = "pending"
    detail[(outcome == "pending").to_numpy()] = "not due yet at the end of the period"
    out["cause"] = cause
    out["detail"] = detail
    out["late_by_s"] = out["late_by_s"].where(out["signal_late"])
    return out.reindex(columns=list(ROW_COLUMNS)).sort_values(
        ["expected_at", "pair"], ignore_index=True)


def _freq(bar: pd.Timedelta) -> str:
    return f"{int(bar.total_seconds())}s"


def _same_pair_open(trades: pd.DataFrame, rows: pd.DataFrame, at: pd.Series) -> np.ndarray:
    """Per row: whether ``trades`` had a trade on the row's pair open at ``at``
    (opened at or before it, closed after it)."""
    out = np.zeros(len(rows), dtype=bool)
    if trades.empty or rows.empty:
        return out
    t = _np(at)
    pairs = rows["pair"].to_numpy()
    for pair, group in trades.groupby("pair", sort=False):  # a loop over pairs
        sel = pairs == pair
        if sel.any():
            out[sel] = _count_open(group, t[sel], t[sel] + np.timedelta64(1, "ns")) > 0
    return out


def _classify_missed(out: pd.DataFrame, missed: np.ndarray, late: np.ndarray,
                     bot: pd.DataFrame, ctx: BotContext, window: pd.Timedelta,
                     bar: pd.Timedelta, cause: pd.Series, detail: pd.Series) -> None:
    """Why the bot did not take a trade the backtest took (first reason that applies)."""
    if not missed.any():
        return
    at = out["expected_at"]
    todo = missed.copy()

    def assign(mask: np.ndarray, name: str, text: pd.Series | str) -> None:
        nonlocal todo
        hit = todo & mask
        cause[hit] = name
        detail[hit] = text[hit] if isinstance(text, pd.Series) else text
        todo = todo & ~hit

    assign(late, "signal_late", _late_detail(out["late_by_s"]))
    out_of_store = _in_windows(at, ctx.outages, at + window)
    assign(out_of_store, "store_outage", "the bot could not read the signal store then")
    lock = _locked(out, ctx, at)
    lock_line = _refused(out, ctx, "lock", window, bar)
    lock = lock.fillna(lock_line)
    assign(lock.notna().to_numpy(), "refused_lock", lock)
    if ctx.max_open_trades is not None:
        n_open = _open_between(bot, at, at + window, exclude_pair=out["pair"])
        full = n_open >= ctx.max_open_trades
        assign(full, "refused_max_open_trades", pd.Series(
            [f"{n} other trade(s) open, max_open_trades={ctx.max_open_trades}" for n in n_open],
            index=out.index))
    stake = _refused(out, ctx, "stake", window, bar)
    assign(stake.notna().to_numpy(), "refused_stake", stake)
    assign(_same_pair_open(bot, out, at), "other", "the bot already had a trade open on this pair")
    assign(np.ones(len(out), dtype=bool), "other", "no reason found in the bot's trades, "
           "logs or locks")


def open_at_end(backtest: pd.DataFrame, end: datetime, bar: pd.Timedelta) -> pd.DataFrame:
    """Backtest trades Freqtrade closed only because the backtest ended (``force_exit`` in
    the last bar) are still open, like the bot's trades at that moment: no close, no
    realised profit, so an open trade on both sides is the same trade."""
    end_ts = ensure_utc(end, "to")
    forced = (backtest["exit_reason"].astype(str) == "force_exit") & (
        backtest["close_time"] >= end_ts - bar)
    if not forced.any():
        return backtest
    out = backtest.copy()
    out.loc[forced, ["close_time"]] = pd.NaT
    out.loc[forced, ["close_rate", "profit_abs"]] = np.nan
    out.loc[forced, "is_open"] = True
    out.loc[forced, "exit_reason"] = None
    return out


def attribution(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cause: rows and the summed P&L difference (bot - backtest); every cause listed."""
    g = rows.groupby("cause")
    out = pd.DataFrame({"count": g.size(), "pnl_difference": g["pnl_difference"].sum()}
                       ).reindex(list(CAUSES)).fillna(0.0)
    out["count"] = out["count"].astype("int64")
    return out.rename_axis("cause").reset_index()


def slippage_summary(rows: pd.DataFrame, bot: pd.DataFrame) -> dict[str, float | None]:
    """Mean entry/exit slippage (bps, stake-weighted) over trades both sides took at the same
    time, and the P&L those fill differences cost (stake currency)."""
    same = rows[rows["cause"].isin(["match", "slippage"])]
    stake = bot.set_index("trade_id")["stake_amount"].reindex(
        same["bot_trade_id"].to_numpy()).to_numpy(float)
    out: dict[str, float | None] = {"trades": float(len(same))}
    for side in ("entry", "exit"):
        bps = same[f"{side}_slippage_bps"].to_numpy(float)
        ok = np.isfinite(bps) & np.isfinite(stake)
        out[f"{side}_bps_mean"] = (float(np.average(bps[ok], weights=stake[ok]))
                                   if ok.any() and stake[ok].sum() > 0 else None)
    out["pnl"] = float(same["pnl_difference"].sum())
    return out
