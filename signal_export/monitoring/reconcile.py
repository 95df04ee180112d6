"""Reconciliation: every enter/exit signal that should have acted vs the trades that happened.

Signals are events (as in the strategy and the research backtest): per
strategy and pair a repeated action is a no-op, and an exit acts only on an
open trade of that strategy. Each acting signal is expected to fill at the
open of the bar after its ``ts`` (``expected_at = ts + bar``). Outcomes, one
row each:

* ``matched``: a trade of that strategy (``enter_tag`` ``ext:<id>:v<n>``)
  opened (enter) / closed (exit) within ``late_bars`` bars of ``expected_at``
  and before the next acting signal's ``expected_at``;
* ``late``: it happened, but later than that;
* ``missed``: nothing happened before the next acting signal (or before
  ``now``, once ``late_bars`` bars have passed);
* ``pending``: not yet due (``now`` within the window);
* ``extra``: a trade (in the window) no enter signal explains (other tags,
  force-entries, a second trade for one signal).

Vectorised with ``merge_asof`` per (strategy_id, pair). Pure: frames in,
frame out. Not the REST calls nor the alerting.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from signal_export.contract import ensure_utc, timeframe_delta
from signal_export.monitoring.alerts import Condition, Rule

OUTCOME_COLUMNS = ("kind", "side", "strategy_id", "pair", "signal_ts", "expected_at",
                   "trade_id", "happened_at", "delay_s", "fill_price", "ref_price")
_NS = "datetime64[ns, UTC]"


def acting_signals(signals: pd.DataFrame) -> pd.DataFrame:
    """Action rows that change the state: repeats dropped, leading exits dropped."""
    rows = signals[signals["action"].isin(["enter_long", "exit_long"])]
    rows = rows.sort_values(["strategy_id", "pair", "ts"], ignore_index=True)
    prev = rows.groupby(["strategy_id", "pair"])["action"].shift()
    keep = (rows["action"] != prev) & ~(prev.isna() & (rows["action"] == "exit_long"))
    return rows[keep].reset_index(drop=True)


def _ref_price(signals: pd.DataFrame) -> pd.Series:
    if "ref_price" in signals:
        return pd.to_numeric(signals["ref_price"], errors="coerce")
    if "extra" in signals:
        return pd.to_numeric(signals["extra"].map(
            lambda e: (e.get("ref_price") if isinstance(e, dict) else None)), errors="coerce")
    return pd.Series(np.nan, index=signals.index)


def reconcile(signals: pd.DataFrame, trades: pd.DataFrame, timeframe: str, now: datetime, *,
              late_bars: int = 1) -> pd.DataFrame:
    """Outcome rows (see the module docstring) for ``signals`` of one timeframe vs ``trades``.

    ``signals``: strategy_id, pair, ts, action (+ optional ref_price / extra.ref_price);
    ``trades``: the frame of :func:`signal_export.monitoring.execution.trades_frame`.
    """
    now_ts = ensure_utc(now, "now")
    bar = pd.Timedelta(timeframe_delta(timeframe))
    window = late_bars * bar
    acts = acting_signals(signals)
    acts = acts.assign(ts=pd.to_datetime(acts["ts"], utc=True).astype(_NS),
                       ref_price=_ref_price(acts)).astype({"strategy_id": object, "pair": object})
    acts["expected_at"] = acts["ts"] + bar
    acts["next_expected"] = acts.groupby(["strategy_id", "pair"])["expected_at"].shift(-1)
    tr = trades[trades["strategy_id"].notna()].astype(
        {"open_time": _NS, "close_time": _NS, "strategy_id": object, "pair": object})
    enters = _match(acts[acts["action"] == "enter_long"], tr, "open_time", "open_rate")
    exits = _match_exits(acts[acts["action"] == "exit_long"], tr)
    outcomes = pd.concat([enters.assign(side="enter"), exits.assign(side="exit")],
                         ignore_index=True)
    if not outcomes.empty:
        for col in ("happened_at", "expected_at", "next_expected"):
            outcomes[col] = pd.to_datetime(outcomes[col], utc=True).astype(_NS)
        delay = outcomes["happened_at"] - outcomes["expected_at"]
        due = now_ts >= outcomes["expected_at"] + window
        before_next = outcomes["next_expected"].isna() | (
            outcomes["happened_at"] < outcomes["next_expected"])
        happened = outcomes["happened_at"].notna() & before_next
        no_position = outcomes["side"].eq("exit") & outcomes["no_position"].astype(
            "boolean").fillna(False).astype(bool)
        outcomes["kind"] = np.select(
            [no_position, happened & (delay < window), happened, ~happened & ~due],
            ["no_position", "matched", "late", "pending"], "missed")
        outcomes.loc[~happened, ["happened_at", "trade_id", "fill_price"]] = [pd.NaT, np.nan,
                                                                               np.nan]
        outcomes["delay_s"] = np.where(happened, delay.dt.total_seconds(), np.nan)
        outcomes = outcomes[outcomes["kind"] != "no_position"]
        outcomes = outcomes.rename(columns={"ts": "signal_ts"})
    explained = set(outcomes.loc[outcomes["side"].eq("enter") & outcomes["trade_id"].notna(),
                                 "trade_id"].astype("int64")) if not outcomes.empty else set()
    first = acts["ts"].min() if not acts.empty else now_ts
    in_window = trades[(trades["open_time"] >= first) & ~trades["trade_id"].isin(explained)]
    extra = pd.DataFrame({
        "kind": "extra", "side": "enter", "strategy_id": in_window["strategy_id"],
        "pair": in_window["pair"], "signal_ts": pd.NaT, "expected_at": pd.NaT,
        "trade_id": in_window["trade_id"], "happened_at": in_window["open_time"],
        "delay_s": np.nan, "fill_price": in_window["open_rate"], "ref_price": np.nan})
    frames = [f for f in (outcomes, extra) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    out = pd.concat([f.reindex(columns=list(OUTCOME_COLUMNS)) for f in frames],
                    ignore_index=True)
    return out.sort_values(["strategy_id", "pair", "signal_ts", "happened_at"],
                           na_position="last", ignore_index=True)


def _match(acts: pd.DataFrame, trades: pd.DataFrame, time_col: str, price_col: str
           ) -> pd.DataFrame:
    """Forward as-of: the first trade (of that strategy/pair) at or after ``expected_at``."""
    if acts.empty:
        return acts.assign(happened_at=pd.NaT, trade_id=np.nan, fill_price=np.nan)
    right = trades.dropna(subset=[time_col]).rename(columns={
        time_col: "happened_at", price_col: "fill_price"})[
        ["strategy_id", "pair", "happened_at", "trade_id", "fill_price"]].sort_values(
        "happened_at")
    left = acts.sort_values("expected_at")
    merged = pd.merge_asof(left, right, left_on="expected_at", right_on="happened_at",
                           by=["strategy_id", "pair"], direction="forward")
    # a trade at or after the next acting signal belongs to that one: a missed signal must
    # not take it (and leave the next signal without its trade)
    after_next = merged["happened_at"] >= merged["next_expected"]
    merged.loc[after_next, ["happened_at", "trade_id", "fill_price"]] = [pd.NaT, np.nan, np.nan]
    # one trade explains one signal: a later signal matched to the same trade gets nothing
    dup = merged["trade_id"].notna() & merged.duplicated(["trade_id"], keep="first")
    merged.loc[dup, ["happened_at", "trade_id", "fill_price"]] = [pd.NaT, np.nan, np.nan]
    return merged


def _match_exits(acts: pd.DataFrame, trades: pd.DataFrame) -> pd.DataFrame:
    """Exits act on the strategy's trade open at ``expected_at``; its close is the outcome."""
    if acts.empty:
        return acts.assign(happened_at=pd.NaT, trade_id=np.nan, fill_price=np.nan,
                           no_position=False)
    right = trades.dropna(subset=["open_time"])[
        ["strategy_id", "pair", "open_time", "close_time", "trade_id", "close_rate"]
    ].sort_values("open_time")
    merged = pd.merge_asof(acts.sort_values("expected_at"), right, left_on="expected_at",
                           right_on="open_time", by=["strategy_id", "pair"],
                           direction="backward")
    open_then = merged["trade_id"].notna() & (
        merged["close_time"].isna() | (merged["close_time"] >= merged["expected_at"]))
    merged["no_position"] = ~open_then
    merged["happened_at"] = merged["close_time"].where(open_then)
    merged["fill_price"] = merged["close_rate"].where(open_then)
    return merged.drop(columns=["open_time", "close_time", "close_rate"])


def reconciliation_conditions(outcomes: pd.DataFrame, now: datetime) -> list[Condition]:
    """Per strategy/pair: RECONCILIATION fires while missed or extra trades are in the window."""
    out = []
    if outcomes.empty:
        return out
    keyed = outcomes.assign(strategy_id=outcomes["strategy_id"].fillna("-"))
    for (sid, pair), rows in keyed.groupby(["strategy_id", "pair"]):
        counts = rows["kind"].value_counts()
        bad = int(counts.get("missed", 0) + counts.get("extra", 0))
        out.append(Condition(
            Rule.RECONCILIATION, bad > 0, now, float(bad), 0.0,
            f"signals vs trades: {int(counts.get('matched', 0))} matched, "
            f"{int(counts.get('late', 0))} late, {int(counts.get('missed', 0))} missed, "
            f"{int(counts.get('extra', 0))} extra",
            strategy_id=None if sid == "-" else sid, pair=pair))
    return out
