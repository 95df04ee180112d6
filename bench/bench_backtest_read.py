"""Benchmark: a backtest's signal range read, chunked column-wise vs the one-query path.

Workload (issue 21): 1h signals of 500 pairs, one strategy id, as the exporter
stores them (symbol, pair, strategy_id, timeframe, ts, score or action+weight,
valid_until, version, source, run_id, updated_at), 0.1% malformed (NaN score),
with the exporter's unique index. The read is ``SignalSource``'s: ``$in`` on
strategy ids and pairs, the timeframe, a ``ts`` range, its projection.

- ours: :func:`signal_export.consumer.range_read.read_signal_range` (``find_raw_batches``,
  column-wise batches, one sorted frame with per-pair slices);
- baseline, measured in the same run: what ``SignalSource.load_range`` did before this
  reader (one ``find`` into dicts),
  ``normalise_signals(list(find(flt, PROJECTION)))`` then the stable sort by (pair, ts)
  and the per-pair slices of ``_ingest``.

Two settings. Over the wire: the local dev server in its own process (1M documents,
paired rounds in alternating order, then 3M for ours only; 10M does not fit: the dev
server materialises a find's whole result, decoded, in its own memory, ~1 KB per
document). Client only: the same raw batches replayed from memory to the same code
(1M paired, then 10M for ours: 1M documents' batches served ten times), which is what
the goal is about, since the dev server's own ~40 us per document is not the
client's and a real mongod sends a batch in well under a microsecond per document.
Each measurement runs in a fresh process: wall time, client CPU time
(``process_time``: this process only, not the server), peak RSS growth during the
read (sampled every 2 ms, minus the RSS before it) and, in a separate run, the
tracemalloc peak and what stays allocated (the frame). Goals: <= 200 B/doc peak,
<= 5 us/doc. Writes ``bench/results/backtest_read.md``; ``--quick`` only prints.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import median_spread, write_section  # noqa: E402
from bench._mongo import on_server  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "backtest_read.md"
PAIRS = 500
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SID = "bench_model"
GOAL_BYTES = 200
GOAL_US = 5.0
BATCH = 10_000


def pairs() -> list[str]:
    return [f"C{i:03d}/USDT" for i in range(PAIRS)]


def documents(lo: int, hi: int) -> list[dict[str, Any]]:
    """Documents ``lo``..``hi`` of the workload (bar-major: every pair per hour)."""
    rng = np.random.default_rng(lo)
    names = pairs()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(lo, hi):
        pair = names[i % PAIRS]
        ts = T0 + timedelta(hours=i // PAIRS)
        doc: dict[str, Any] = {"symbol": "BINANCE:" + pair.replace("/", ""), "pair": pair,
                               "strategy_id": SID, "timeframe": "1h", "ts": ts,
                               "valid_until": ts + timedelta(hours=3), "version": 1,
                               "source": "bench", "run_id": "r1", "updated_at": now}
        u = rng.random()
        if u < 0.7:
            doc["score"] = float(rng.random()) if u > 0.0007 else float("nan")
        elif u < 0.9:
            doc["action"], doc["weight"] = "enter_long", round(float(rng.random()) * 0.9 + 0.1, 4)
        else:
            doc["action"], doc["weight"] = "exit_long", 0.0
        out.append(doc)
    return out


def load(coll: Any, n: int) -> float:
    from signal_export.store import ensure_signal_indexes

    t0 = time.perf_counter()
    ensure_signal_indexes(coll)
    for lo in range(0, n, 50_000):
        coll.insert_many(documents(lo, min(n, lo + 50_000)), ordered=False)
    return time.perf_counter() - t0


def query(n: int) -> dict[str, Any]:
    """``SignalSource._query``'s filter for the whole workload."""
    return {"strategy_id": {"$in": [SID]}, "pair": {"$in": sorted(pairs())}, "timeframe": "1h",
            "ts": {"$gte": T0, "$lte": T0 + timedelta(hours=n // PAIRS + 1)}}


# --- the two reads ------------------------------------------------------------------------


def _quiet() -> Any:
    import logging

    from signal_export.consumer.stats import WarnOnce

    log = logging.getLogger("bench.backtest_read")
    log.propagate = False
    log.addHandler(logging.NullHandler())
    return WarnOnce(log)


def read_ours(coll: Any, flt: dict) -> Any:
    from signal_export.consumer.range_read import read_signal_range
    from signal_export.consumer.source import PROJECTION

    return read_signal_range(coll, flt, PROJECTION, pairs=pairs(), counts={}, warn=_quiet(),
                             strategy_counts={}, batch_size=BATCH)


def read_baseline(coll: Any, flt: dict) -> Any:
    """The one-query path ``load_range`` used before: one find, normalise, sort, slices."""
    from signal_export.consumer.normalise import normalise_signals
    from signal_export.consumer.source import PROJECTION

    docs = list(coll.find(flt, PROJECTION))
    frame = normalise_signals(docs, pairs=pairs(), counts={}, strategy_counts={},
                              warn=_quiet())
    del docs
    frame = frame.sort_values(["pair", "ts"], kind="stable").reset_index(drop=True)
    names, starts = np.unique(frame["pair"].to_numpy(dtype=object), return_index=True)
    ends = np.append(starts[1:], len(frame))
    slices = {str(p): (int(a), int(b)) for p, a, b in zip(names, starts, ends, strict=True)}
    return frame, slices


class Replay:
    """A collection stand-in replaying recorded raw batches ``times`` times (client only)."""

    def __init__(self, batches: list[bytes], times: int) -> None:
        from bson.codec_options import CodecOptions

        self.batches, self.times = batches, times
        self.codec_options = CodecOptions(tz_aware=True)

    def find_raw_batches(self, flt: Any, projection: Any, batch_size: int = 0) -> Any:
        return _Stream(self.batches, self.times)

    def find(self, flt: Any, projection: Any = None) -> Any:
        import bson

        for _ in range(self.times):
            for raw in self.batches:
                yield from bson.decode_all(raw, self.codec_options)


class _Stream:
    def __init__(self, batches: list[bytes], times: int) -> None:
        self.batches, self.times = batches, times

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __iter__(self) -> Any:
        for _ in range(self.times):
            yield from self.batches


# --- one measurement per process ----------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Highest RSS while the block runs, sampled every 2 ms (``ru_maxrss`` is the whole
    process's life: it would count the warm-up and the set-up too)."""

    def __enter__(self) -> PeakRss:
        import threading

        self.peak = self.start = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def measure(method: str, source: dict[str, Any], traced: bool) -> dict[str, float]:
    """In a fresh process: one read by ``method`` ('ours'/'baseline'); timings and memory."""
    import pymongo

    client = None
    if source["kind"] == "server":
        client = pymongo.MongoClient(source["uri"], tz_aware=True, socketTimeoutMS=3_600_000)
        coll = client[source["db"]]["crypto_signals"]
    else:
        import pickle

        batches = pickle.loads(Path(source["path"]).read_bytes())
        coll = Replay(batches, source["times"])
    flt = query(source["n"])
    fn = read_ours if method == "ours" else read_baseline
    # warm-up on the first hours (imports, first calls), so the read below is the read
    if source["kind"] == "server":
        fn(coll, {**flt, "ts": {"$gte": T0, "$lte": T0 + timedelta(hours=20)}})
    else:
        fn(Replay(coll.batches[:1], 1), flt)
    gc.collect()
    if traced:
        tracemalloc.start()
    with PeakRss() as rss:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(coll, flt)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {"wall": wall, "cpu": cpu, "rss_peak": rss.peak - rss.start,
              "rows": len(out.frame if method == "ours" else out[0])}
    if traced:
        result["traced_final"], result["traced_peak"] = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if method == "ours":
        result["decoded"] = out.decoded
        result["documents"] = out.documents
    if client is not None:
        client.close()
    return result


def in_child(method: str, source: dict[str, Any], traced: bool = False) -> dict[str, float]:
    """:func:`measure` in a fresh interpreter (run_all loads this file under another name,
    so the child imports it by path); the result comes back as JSON on stdout."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from bench.bench_backtest_read import measure; "
            "print(json.dumps(measure(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == '1')))")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT), method, json.dumps(source),
                           "1" if traced else "0"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {method} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def record_batches(coll: Any, n: int, path: Path) -> int:
    """The raw batches of the read, kept for the client-only replay."""
    import pickle

    from signal_export.consumer.source import PROJECTION

    batches = list(coll.find_raw_batches(query(n), PROJECTION, batch_size=BATCH))
    path.write_bytes(pickle.dumps(batches))
    return sum(len(b) for b in batches)


# --- report -------------------------------------------------------------------------------


def run(uri: str, n: int, big_server: int, big_client: int, rounds: int,
        tmp: Path) -> tuple[str, dict]:
    import pymongo

    client = pymongo.MongoClient(uri, tz_aware=True, socketTimeoutMS=3_600_000)
    db = f"bench_backtest_read_{os.getpid()}"
    coll = client[db]["crypto_signals"]
    facts: dict[str, Any] = {}
    try:
        facts["load_s"] = load(coll, n)
        server = {"kind": "server", "uri": uri, "db": db, "n": n}
        wire: dict[str, list[dict]] = {"ours": [], "baseline": []}
        for r in range(rounds):  # alternate the order: cache warmth favours neither side
            for method in (("ours", "baseline") if r % 2 == 0 else ("baseline", "ours")):
                wire[method].append(in_child(method, server))
        facts["wire"] = wire
        facts["wire_traced"] = {m: in_child(m, server, traced=True) for m in wire}
        path = tmp / "batches.pickle"
        facts["raw_bytes"] = record_batches(coll, n, path)
        replay = {"kind": "replay", "path": str(path), "times": 1, "n": n}
        local: dict[str, list[dict]] = {"ours": [], "baseline": []}
        for r in range(rounds):
            for method in (("ours", "baseline") if r % 2 == 0 else ("baseline", "ours")):
                local[method].append(in_child(method, replay))
        facts["local"] = local
        facts["local_traced"] = {m: in_child(m, replay, traced=True) for m in local}
        times = max(1, big_client // n)
        big = {**replay, "times": times}
        facts["local_big"] = (n * times, in_child("ours", big), in_child("ours", big, True))
        if big_server > n:
            facts["big_load_s"] = _grow(coll, n, big_server)
            big_srv = {**server, "n": big_server}
            facts["wire_big"] = (big_server, in_child("ours", big_srv),
                                 in_child("ours", big_srv, traced=True))
    finally:
        client.drop_database(db)
        client.close()
    return report(n, facts), facts


def _grow(coll: Any, have: int, want: int) -> float:
    t0 = time.perf_counter()
    for lo in range(have, want, 50_000):
        coll.insert_many(documents(lo, min(want, lo + 50_000)), ordered=False)
    return time.perf_counter() - t0


def _per_doc(rows: list[dict], key: str, n: int, scale: float) -> list[float]:
    return [r[key] / n * scale for r in rows]


def report(n: int, f: dict[str, Any]) -> str:
    def line(label: str, rows: list[dict], traced: dict, docs: int) -> str:
        wall = statistics.median(r["wall"] for r in rows) / docs * 1e6
        return (f"| {label} | {docs:,} | "
                f"{median_spread([r['wall'] / docs for r in rows], scale=1e6)} | "
                f"{median_spread([r['cpu'] / docs for r in rows], scale=1e6)} | "
                f"{median_spread([r['rss_peak'] / docs for r in rows], '{:.0f}')} | "
                f"{traced['traced_peak'] / docs:.0f} | {traced['traced_final'] / docs:.0f} |"
                f"{'' if wall else ''}")

    head = ("| read | documents | wall us/doc | client CPU us/doc | peak RSS growth B/doc | "
            "tracemalloc peak B/doc | kept (frame) B/doc |\n|---|---:|---:|---:|---:|---:|---:|")
    w, lo = f["wire"], f["local"]
    ours_cpu = statistics.median(r["cpu"] for r in lo["ours"]) / n * 1e6
    big_n, big_t, big_m = f["local_big"]
    big_cpu = big_t["cpu"] / big_n * 1e6
    big_peak = big_m["traced_peak"] / big_n
    big_rss = big_t["rss_peak"] / big_n
    peak_ok = max(big_peak, big_rss, f["local_traced"]["ours"]["traced_peak"] / n,
                  f["wire_traced"]["ours"]["traced_peak"] / n,
                  statistics.median(r["rss_peak"] for r in w["ours"]) / n,
                  statistics.median(r["rss_peak"] for r in lo["ours"]) / n) <= GOAL_BYTES
    cpu_ok = max(ours_cpu, big_cpu) <= GOAL_US
    wire_cpu = statistics.median(r["cpu"] for r in w["ours"]) / n * 1e6
    wall_wire = statistics.median(r["wall"] for r in w["ours"]) / n * 1e6
    ratio = lambda k, rows: (statistics.median(r[k] for r in rows["baseline"])  # noqa: E731
                             / statistics.median(r[k] for r in rows["ours"]))
    lines = [
        "## Backtest read: signal range in bounded memory (issue 21)\n",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/bench_backtest_read.py` on a "
        f"{os.cpu_count()}-core machine shared with other jobs (absolute times are noisy; the "
        "ratios are from paired rounds in the same run). 1h signals of 500 pairs, one strategy, "
        "0.1% malformed, `SignalSource`'s query and projection; batches of "
        f"{BATCH:,} documents ({f['raw_bytes'] / n:.0f} B of BSON per document after the "
        f"projection). Load of {n:,} documents: {f['load_s']:.0f} s. Every figure is one fresh "
        "process per read; medians (min-max) over paired rounds.\n",
        "Ours: `read_signal_range` (`find_raw_batches`, each batch read column-wise by "
        "`bson_columns`, odd documents decoded and given to `normalise_signals`, one frame "
        "sorted by (pair, ts) plus per-pair slices). Baseline: the one-query `load_range` "
        "it replaced: "
        "`normalise_signals(list(find(...)))`, stable sort, slices.\n",
        "### Over the wire (local dev server in its own process)\n", head,
        line("ours", w["ours"], f["wire_traced"]["ours"], n),
        line("baseline: list(find) + normalise", w["baseline"], f["wire_traced"]["baseline"], n),
    ]
    if "wire_big" in f:
        bn, bt, bm = f["wire_big"]
        lines.append(line("ours", [bt], bm, bn))
    lines += [
        "",
        f"Ratios baseline/ours over the wire: wall x{ratio('wall', w):.2f}, client CPU "
        f"x{ratio('cpu', w):.1f}, peak RSS growth x{ratio('rss_peak', w):.1f}. The wall time "
        f"(~{wall_wire:.0f} us/doc) is the dev server's: it decodes, projects and re-encodes "
        "every document in Python; a real mongod does that in C.\n",
        "### Client only (the same raw batches replayed from memory; the last row serves "
        f"the {n:,} documents' batches {big_n // n} times)\n", head,
        line("ours", lo["ours"], f["local_traced"]["ours"], n),
        line("baseline: decode_all + normalise", lo["baseline"], f["local_traced"]["baseline"],
             n),
        line("ours", [big_t], big_m, big_n),
        "",
        f"Ratios baseline/ours, client only: CPU x{ratio('cpu', lo):.1f}, peak RSS growth "
        f"x{ratio('rss_peak', lo):.1f}. At {big_n:,} documents: {big_cpu:.2f} us/doc CPU, "
        f"tracemalloc peak {big_peak:.0f} B/doc, RSS growth {big_rss:.0f} B/doc.\n",
        f"Goals: <= {GOAL_BYTES} B/doc peak: **{'met' if peak_ok else 'not met'}** (tracemalloc "
        "peak and RSS growth, 1M to 10M). <= 5 us/doc: the reader's own work (client only): "
        f"**{'met' if cpu_ok else 'not met'}** ({ours_cpu:.2f} us/doc at {n:,}, {big_cpu:.2f} "
        f"at {big_n:,}); client CPU over the wire, pymongo's receive included: "
        f"{wire_cpu:.2f} us/doc, **{'met' if wire_cpu <= GOAL_US else 'not met'}**; end to "
        f"end on the dev server: **not met** (~{wall_wire:.0f} us/doc, nearly all the "
        "server's own time; not reachable from the client side).\n",
        "What is left (client side, per document): pymongo receiving the raw batches, "
        f"{wire_cpu - ours_cpu:.1f} us (over the wire minus replay: socket reads, and one "
        "`RawBSONDocument` per document that `find_raw_batches` builds to re-join a batch: "
        "pymongo's, not ours); in ours, a one-step-per-document Python scan for document "
        "offsets, then numpy over the batch (element walk, codes, the `_kept_as_is` test), "
        "the final sort and the frame. Memory: the frame is 64 B/doc (8 columns of 8 bytes; "
        "the object columns point at one shared str per distinct value, where the baseline's "
        "hold a str per document: 200 B/doc); the peak adds the compact columns (~52 B/doc) "
        "and the sort order while the frame is built column by column.\n",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=os.environ.get("MONGO_BENCH_URI"))
    parser.add_argument("--quick", action="store_true", help="50,000 documents; print only")
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--big-server", type=int, default=3_000_000)
    parser.add_argument("--big-client", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv if argv is not None else [])
    if args.quick:
        args.docs, args.big_server, args.big_client, args.rounds = 50_000, 100_000, 200_000, 2
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (text, _), where = on_server(args.uri, lambda uri: run(
            uri, args.docs, args.big_server, args.big_client, args.rounds, Path(tmp)))
    write_section(RESULTS, text + f"\nServer: {where}.\n", quick=args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
