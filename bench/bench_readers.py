"""Benchmark: reading 1m candles with ``get_crypto_min_data`` vs a naive pymongo read.

Workload: N synthetic 1m bars (4 symbols) stored in ``crypto_market_1m`` on the
local MongoDB dev server (or ``MONGO_TEST_URI``), read back whole. Baseline,
measured in the same run: ``pd.DataFrame(list(coll.find(query, sort=...)))``
plus the same dtype conversions. The issue sets no speed goal for readers;
its goal is that a >= 1,000,000-row request works (streamed, projected,
indexed), so the table reports the ratio for context. Writes
``bench/results/readers.md``. Default 200,000 rows; ``--quick`` uses 40,000.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import pandas as pd
import pymongo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import timed, write_section  # noqa: E402
from bench._mongo import on_server  # noqa: E402
from research.data.market_store import MarketStore, candle_documents, validate_candles  # noqa: E402
from research.data.readers import get_crypto_min_data  # noqa: E402
from research.data.synthetic import SyntheticMarket, generate_ohlcv  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "readers.md"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")


def _load(store: MarketStore, rows: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    minutes = rows // len(SYMBOLS)
    start = pd.Timestamp("2024-01-01T00:00Z")
    end = start + pd.Timedelta(minutes=minutes)
    market = SyntheticMarket(seed=1, symbols=SYMBOLS)
    frame = validate_candles(generate_ohlcv(market, start, end, "1m"), "1m")
    store.ensure_indexes()
    keys, values = candle_documents(frame, "1m")
    docs = [{**k, **v} for k, v in zip(keys, values, strict=True)]
    for lo in range(0, len(docs), 50_000):
        store.collection("1m").insert_many(docs[lo:lo + 50_000], ordered=False)
    return start, end - pd.Timedelta(minutes=1)


def _baseline(store: MarketStore, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    query = {"symbol": {"$in": [f"BINANCE:{s.replace('/', '')}" for s in SYMBOLS]},
             "datetime": {"$gte": start.to_pydatetime(), "$lte": end.to_pydatetime()}}
    docs = list(store.collection("1m").find(query, sort=[("symbol", 1), ("datetime", 1)]))
    frame = pd.DataFrame(docs).drop(columns="_id")
    frame["datetime"] = pd.to_datetime(frame["datetime"], utc=True).astype("datetime64[ms, UTC]")
    return frame


def run(uri: str, rows: int, repeats: int = 3) -> str:
    client = pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000,
                                 socketTimeoutMS=600_000)
    db_name = f"bench_readers_{os.getpid()}"
    store = MarketStore(client[db_name])
    try:
        load_s, (start, end) = timed(_load, store, rows)
        ours_times, base_times = [], []
        for _ in range(repeats):  # alternate, so cache warmth favours neither side
            seconds, ours = timed(get_crypto_min_data, list(SYMBOLS), start, end, db=store,
                                  batch_size=100_000)
            ours_times.append(seconds)
            seconds, base = timed(_baseline, store, start, end)
            base_times.append(seconds)
        ours_s, base_s = statistics.median(ours_times), statistics.median(base_times)
    finally:
        client.drop_database(db_name)
        client.close()
    assert len(ours) == len(base), (len(ours), len(base))
    return "\n".join([
        "## Readers: `get_crypto_min_data`",
        "",
        f"{len(ours):,} 1m rows ({len(SYMBOLS)} symbols) read back whole from the local MongoDB "
        "dev server; baseline `pd.DataFrame(list(find(...)))` in the same run; medians of "
        f"{repeats} alternating runs. Both are bound by the server's reply rate.",
        "",
        "| measure | ours | baseline | ratio (baseline / ours) | goal |",
        "|---|---|---|---|---|",
        f"| read {len(ours):,} rows | {ours_s:.2f} s ({len(ours) / ours_s:,.0f} rows/s) | "
        f"{base_s:.2f} s | {base_s / ours_s:.2f}x | a >= 1,000,000-row request works, streamed in "
        "batches (no speed goal in the issue) |",
        f"| load (insert_many, context) | {load_s:.2f} s | | | |",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="40,000 rows")
    args, _ = parser.parse_known_args(argv)  # run_all.py passes its own argv through
    rows = 40_000 if args.quick else args.rows
    section, _ = on_server(os.environ.get("MONGO_TEST_URI"), lambda uri: run(uri, rows))
    write_section(RESULTS, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
