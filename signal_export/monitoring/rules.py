"""The alert rules over signal lag and freshness, export runs and MongoDB reachability (pure
functions).

Each rule returns one :class:`Condition` per subject it inspected, firing or
not, carrying strategy_id, pair, time, value and threshold. Execution-side
rules (rejections, slippage, balance, rate limits) are in :mod:`.execution`.
Not the I/O that gathers the inputs (:mod:`.health`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from signal_export.monitoring.alerts import Condition, Rule, Unit, human_duration


def lag_conditions(lags: pd.DataFrame, now: datetime, *, missing_bars: int,
                   budget_seconds: float | None = None) -> list[Condition]:
    """Per strategy/pair: MISSING_SIGNALS (no signal within ``missing_bars`` bars) and
    LAG_OVER_BUDGET (the newest closed bar's signal is later than the budget, default bar/2).

    ``lags``: the frame of :func:`signal_export.monitoring.lag.signal_lag`.
    """
    out: list[Condition] = []
    for row in lags.itertuples(index=False):
        budget = budget_seconds if budget_seconds is not None else row.bar_s / 2
        missing_limit = missing_bars * row.bar_s
        lag = float(row.lag_s)
        bar = "never" if pd.isna(row.ts) else f"bar {row.ts:%Y-%m-%d %H:%M} UTC"
        newest = bar if pd.isna(row.ts) else f"{bar}, closed {human_duration(lag)} ago"
        out.append(Condition(
            Rule.MISSING_SIGNALS, bool(lag > missing_limit), now, lag, missing_limit,
            f"no {row.timeframe} signal for {row.pair} in {missing_bars} bars "
            f"(newest signal: {newest})",
            strategy_id=row.strategy_id, pair=row.pair, severity="critical", unit=Unit.SECONDS))
        lag_limit = row.bar_s + budget
        out.append(Condition(
            Rule.LAG_OVER_BUDGET, bool(lag > lag_limit), now, lag, lag_limit,
            f"signal lag {human_duration(lag)} > one bar + export budget "
            f"{human_duration(budget)} (newest signal: {bar})",
            strategy_id=row.strategy_id, pair=row.pair, unit=Unit.SECONDS))
    return out


def freshness_conditions(freshness: pd.DataFrame, now: datetime, *,
                         quantile: float = 0.95,
                         budgets: Mapping[tuple[str, str], float] | None = None
                         ) -> list[Condition]:
    """FRESHNESS_SLO per strategy and timeframe: the ``quantile`` (p95) of ``available_at -
    bar close`` over the window's signals exceeds the producer's budget.

    ``freshness``: :func:`~.health.freshness_frame` (its ``budget_s`` column is the
    budget). ``budgets``: ``{(strategy_id, timeframe): budget_s}`` of every watched
    strategy, so one with no signal in the window is reported as not firing (cleared)
    instead of not checked.
    """
    out: list[Condition] = []
    groups = dict(iter(freshness.groupby(["strategy_id", "timeframe"], sort=True))) \
        if not freshness.empty else {}
    subjects = dict(budgets or {})
    for (sid, tf), rows in groups.items():
        subjects.setdefault((sid, tf), float(rows["budget_s"].iloc[0]))
    for (sid, tf), budget in sorted(subjects.items()):
        rows = groups.get((sid, tf))
        pct = f"p{quantile * 100:g}"
        if rows is None or rows.empty:
            out.append(Condition(Rule.FRESHNESS_SLO, False, now, None, budget,
                                 f"no {tf} signal in the freshness window",
                                 strategy_id=sid, subject=tf, unit=Unit.SECONDS))
            continue
        value = float(np.quantile(rows["freshness_s"].to_numpy(float), quantile))
        out.append(Condition(
            Rule.FRESHNESS_SLO, bool(value > budget), now, value, budget,
            f"{pct} of available_at - bar close over {len(rows)} {tf} signals: "
            f"{_seconds(value)} (worst {_seconds(float(rows['freshness_s'].max()))})",
            strategy_id=sid, subject=tf, unit=Unit.SECONDS))
    return out


def _seconds(value: float) -> str:
    """Sub-minute latencies to the millisecond, longer ones humanised."""
    return f"{value:.3f} s" if value < 60 else human_duration(value)


def export_run_conditions(runs: Iterable[Mapping[str, Any]]) -> list[Condition]:
    """The newest run record per scheduled job: EXPORT_FAILURE and EXPORT_LATENCY (over budget).

    ``runs``: documents of the scheduler's runs collection (any order).
    """
    newest: dict[str, Mapping[str, Any]] = {}
    for run in runs:
        job = run["job"]
        if job not in newest or run["bar"] > newest[job]["bar"]:
            newest[job] = run
    out: list[Condition] = []
    for job, run in sorted(newest.items()):
        bar = pd.Timestamp(run["bar"]).isoformat()
        failed = run.get("status") != "ok"
        out.append(Condition(
            Rule.EXPORT_FAILURE, failed, run["finished_at"], 1.0 if failed else 0.0, 0.0,
            f"export job {job} bar {bar}: {run.get('error') or 'ok'}",
            strategy_id=run.get("strategy_id"), subject=job, severity="critical",
            unit=Unit.FLAG))
        latency = float(run.get("latency_s") or 0.0)
        budget = float(run.get("budget_s") or 0.0)
        budget_text = f"{budget:.1f} s" if budget < 60 else human_duration(budget)
        out.append(Condition(
            Rule.EXPORT_LATENCY, bool(run.get("over_budget")), run["finished_at"], latency,
            budget, f"export job {job} bar {bar}: bar close -> acknowledged took "
            f"{_seconds(latency)} (budget {budget_text})",
            strategy_id=run.get("strategy_id"), subject=job, unit=Unit.SECONDS))
    return out


def stalled_export_condition(running: Iterable[Mapping[str, Any]], now: datetime,
                             max_seconds: float) -> Condition:
    """EXPORT_STALLED: export audit records still ``running`` after ``max_seconds``.

    ``running``: the records with status ``running`` (any age); an export that is
    interrupted or fails finalises its record, so an old one means the process died.
    """
    stalled = sorted((r for r in running
                      if (now - r["started_at"]).total_seconds() > max_seconds),
                     key=lambda r: r["started_at"])
    oldest = (now - stalled[0]["started_at"]).total_seconds() if stalled else 0.0
    names = ", ".join(str(r.get("run_id")) for r in stalled[:3])
    return Condition(
        Rule.EXPORT_STALLED, bool(stalled), now, oldest, max_seconds,
        f"{len(stalled)} export run(s) still 'running' after {human_duration(max_seconds)} "
        f"(oldest started {human_duration(oldest)} ago: {names})" if stalled
        else "no export run stalled", subject="export-runs", severity="critical",
        unit=Unit.SECONDS)


def mongo_condition(reachable: bool, now: datetime, error: str | None = None,
                    subject: str = "signals") -> Condition:
    """MONGO_DOWN for the signal store."""
    return Condition(Rule.MONGO_DOWN, not reachable, now, 0.0 if reachable else 1.0, 0.0,
                     "MongoDB reachable" if reachable else f"MongoDB unreachable: {error}",
                     subject=subject, severity="critical", unit=Unit.FLAG)


def success_rate_condition(ok: int, total: int, now: datetime, minimum: float) -> Condition:
    """EXPORT_FAILURE on the exporter's success rate over the look-back window.

    ``ok``/``total``: finished export runs that stored every valid signal / all finished
    runs (:attr:`~.health.ExporterHealth.succeeded`): rows a producer sent that failed
    validation (a bad CSV) are the producer's problem, not a failed export.
    """
    rate = ok / total if total else 1.0
    return Condition(Rule.EXPORT_FAILURE, total > 0 and rate < minimum, now, rate, minimum,
                     f"exporter success rate {rate:.1%} over {total} runs "
                     f"({total - ok} failed to store valid signals)",
                     subject="exporter-success-rate", unit=Unit.RATIO)
