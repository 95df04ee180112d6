"""A small, deterministic export walk-through for ``make demo`` and first-time users.

Builds a synthetic signal set (pure function), exports it, exports it again to
show idempotency (0 inserted / 0 modified), and prints the latest signal per
pair. Not a signal generator for real use: see ``research/signals``.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from pymongo import MongoClient

from signal_export.contract import floor_to_bar, timeframe_delta
from signal_export.exporter import ExportResult, export_signals
from signal_export.settings import Settings
from signal_export.store import ensure_indexes, latest_signals, runs_collection, signals_collection

DEMO_PAIRS = ("BTC/USDT", "ETH/USDT", "ETH/BTC", "1000PEPE/USDT")


def synthetic_signals(now: datetime, *, timeframe: str = "1h", n_bars: int = 48,
                      strategy_id: str = "demo_v1", pairs: tuple[str, ...] = DEMO_PAIRS
                      ) -> pd.DataFrame:
    """``n_bars`` closed bars per pair up to ``now``: a smooth score, its weight and actions."""
    step = timeframe_delta(timeframe)
    last_open = floor_to_bar(now, timeframe) - step  # the last bar that has closed
    ts = pd.date_range(end=last_open, periods=n_bars, freq=step, tz="UTC")
    frames = []
    for k, pair in enumerate(pairs):
        score = np.sin(np.arange(n_bars) / 6.0 + k)
        action = np.where(score > 0.3, "enter_long", np.where(score < -0.3, "exit_long", None))
        weight = np.where(action == "exit_long", 0.0, np.clip(score, 0.05, 1.0))
        frames.append(pd.DataFrame({"ts": ts, "timeframe": timeframe, "pair": pair,
                                    "strategy_id": strategy_id, "action": action,
                                    "score": score.round(6), "weight": weight.round(6)}))
    return pd.concat(frames, ignore_index=True)


def run_demo(client: MongoClient, settings: Settings, now: datetime) -> list[ExportResult]:
    """Export twice and print counts and the latest signal per pair; returns both results."""
    ensure_indexes(client, settings)
    coll, runs = signals_collection(client, settings), runs_collection(client, settings)
    frame = synthetic_signals(now)
    results = []
    for label in ("first export", "same frame again"):
        result = export_signals(frame, coll, runs_collection=runs, exchange=settings.exchange,
                                quotes=settings.quotes)
        print(f"{label:>17}: {result.summary()} ({result.latency_ms:.0f} ms)")
        results.append(result)
    print(latest_signals(coll, strategy_ids="demo_v1").dropna(axis=1, how="all")
          .to_string(index=False))
    return results
