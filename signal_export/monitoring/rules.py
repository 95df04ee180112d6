"""The alert rules over signal lag, export runs and MongoDB reachability (pure functions).

Each rule returns one :class:`Condition` per subject it inspected, firing or
not, carrying strategy_id, pair, time, value and threshold. Execution-side
rules (rejections, slippage, balance, rate limits) are in :mod:`.execution`.
Not the I/O that gathers the inputs (:mod:`.health`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from signal_export.monitoring.alerts import Condition, Rule


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
        last = "never" if pd.isna(row.ts) else row.ts.isoformat()
        out.append(Condition(
            Rule.MISSING_SIGNALS, bool(row.lag_s > missing_limit), now, float(row.lag_s),
            missing_limit,
            f"no {row.timeframe} signal for {row.pair} in {missing_bars} bars "
            f"(newest ts {last}, lag {row.lag_s:.0f} s)",
            strategy_id=row.strategy_id, pair=row.pair, severity="critical"))
        lag_limit = row.bar_s + budget
        out.append(Condition(
            Rule.LAG_OVER_BUDGET, bool(row.lag_s > lag_limit), now, float(row.lag_s), lag_limit,
            f"signal lag {row.lag_s:.0f} s > one bar + export budget {budget:.0f} s "
            f"(newest ts {last})", strategy_id=row.strategy_id, pair=row.pair))
    return out


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
            strategy_id=run.get("strategy_id"), subject=job, severity="critical"))
        out.append(Condition(
            Rule.EXPORT_LATENCY, bool(run.get("over_budget")), run["finished_at"],
            float(run.get("latency_s") or 0.0), float(run.get("budget_s") or 0.0),
            f"export job {job} bar {bar}: bar close -> acknowledged took "
            f"{float(run.get('latency_s') or 0.0):.3f} s (budget {run.get('budget_s')} s)",
            strategy_id=run.get("strategy_id"), subject=job))
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
        f"{len(stalled)} export run(s) still 'running' after {max_seconds:.0f} s "
        f"(oldest started {oldest:.0f} s ago: {names})" if stalled
        else "no export run stalled", subject="export-runs", severity="critical")


def mongo_condition(reachable: bool, now: datetime, error: str | None = None,
                    subject: str = "signals") -> Condition:
    """MONGO_DOWN for the signal store."""
    return Condition(Rule.MONGO_DOWN, not reachable, now, 0.0 if reachable else 1.0, 0.0,
                     "MongoDB reachable" if reachable else f"MongoDB unreachable: {error}",
                     subject=subject, severity="critical")


def success_rate_condition(ok: int, total: int, now: datetime, minimum: float) -> Condition:
    """EXPORT_FAILURE on the exporter's success rate over the look-back window."""
    rate = ok / total if total else 1.0
    return Condition(Rule.EXPORT_FAILURE, total > 0 and rate < minimum, now, rate, minimum,
                     f"exporter success rate {rate:.1%} over {total} runs",
                     subject="exporter-success-rate")
