"""Benchmark: one live bot loop (the read + every pair's three hooks), full vs incremental.

Issue 21. What a Freqtrade bot loop costs ``ExternalSignalStrategy`` live
(``process_only_new_candles = False``: every pair's hooks run every ~5 s loop):
``bot_loop_start`` (the read) plus, per pair, ``populate_indicators`` /
``populate_entry_trend`` / ``populate_exit_trend`` on a fresh 1,000-candle frame,
as Freqtrade calls them (its own resets of ``enter_tag``/``exit_tag`` between the
hooks are done but not timed: every strategy pays them).

* **full** (``live_incremental: false``, the previous behaviour): every loop reads
  the whole window (8 bars x pairs) and decides every pair.
* **incremental** (default): a full read on the first loop of a candle, then only
  the documents changed since the last loop, and only the pairs they touch are
  decided again.

Data: 1,000,000 signal documents of history in the local MongoDB dev server
(separate process, the project's indexes plus ``CHANGES_INDEX``
``{strategy_id, timeframe, updated_at}``, which the incremental read needs),
5,000 pairs x 200 hourly bars; the bot trades 500, 1,000 or 5,000 of the pairs
(the same 1M-document collection). Steady state: loops inside one candle, more
than ``watermark_overlap_seconds`` (10 s here) after the candle's export, no new
signals, and with 1 % of the pairs getting a revised signal before each loop
(stamped with ``updated_at``, as the exporter does). Paired rounds: both paths
run the same loop (same ``now``, same documents), in alternating order; medians
with min-max, and the median of the per-round ratios. The first loop of a candle
(full read + every pair decided) is reported for the incremental path too.

Usage: ``python bench/bench_live_loop.py [--quick] [--uri URI]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import median_spread, write_section  # noqa: E402
from _mongo import on_server  # noqa: E402

from signal_export.consumer.logic import ExternalSignalLogic  # noqa: E402
from signal_export.contract import UPDATED_AT_FIELD  # noqa: E402
from signal_export.store import ensure_signal_indexes  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "live_loop.md"
H = timedelta(hours=1)
CANDLE = datetime(2026, 6, 1, tzinfo=UTC)  # the candle the loops run in
ROWS = 1000  # candles per frame, Freqtrade's usual startup + history
GOAL_S = 1.0  # steady-state loop at 5,000 pairs
DB = "liveloop"


def load_history(uri: str, n_docs: int, n_pairs: int) -> list[str]:
    """``n_docs`` documents over ``n_pairs`` pairs, hourly bars up to the last closed candle."""
    import pymongo

    pairs = [f"P{i:04d}/USDT" for i in range(n_pairs)]
    bars = n_docs // n_pairs
    client = pymongo.MongoClient(uri, tz_aware=True)
    coll = client[DB]["crypto_signals"]
    coll.drop()
    ensure_signal_indexes(coll)  # the change query's index among them (see the module doc)
    rng = np.random.default_rng(7)
    wall = datetime.now(UTC)
    t0 = time.perf_counter()
    for b in range(bars):
        ts = CANDLE - (bars - b) * H
        stamp = wall - (bars - b) * H  # each bar exported an hour after the one before
        scores = rng.random(n_pairs).round(3).tolist()
        coll.insert_many([{"ts": ts, "timeframe": "1h", "symbol": "BINANCE:" + p.replace("/", ""),
                           "pair": p, "strategy_id": "live", "score": s, "version": 1,
                           UPDATED_AT_FIELD: stamp} for p, s in zip(pairs, scores, strict=True)],
                         ordered=False)
    print(f"loaded {bars * n_pairs:,} documents in {time.perf_counter() - t0:.0f} s", flush=True)
    client.close()
    return pairs


def revise(uri: str, pairs: list[str], share: float, rng: np.random.Generator) -> int:
    """A revised signal (higher version, new score) on the last closed bar of ``share`` of the
    pairs, stamped like the exporter stamps it."""
    import pymongo

    n = int(round(len(pairs) * share))
    if not n:
        return 0
    client = pymongo.MongoClient(uri, tz_aware=True)
    coll = client[DB]["crypto_signals"]
    now = datetime.now(UTC)
    ops = [pymongo.UpdateOne({"strategy_id": "live", "pair": p, "timeframe": "1h",
                              "ts": CANDLE - H},
                             {"$set": {"score": round(float(rng.random()), 3),
                                       UPDATED_AT_FIELD: now}, "$inc": {"version": 1}})
           for p in rng.choice(pairs, n, replace=False).tolist()]
    coll.bulk_write(ops, ordered=False)
    client.close()
    return n


OVERLAP_S = 10.0  # watermark_overlap_seconds here (default 60): the wait before steady state


def make_logic(uri: str, incremental: bool) -> ExternalSignalLogic:
    return ExternalSignalLogic(
        {"timeframe": "1h", "ext_signals": {"strategy_ids": ["live"],
                                            "live_incremental": incremental,
                                            "watermark_overlap_seconds": OVERLAP_S,
                                            "socket_timeout_ms": 60_000}},
        live=True, env={"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": DB})


def one_loop(logic: ExternalSignalLogic, pairs: list[str], base: pd.DataFrame,
             now: datetime) -> dict[str, float]:
    """One bot loop; seconds spent in the read and in our hooks (Freqtrade's resets excluded)."""
    frames = [base.copy() for _ in pairs]  # Freqtrade's dp.ohlcv(copy=True): not ours
    t = Counter()
    t0 = time.perf_counter()
    logic.bot_loop_start(pairs, now)
    t["read"] = time.perf_counter() - t0
    decided = logic.decisions
    for pair, frame in zip(pairs, frames, strict=True):
        a = time.perf_counter()
        frame = logic.prepare(frame, pair, pairs)
        b = time.perf_counter()
        frame.loc[:, "enter_tag"] = ""  # Freqtrade's advise_entry
        c = time.perf_counter()
        frame = logic.entry(frame, pair, pairs)
        d = time.perf_counter()
        frame.loc[:, "exit_tag"] = ""  # Freqtrade's advise_exit
        e = time.perf_counter()
        logic.exit(frame, pair, pairs)
        t["hooks"] += (b - a) + (d - c) + (time.perf_counter() - e)
    t["loop"] = t["read"] + t["hooks"]
    t["decided"] = logic.decisions - decided
    return t


def measure(uri: str, pairs: list[str], rounds: dict[str, int], share: float) -> dict:
    """Paired rounds of both paths at ``len(pairs)`` pairs; the steady state in one candle."""
    base = pd.DataFrame({"date": pd.date_range(end=CANDLE - H, periods=ROWS, freq="1h",
                                               tz="UTC").astype("datetime64[ms, UTC]"),
                         "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    full, inc = make_logic(uri, False), make_logic(uri, True)
    for lg in (full, inc):  # leave out the once-per-candle count outside the whitelist (below)
        lg.source._outside_key = (CANDLE, frozenset(pairs))
    rng = np.random.default_rng(len(pairs))
    first = one_loop(inc, pairs, base, CANDLE + timedelta(seconds=5))  # the candle's full read
    one_loop(full, pairs, base, CANDLE + timedelta(seconds=5))
    time.sleep(OVERLAP_S)  # the candle's export has settled: the steady state
    out: dict = {"pairs": len(pairs), "first": first, "rounds": rounds}
    tick = 1
    for label, s in (("quiet", 0.0), ("changes", share)):
        rows = []
        for r in range(rounds[label]):
            tick += 1
            now = CANDLE + timedelta(seconds=5 * tick)  # the next loop of the same candle
            changed = revise(uri, pairs, s, rng)
            order = (full, inc) if r % 2 == 0 else (inc, full)
            res = {("full" if lg is full else "inc"): one_loop(lg, pairs, base, now)
                   for lg in order}
            res["changed"] = changed
            rows.append(res)
        out[label] = rows
        print(label, len(pairs), [(round(x["full"]["loop"], 3), round(x["inc"]["loop"], 3))
                                  for x in rows], flush=True)
    for lg in (full, inc):
        lg.source.close()
    return out


def _stat(values: list[float]) -> str:
    """Milliseconds, median (min-max) of the rounds."""
    return median_spread(values, "{:,.0f}", scale=1000.0)


def render(results: list[dict], n_docs: int, where: str, quick: bool) -> str:
    lines = [
        "## Live bot loop: full vs incremental (read + every pair's hooks)",
        "",
        f"{n_docs:,} signal documents of history ({where}); hourly signals for every pair, 8-bar "
        f"read window, {ROWS:,}-candle frames; per loop: `bot_loop_start` (the read) plus "
        "`populate_indicators` / `populate_entry_trend` / `populate_exit_trend` for every pair "
        "on a fresh frame (Freqtrade's own frame copy and tag resets not counted). Paired "
        "rounds in alternating order, median (min-max) of the rounds (count in the table), "
        "ms per loop; ratio = median of the per-round full/incremental ratios."
        + (" Quick run (`--quick`): small sizes." if quick else ""),
        "",
        "| pairs | steady state | rounds | full: read | full: hooks | full loop "
        "| incremental: read | incremental: hooks | incremental loop | pairs re-decided "
        "| full / incremental |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for label, name in (("quiet", "no change"), ("changes", "1 % of pairs revised")):
            rows = res[label]
            ratios = [r["full"]["loop"] / r["inc"]["loop"] for r in rows]
            lines.append(
                f"| {res['pairs']:,} | {name} | {len(rows)} | "
                f"{_stat([r['full']['read'] for r in rows])} | "
                f"{_stat([r['full']['hooks'] for r in rows])} | "
                f"{_stat([r['full']['loop'] for r in rows])} | "
                f"{_stat([r['inc']['read'] for r in rows])} | "
                f"{_stat([r['inc']['hooks'] for r in rows])} | "
                f"{_stat([r['inc']['loop'] for r in rows])} | "
                f"{statistics.median(r['inc']['decided'] for r in rows):,.0f} | "
                f"{median_spread(ratios, '{:.1f}', unit='x')} |")
    lines += ["", "First loop of a candle (incremental path: the full read and every pair "
              "decided; the same work as every loop of the full path). Left out here and above: "
              "the once-per-candle count of the documents outside the whitelist (one "
              "`aggregate`, unchanged by this work), which the dev server answers by scanning "
              "the collection (tens of seconds at 1M documents; mongod uses the key index):",
              "",
              "| pairs | read ms | hooks ms | loop ms |", "|---:|---:|---:|---:|"]
    for res in results:
        f = res["first"]
        lines.append(f"| {res['pairs']:,} | {f['read'] * 1000:,.0f} | {f['hooks'] * 1000:,.0f} | "
                     f"{f['loop'] * 1000:,.0f} |")
    big = max(results, key=lambda r: r["pairs"])
    steady = statistics.median(r["inc"]["loop"] for r in big["changes"])
    ratio = statistics.median(r["full"]["loop"] / r["inc"]["loop"] for r in big["changes"])
    met = "met" if steady <= GOAL_S and ratio >= 20 else "NOT met"
    lines += ["", f"Goal (steady-state loop <= {GOAL_S:.0f} s at 5,000 pairs, >= 20x the full "
              f"path): {big['pairs']:,} pairs with 1 % revised per loop: {steady * 1000:,.0f} ms, "
              f"{ratio:.1f}x: {met}. Load average when the run ended (2 shared cores): "
              f"{os.getloadavg()[1]:.1f} (5 min).", "",
              "Run: `python bench/bench_live_loop.py` (`--quick`: 1,000 pairs at most, 100k "
              "documents, 2 rounds).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--uri", default=None, help="a MongoDB to use instead of a local one")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv if argv is not None else [])
    sizes, n_docs, rounds = ([200, 1000], 100_000, 2) if args.quick else (
        [500, 1000, 5000], 1_000_000, 5)
    rounds = args.rounds or rounds
    universe = max(sizes)

    def run(uri: str) -> list[dict]:
        pairs = load_history(uri, n_docs, universe)
        # 5,000 pairs: fewer rounds (a full-path loop takes minutes on this machine)
        return [measure(uri, pairs[:n], {"quiet": rounds if n < 5000 else 2,
                                         "changes": rounds if n < 5000 else 3}, 0.01)
                for n in sizes]

    results, where = on_server(args.uri, run)
    write_section(RESULTS, render(results, n_docs, where, args.quick), quick=args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
