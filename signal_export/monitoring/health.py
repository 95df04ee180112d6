"""Health readings from MongoDB: connectivity, exporter success and write latency, job counts,
signal lag. Each function reads one thing and returns plain data; the monitor combines them.

Not the alert rules (:mod:`.rules`) nor Freqtrade (:mod:`.freqtrade_api`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from signal_export.contract import timeframe_seconds
from signal_export.logs import redact_text
from signal_export.monitoring.lag import signal_lag
from signal_export.point_in_time import KNOWN_AT, first_known
from signal_export.store import latest_signals, signal_versions


@dataclass
class MongoHealth:
    reachable: bool
    ping_s: float | None
    error: str | None = None


#: Export audit statuses of a finished run (``running``: still going, or died: see
#: the export_stalled rule).
FINISHED_STATUSES = ("ok", "partial", "failed", "interrupted")
#: What a finished run means for ops: ``failed`` (could not store what was valid: status
#: failed or a document failed to write), ``interrupted`` (stopped by a signal, counts
#: true), ``partial`` (stored everything valid; some rows the producer sent were
#: rejected by validation), ``ok``.
EXPORT_OUTCOMES = ("ok", "partial", "failed", "interrupted")


def export_outcome(doc: Mapping[str, Any]) -> str:
    """:data:`EXPORT_OUTCOMES` of one finished audit record. A producer's rejected rows
    (a bad CSV: ``counts.rejected``) make a run ``partial``, never ``failed``."""
    counts = doc.get("counts") or {}
    status = doc.get("status")
    if status == "failed" or int(counts.get("failed") or 0) > 0:
        return "failed"
    if status == "interrupted":
        return "interrupted"
    if status == "partial" or int(counts.get("rejected") or 0) > 0:
        return "partial"
    return "ok"


@dataclass
class ExporterHealth:
    """Finished export runs in the look-back window."""

    runs: int = 0
    ok: int = 0
    partial: int = 0
    failed: int = 0
    interrupted: int = 0
    #: rows producers sent that failed validation (not exporter failures)
    rejected_rows: int = 0
    write_latency_p50_s: float | None = None
    write_latency_p99_s: float | None = None
    #: one dict per finished run: run_id, outcome, latency_s, counts, finished_at
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        """Runs that stored every valid signal (``ok``, ``partial``, ``interrupted``)."""
        return self.runs - self.failed

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.runs if self.runs else 1.0


@dataclass
class JobHealth:
    job: str
    strategy_id: str | None
    runs: int
    ok: int
    failed: int
    signals: int
    last_bar: datetime | None
    last_export: datetime | None
    last_latency_s: float | None
    over_budget: int
    newest: dict[str, Any] = field(default_factory=dict)
    #: every run record of the job in the window (the metrics count the new ones)
    records: list[dict[str, Any]] = field(default_factory=list)


def mongo_health(client: MongoClient) -> MongoHealth:
    """``ping`` round trip; unreachable is a value, not an exception."""
    t0 = time.perf_counter()
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        return MongoHealth(False, None, redact_text(f"{type(exc).__name__}: {exc}")[:300])
    return MongoHealth(True, time.perf_counter() - t0)


def exporter_health(runs: Collection, since: datetime) -> ExporterHealth:
    """Finished export audit records since ``since``: outcomes (:func:`export_outcome`),
    rejected rows, write-latency percentiles, and one record per run for the metrics."""
    docs = list(runs.find({"started_at": {"$gte": since},
                           "status": {"$in": list(FINISHED_STATUSES)}},
                          {"_id": 0, "run_id": 1, "status": 1, "latency_ms": 1, "counts": 1,
                           "finished_at": 1}))
    out = ExporterHealth(runs=len(docs))
    for d in docs:
        outcome = export_outcome(d)
        setattr(out, outcome, getattr(out, outcome) + 1)
        out.rejected_rows += int((d.get("counts") or {}).get("rejected") or 0)
        latency = d.get("latency_ms")
        out.records.append({"run_id": d.get("run_id"), "outcome": outcome,
                            "latency_s": None if latency is None else latency / 1000.0,
                            "counts": dict(d.get("counts") or {}),
                            "finished_at": d.get("finished_at")})
    lat = np.array([r["latency_s"] for r in out.records if r["latency_s"] is not None], float)
    if lat.size:
        out.write_latency_p50_s = float(np.percentile(lat, 50))
        out.write_latency_p99_s = float(np.percentile(lat, 99))
    return out


def running_exports(runs: Collection, since: datetime) -> list[dict]:
    """Export audit records still ``running`` that started after ``since``."""
    return list(runs.find({"status": "running", "started_at": {"$gte": since}},
                          {"_id": 0, "run_id": 1, "started_at": 1, "strategy_ids": 1}))


def job_health(runs: Collection, since: datetime) -> tuple[list[JobHealth], list[dict]]:
    """Per scheduled job since ``since``: run counts, signals exported, newest bar and latency.

    Also returns each job's newest run document (for the export-run alert rules).
    """
    docs = list(runs.find({"bar": {"$gte": since}}))
    out: list[JobHealth] = []
    newest_docs: list[dict] = []
    by_job: dict[str, list[dict]] = {}
    for d in docs:
        by_job.setdefault(d["job"], []).append(d)
    for job, rows in sorted(by_job.items()):
        rows.sort(key=lambda d: d["bar"])
        ok_rows = [d for d in rows if d.get("status") == "ok"]
        newest = rows[-1]
        newest_docs.append(newest)
        out.append(JobHealth(
            job=job, strategy_id=newest.get("strategy_id"), runs=len(rows), ok=len(ok_rows),
            failed=len(rows) - len(ok_rows),
            signals=sum(int((d.get("counts") or {}).get("submitted", 0)) for d in rows),
            last_bar=ok_rows[-1]["bar"] if ok_rows else None,
            last_export=ok_rows[-1]["finished_at"] if ok_rows else None,
            last_latency_s=newest.get("latency_s"),
            over_budget=sum(bool(d.get("over_budget")) for d in rows), newest=newest,
            records=rows))
    return out, newest_docs


def lag_frame(signals: Collection, now: datetime,
              watched: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Signal lag per strategy/pair of the watched strategies (one aggregation per strategy)."""
    frames = []
    expected: dict[tuple[str, str], list[str]] = {}
    for w in watched:
        latest = latest_signals(signals, strategy_ids=w["strategy_id"], timeframe=w["timeframe"],
                                pairs=w.get("pairs"), fields=("strategy_id", "pair",
                                                              "timeframe", "ts"))
        frames.append(latest)
        if w.get("pairs"):
            expected[(w["strategy_id"], w["timeframe"])] = list(w["pairs"])
    if not frames:
        frames = [pd.DataFrame(columns=["strategy_id", "pair", "timeframe", "ts"])]
    latest = pd.concat(frames, ignore_index=True)
    return signal_lag(latest, now, expected)


