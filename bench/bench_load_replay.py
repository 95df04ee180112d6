"""Benchmark: load replay of 1m signals through exporter -> MongoDB -> the strategy's read path.

Workload (``devservers.faults.replay.run_replay``, simulated clock, bars back to
back): per 1m bar, export ``pairs x strategies`` signals, then one live bot loop
of ``SignalSource`` (one query for all pairs) and the per-pair slice ``populate``
takes; every bar's signals are checked as seen exactly once. Baseline in the same
run: the same signals exported in hourly bulk batches with no reads (the bare
write cost). The replay runs twice: with the strategy's live read timeout and with
a relaxed one. Counts (missing, duplicate, queries per loop) are the goal; the
latency distribution is recorded for context.

Usage: ``python bench/bench_load_replay.py [--quick] [--pairs N] [--strategies S]
[--minutes M] [--full-day] [--uri URI]``. Default 500 pairs x 3 strategies x 30
minutes (``--full-day``: 1,440 minutes; hours on the local dev server, see results).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_section  # noqa: E402
from _mongo import on_server  # noqa: E402

from devservers.faults.replay import (  # noqa: E402
    ReplayReport,
    ReplaySize,
    bulk_export_baseline,
    run_replay,
    summary,
)

RESULTS = ROOT / "bench" / "results" / "load_replay.md"


RELAXED_TIMEOUT_MS = 60_000


def measure(uri: str, size: ReplaySize) -> tuple[list[ReplayReport], float]:
    """Replays with the strategy's live read timeout and with a relaxed one, and the baseline."""
    tag = uuid.uuid4().hex[:8]
    reports = [run_replay(uri, f"replay_{tag}_live", size),
               run_replay(uri, f"replay_{tag}_relaxed", size,
                          socket_timeout_ms=RELAXED_TIMEOUT_MS)]
    baseline_s = bulk_export_baseline(uri, f"baseline_{tag}", size)
    return reports, baseline_s


def _row(name: str, values: list[float], goal: str) -> str:
    s = summary(values)
    return (f"| {name} | {s['p50'] * 1000:.0f} | {s['p95'] * 1000:.0f} | {s['p99'] * 1000:.0f} "
            f"| {s['max'] * 1000:.0f} | {goal} |")


def _counts(report: ReplayReport) -> list[str]:
    docs = report.size.documents
    finds = sorted(set(report.finds_per_loop))
    return [
        f"| signals exported / stored / distinct keys | {report.exported:,} / {report.stored:,} "
        f"/ {report.distinct_keys:,} | all {docs:,} |",
        f"| not seen by the read path (no successful loop read them) | {report.missing:,} | 0 |",
        f"| duplicates (seen more than once in a loop) | {report.duplicates} | 0 |",
        f"| `find` commands per loop | {', '.join(map(str, finds))} | 1 |",
        f"| `getMore` of those cursors, total over {report.loops} loops | {report.get_mores} | "
        "(one cursor) |",
        f"| failed loops (read timed out / server unavailable) | {report.failed_loops} | 0 |",
    ]


def _met(report: ReplayReport) -> bool:
    return (report.missing == 0 and report.duplicates == 0 and report.failed_loops == 0
            and set(report.finds_per_loop) == {1} and report.stored == report.size.documents)


def render(reports: list[ReplayReport], baseline_s: float, server: str) -> str:
    live, relaxed = reports
    size = live.size
    docs = size.documents
    lines = [
        "## Load replay: exporter -> MongoDB -> strategy read path (simulated clock)",
        "",
        f"Server: {server}. {size.pairs} pairs x {size.strategies} strategies x {size.minutes} "
        f"1m bars = {docs:,} signals; one export and one live read loop per bar, bars back "
        "to back (`devservers/faults/replay.py`). Run twice: with the strategy's live read "
        f"timeout ({live.socket_timeout_ms:,} ms, the `ext_signals` default) and with "
        f"{relaxed.socket_timeout_ms:,} ms to see the pipeline through. Baseline: the same "
        "signals exported in hourly bulk batches, no reads.",
        "",
        f"### Counts, live read timeout ({live.socket_timeout_ms:,} ms)",
        "",
        "| count | measured | goal |",
        "|---|---:|---|",
        *_counts(live),
        "",
        f"### Counts, relaxed read timeout ({relaxed.socket_timeout_ms:,} ms)",
        "",
        "| count | measured | goal |",
        "|---|---:|---|",
        *_counts(relaxed),
        "",
        f"### Latency per bar, relaxed run (wall clock; live run read p50 "
        f"{summary(live.read_s)['p50'] * 1000:,.0f} ms)",
        "",
        "| latency per bar | p50 ms | p95 ms | p99 ms | max ms | goal |",
        "|---|---:|---:|---:|---:|---|",
        _row("export of one bar (validate + upsert + audit)", relaxed.export_s,
             "p99 <= 1,000 (issue 8); budget 30,000 = tf/2"),
        _row("read loop: one query for all pairs + normalise", relaxed.read_s,
             "< 2,000 (live read timeout)"),
        _row("per-pair slices (what populate takes)", relaxed.check_s, "context"),
        _row("end to end: export start -> read loop done", relaxed.end_to_end_s,
             "<= 30,000 (tf/2)"),
        "",
        "| throughput | total s | us per signal | ratio vs baseline | goal |",
        "|---|---:|---:|---:|---|",
        f"| bulk export, no reads (baseline) | {baseline_s:.1f} | {baseline_s / docs * 1e6:.1f} "
        "| 1.0x | baseline |",
        f"| full replay, relaxed (export per bar + read loop per bar) | {relaxed.wall_s:.1f} | "
        f"{relaxed.wall_s / docs * 1e6:.1f} | {relaxed.wall_s / baseline_s:.1f}x | as fast as "
        "possible; counts are the goal |",
        "",
        f"Result: live timeout: {'all count goals met' if _met(live) else 'COUNT GOALS NOT MET'}"
        f"; relaxed: {'all count goals met' if _met(relaxed) else 'COUNT GOALS NOT MET'}. "
        f"One simulated day ({size.pairs} x {size.strategies} x 1,440) at the relaxed rate: "
        f"about {relaxed.wall_s / size.minutes * 1440 / 60:.0f} min wall on this server.",
        "",
        "Run: `python bench/bench_load_replay.py` (`--quick`: 50 x 3 x 30; `--full-day`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 pairs x 3 x 30 minutes")
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--strategies", type=int, default=3)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--full-day", action="store_true", help="1,440 minutes")
    parser.add_argument("--uri", help="use this server instead of starting a local dev server")
    args = parser.parse_args(argv if argv is not None else [])
    if args.quick:
        size = ReplaySize(50, 3, 30)
    else:
        size = ReplaySize(args.pairs, args.strategies, 1440 if args.full_day else args.minutes)
    (reports, baseline_s), server = on_server(args.uri, lambda uri: measure(uri, size))
    write_section(RESULTS, render(reports, baseline_s, server), quick=args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
