"""Benchmark: load replay of 1m signals through exporter -> MongoDB -> the strategy's read path.

Workload (``devservers.faults.replay.run_replay``, simulated clock, bars back to
back): per 1m bar, export ``pairs x strategies`` signals, then one live bot loop
of ``SignalSource`` (one query for all pairs) and the per-pair slice ``populate``
takes; every bar's signals are checked as seen exactly once. Baseline in the same
run: the same signals exported in hourly bulk batches with no reads (the bare
write cost). Counts (missing, duplicate, queries per loop) are the goal; the
latency distribution is recorded for context.

Usage: ``python bench/bench_load_replay.py [--quick] [--pairs N] [--strategies S]
[--minutes M] [--full-day] [--uri URI]``. Default 500 pairs x 3 strategies x 60
minutes (``--full-day``: 1,440 minutes; ~1 h on the local dev server, see results).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devservers.faults.replay import (  # noqa: E402
    ReplayReport,
    ReplaySize,
    bulk_export_baseline,
    run_replay,
    summary,
)

RESULTS = ROOT / "bench" / "results" / "load_replay.md"


def measure(uri: str, size: ReplaySize) -> tuple[ReplayReport, float]:
    tag = uuid.uuid4().hex[:8]
    report = run_replay(uri, f"replay_{tag}", size)
    baseline_s = bulk_export_baseline(uri, f"baseline_{tag}", size)
    return report, baseline_s


def _row(name: str, values: list[float], goal: str) -> str:
    s = summary(values)
    return (f"| {name} | {s['p50'] * 1000:.0f} | {s['p95'] * 1000:.0f} | {s['p99'] * 1000:.0f} "
            f"| {s['max'] * 1000:.0f} | {goal} |")


def render(report: ReplayReport, baseline_s: float, server: str) -> str:
    size = report.size
    finds = sorted(set(report.finds_per_loop))
    docs = size.documents
    per_doc_replay = report.wall_s / docs * 1e6
    per_doc_base = baseline_s / docs * 1e6
    ok = report.missing == 0 and report.duplicates == 0 and finds == [1]
    lines = [
        "## Load replay: exporter -> MongoDB -> strategy read path (simulated clock)",
        "",
        f"Server: {server}. {size.pairs} pairs x {size.strategies} strategies x {size.minutes} "
        f"1m bars = {docs:,} signals; one export and one live read loop per bar, bars back "
        "to back (`devservers/faults/replay.py`). Baseline: the same signals exported in "
        "hourly bulk batches, no reads.",
        "",
        "| count | measured | goal |",
        "|---|---:|---|",
        f"| signals exported / stored / distinct keys | {report.exported:,} / {report.stored:,} "
        f"/ {report.distinct_keys:,} | all {docs:,} |",
        f"| missing (a bar's signal not seen by the next successful loop) | {report.missing} | 0 |",
        f"| duplicates (seen more than once in a loop) | {report.duplicates} | 0 |",
        f"| `find` commands per loop | {', '.join(map(str, finds))} | 1 |",
        f"| `getMore` of those cursors, total over {report.loops} loops | {report.get_mores} | "
        "(one cursor) |",
        f"| failed loops (read timed out / server unavailable) | {report.failed_loops} | 0 |",
        "",
        "| latency per bar (wall clock) | p50 ms | p95 ms | p99 ms | max ms | goal |",
        "|---|---:|---:|---:|---:|---|",
        _row("export of one bar (validate + upsert + audit)", report.export_s,
             "p99 <= 1,000 (issue 8); budget 30,000 = tf/2"),
        _row("read loop: one query for all pairs + normalise", report.read_s, "< 60,000 (one bar)"),
        _row("per-pair slices (what populate takes)", report.check_s, "context"),
        _row("end to end: export start -> read loop done", report.end_to_end_s,
             "<= 30,000 (tf/2)"),
        "",
        "| throughput | total s | us per signal | ratio vs baseline | goal |",
        "|---|---:|---:|---:|---|",
        f"| bulk export, no reads (baseline) | {baseline_s:.1f} | {per_doc_base:.1f} | 1.0x "
        "| baseline |",
        f"| full replay (export per bar + read loop per bar) | {report.wall_s:.1f} | "
        f"{per_doc_replay:.1f} | {report.wall_s / baseline_s:.1f}x | as fast as possible; "
        "counts above are the goal |",
        "",
        f"Result: {'all count goals met' if ok else 'COUNT GOALS NOT MET'}. At this rate one "
        f"simulated day ({size.pairs} x {size.strategies} x 1,440) takes about "
        f"{report.wall_s / size.minutes * 1440 / 60:.0f} min wall on this server.",
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
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--full-day", action="store_true", help="1,440 minutes")
    parser.add_argument("--uri", help="use this server instead of starting a local dev server")
    args = parser.parse_args(argv if argv is not None else [])
    if args.quick:
        size = ReplaySize(50, 3, 30)
    else:
        size = ReplaySize(args.pairs, args.strategies, 1440 if args.full_day else args.minutes)
    if args.uri:
        report, baseline_s = measure(args.uri, size)
        server = "given by --uri"
    else:
        from devservers.mongo.process import LocalMongoProcess

        with tempfile.TemporaryDirectory() as tmp, LocalMongoProcess(data_dir=tmp) as proc:
            report, baseline_s = measure(proc.uri, size)
        server = "local dev server (devservers.mongo) in a separate process"
    text = render(report, baseline_s, server)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