#: One row per signal whose bar closed in the freshness window (see :func:`freshness_frame`).
FRESHNESS_COLUMNS = ("strategy_id", "pair", "timeframe", "ts", KNOWN_AT, "freshness_s",
                     "bar_s", "budget_s")


def freshness_frame(signals: Collection, history: Collection, now: datetime,
                    watched: Sequence[Mapping[str, Any]], window_bars: int) -> pd.DataFrame:
    """Freshness of each watched strategy's signals whose bar closed in the last
    ``window_bars`` bars: ``known_at - (ts + bar)`` in seconds, from the first version of
    each signal (current document or history: when a live bot could first act on it), at
    least 0 (a signal stored before its bar closed is on time). ``budget_s``: the
    strategy's ``freshness_budget_seconds``, default bar / 2. Reads
    :func:`~signal_export.store.signal_versions` (two indexed range reads per strategy).
    """
    frames = []
    for w in watched:
        bar_s = float(timeframe_seconds(w["timeframe"]))
        start = now - pd.Timedelta(seconds=bar_s * (window_bars + 1))
        versions = signal_versions(signals, history, start, now, strategy_ids=w["strategy_id"],
                                   timeframe=w["timeframe"], pairs=w.get("pairs"),
                                   fields=("strategy_id", "pair", "timeframe", "ts"))
        first = first_known(versions)
        if first.empty:
            continue
        close = pd.to_datetime(first["ts"], utc=True) + pd.Timedelta(seconds=bar_s)
        first = first[(close >= now - pd.Timedelta(seconds=bar_s * window_bars))
                      & (close <= now)].copy()
        late = (pd.to_datetime(first[KNOWN_AT], utc=True) - close[first.index])
        first["freshness_s"] = late.dt.total_seconds().clip(lower=0.0)
        first["bar_s"] = bar_s
        budget = w.get("freshness_budget_seconds")
        first["budget_s"] = float(budget) if budget is not None else bar_s / 2
        frames.append(first)
    if not frames:
        return pd.DataFrame(columns=list(FRESHNESS_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(FRESHNESS_COLUMNS)]
