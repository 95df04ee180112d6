"""Benchmark: accepted signals/s through the ingest HTTP API vs the exporter called directly.

The API runs as ``python -m signal_export.ingest`` (real uvicorn, its own process) against a
MongoDB server (by default a fresh local dev server started here; ``--uri`` points at
another); one ``httpx.Client`` (keep-alive) posts new signals sequentially, in requests of
1 and of 500 signals. The baseline, in the same run and against the same server, calls
:func:`signal_export.exporter.export_signals` in this process on the same documents with
the same batching and an audit record per call, i.e. exactly the work behind each request
minus HTTP, JSON, auth and per-item results. The issue asks for the figure; our own target is
that HTTP costs at most half the throughput for batches of 500 (ratio >= 0.5).

Usage: ``python bench/bench_ingest.py [--quick] [--uri URI] [--repeat N]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_section  # noqa: E402
from _mongo import on_server  # noqa: E402

from signal_export.exporter import export_signals  # noqa: E402
from signal_export.ingest.server import bind_socket  # noqa: E402
from signal_export.ingest.tokens import hash_token, new_token  # noqa: E402
from signal_export.store import connect, ensure_runs_indexes, ensure_signal_indexes  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ingest.md"
TARGET_RATIO_500 = 0.5
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def signals(n: int, offset: int, strategy_id: str) -> list[dict]:
    """``n`` distinct 1m signals (JSON-ready), keys never reused across workloads."""
    out = []
    for i in range(offset, offset + n):
        ts = START + timedelta(minutes=i // len(PAIRS))
        out.append({"ts": ts.isoformat().replace("+00:00", "Z"), "timeframe": "1m",
                    "pair": PAIRS[i % len(PAIRS)], "strategy_id": strategy_id,
                    "action": "enter_long", "weight": 0.5, "score": (i % 97) / 97})
    return out


def as_records(docs: list[dict], source: str) -> list[dict]:
    """The same documents as the exporter gets them from the API (parsed time, source set)."""
    return [{**d, "ts": datetime.fromisoformat(d["ts"]), "source": source} for d in docs]


class ApiProcess:
    """``python -m signal_export.ingest`` on a free port with one producer token."""

    def __init__(self, uri: str, db: str, tmp: Path) -> None:
        self.token = new_token()
        tokens = tmp / "tokens.yaml"
        tokens.write_text(f"producers:\n  - name: bench\n    token_hash: "
                          f"'{hash_token(self.token)}'\n    strategy_ids: [bench_api]\n")
        sock = bind_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXT_SIG_")}
        env.update(EXT_SIG_INGEST_RATE_PER_SECOND="1000000", EXT_SIG_INGEST_RATE_BURST="1000000",
                   PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "signal_export.ingest", "serve", "--tokens", str(tokens),
             "--port", str(self.port), "--mongo-uri", uri, "--db", db, "--log-level", "warning",
             "--env-file", str(tmp / "none.env")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/v1/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest API did not start: {self.proc.stderr.read()}")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def run_api(api: ApiProcess, docs: list[dict], batch: int) -> float:
    with httpx.Client(base_url=api.url, timeout=60,
                      headers={"Authorization": f"Bearer {api.token}"}) as client:
        client.get("/v1/health")  # connection up before the clock starts
        t0 = time.perf_counter()
        for start in range(0, len(docs), batch):
            chunk = docs[start:start + batch]
            r = client.post("/v1/signals", json=chunk[0] if batch == 1 else chunk)
            if r.status_code != 200 or r.json()["counts"]["inserted"] != len(chunk):
                raise RuntimeError(f"API did not store the batch: {r.status_code} {r.text[:300]}")
        return time.perf_counter() - t0


def run_direct(db, docs: list[dict], batch: int) -> float:
    coll, runs = db["crypto_signals"], db["export_runs"]
    records = as_records(docs, "bench")
    t0 = time.perf_counter()
    for start in range(0, len(records), batch):
        result = export_signals(records[start:start + batch], coll, runs_collection=runs)
        if result.inserted != len(records[start:start + batch]):
            raise RuntimeError(f"exporter did not store the batch: {result.summary()}")
    return time.perf_counter() - t0


def measure(uri: str, sizes: dict[int, int], repeat: int) -> list[dict]:
    client = connect(uri, timeout_ms=10_000)
    stamp = int(time.time())
    api_db, direct_db = client[f"bench_ingest_api_{stamp}"], client[f"bench_ingest_dir_{stamp}"]
    for db in (api_db, direct_db):
        ensure_signal_indexes(db["crypto_signals"])
        ensure_runs_indexes(db["export_runs"])
    rows = []
    offset = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            api = ApiProcess(uri, api_db.name, Path(tmp))
            try:
                for batch, n_docs in sizes.items():
                    t_api, t_direct = [], []
                    for _ in range(repeat):
                        t_api.append(run_api(api, signals(n_docs, offset, "bench_api"), batch))
                        t_direct.append(run_direct(direct_db, signals(n_docs, offset,
                                                                      "bench_direct"), batch))
                        offset += n_docs
                    rows.append({"batch": batch, "docs": n_docs, "t_api": min(t_api),
                                 "t_direct": min(t_direct)})
            finally:
                api.close()
    finally:
        client.drop_database(api_db.name)
        client.drop_database(direct_db.name)
        client.close()
    return rows


def render(rows: list[dict], server: str, repeat: int) -> str:
    lines = [
        "## Signal ingest API: accepted signals/s over HTTP vs the exporter called directly",
        "",
        f"Server: {server}. API = `python -m signal_export.ingest` (uvicorn, own process), one "
        "keep-alive `httpx` client posting sequentially; every request is auth + rate limit + "
        "JSON + per-item contract validation + `export_signals` (idempotent upsert + audit "
        "record) + per-item results. Baseline = `export_signals` called in-process on the same "
        f"documents with the same batching and audit record. New keys only. Best of {repeat}. "
        "Issue goal: report the load figure for batches of 1 and 500 (2 cores); our target: "
        f"ratio >= {TARGET_RATIO_500} for batches of 500.",
        "",
        "| signals per request | signals | API signals/s | API ms/request | baseline signals/s "
        "| API / baseline | goal |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        api_rate, direct_rate = r["docs"] / r["t_api"], r["docs"] / r["t_direct"]
        per_request = r["t_api"] / (r["docs"] / r["batch"]) * 1000
        ratio = api_rate / direct_rate
        goal = (f"figure reported; >= {TARGET_RATIO_500}: "
                f"{'met' if ratio >= TARGET_RATIO_500 else 'NOT met'}"
                if r["batch"] >= 500 else "figure reported")
        lines.append(f"| {r['batch']} | {r['docs']:,} | {api_rate:,.0f} | {per_request:.2f} | "
                     f"{direct_rate:,.0f} | {ratio:.3f} | {goal} |")
    lines += ["", "Run: `python bench/bench_ingest.py` (`--quick` for a small run)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 single posts, 4 x 500")
    parser.add_argument("--uri", help="use this server instead of starting a local dev server")
    parser.add_argument("--repeat", type=int, default=2, help="runs per workload (best kept)")
    args = parser.parse_args(argv if argv is not None else [])
    sizes = {1: 60, 500: 2_000} if args.quick else {1: 400, 500: 10_000}
    repeat = 1 if args.quick else args.repeat
    rows, server = on_server(args.uri, lambda uri: measure(uri, sizes, repeat))
    write_section(RESULTS, render(rows, server, repeat), quick=args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
