"""Benchmark: ExternalSignalStrategy reading MongoDB vs the same signals computed in the frame.

Workload 1 (issue 7): ``freqtrade backtesting --cache none`` (real CLI, local
exchange stand-in, candles written with Freqtrade's data handler) of
``ExternalSignalStrategy`` reading exported signals from the local MongoDB dev
server, against a baseline strategy that computes the *same* signals inside
``populate_indicators`` (no I/O). 5 paired rounds (order alternating), judged on
the median of the per-round ratios; the CLI's wall time counts the strategy's
import and ``custom_stake_amount``, and the in-process breakdown lists both.
Both must produce the same trades. Goal: <= 1.05x.

Workload 2: the per-loop live read for 500 pairs (``SignalSource.refresh``:
one query + normalise) against the naive baseline of one query per pair.

Usage: ``python bench/bench_strategy.py [--quick]`` (quick: 5 pairs x 60 days,
2 rounds, 50 pairs per loop).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import write_section  # noqa: E402
from signal_export.consumer.config import load_config  # noqa: E402
from signal_export.consumer.source import SignalSource  # noqa: E402
from signal_export.store import ensure_signal_indexes  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "strategy.md"
FREQTRADE = str(Path(sys.executable).with_name("freqtrade"))
GOAL_BACKTEST = 1.05
BASES = ["BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "LTC", "AVAX", "DOT", "LINK", "ATOM",
         "NEAR", "UNI", "ETC", "FIL", "APT", "ARB", "OP", "SUI"]
SMA = 24
START = datetime(2025, 1, 1, tzinfo=UTC)

BASELINE_STRATEGY = '''
from freqtrade.strategy import IStrategy


class BenchPrecomputedStrategy(IStrategy):
    """Same signals as the exported ones, computed in the frame: the no-I/O baseline."""
    INTERFACE_VERSION = 3
    timeframe = "1h"
    minimal_roi = {"0": 100}
    stoploss = -0.99
    process_only_new_candles = False

    def populate_indicators(self, df, metadata):
        pos = (df["close"] > df["close"].rolling(SMA_BARS).mean()).astype(int)
        prev = pos.shift(1).fillna(0).astype(int)
        df["sig_enter"] = ((pos == 1) & (prev == 0)).astype(int)
        df["sig_exit"] = ((pos == 0) & (prev == 1)).astype(int)
        return df

    def populate_entry_trend(self, df, metadata):
        df["enter_long"] = df["sig_enter"]
        return df

    def populate_exit_trend(self, df, metadata):
        df["exit_long"] = df["sig_exit"]
        return df
'''.replace("SMA_BARS", str(SMA))


def candles(pair_index: int, n_bars: int) -> pd.DataFrame:
    """A seeded random walk around 100 (prices in the stand-in's precision are irrelevant here)."""
    rng = np.random.default_rng(1000 + pair_index)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    dates = pd.date_range(START, periods=n_bars, freq="1h", tz="UTC").astype("datetime64[ms, UTC]")
    return pd.DataFrame({"date": dates, "open": open_, "high": np.maximum(open_, close) * 1.002,
                         "low": np.minimum(open_, close) * 0.998, "close": close,
                         "volume": np.full(n_bars, 1000.0)})


def signals(pair: str, frame: pd.DataFrame) -> pd.DataFrame:
    """enter/exit on changes of (close > SMA), exactly the baseline strategy's rule."""
    pos = (frame["close"] > frame["close"].rolling(SMA).mean()).astype(int)
    prev = pos.shift(1).fillna(0).astype(int)
    change = pos != prev
    return pd.DataFrame({
        "ts": frame.loc[change, "date"], "timeframe": "1h",
        "symbol": "BINANCE:" + pair.replace("/", ""), "pair": pair, "strategy_id": "bench",
        "action": np.where(pos[change] == 1, "enter_long", "exit_long"), "version": 1,
    })


def insert(coll, frame: pd.DataFrame) -> None:
    """Plain insert_many (the exporter's own cost is benchmarked in bench_exporter)."""
    docs = frame.to_dict("records")
    for d in docs:
        d["ts"] = pd.Timestamp(d["ts"]).to_pydatetime()
    coll.insert_many(docs, ordered=False)


def run_backtest(tmp: Path, cfg: Path, strategy: str, strategy_dir: Path, timerange: str,
                 env: dict) -> tuple[float, int]:
    out = tmp / f"bt-{strategy}"
    out.mkdir(exist_ok=True)
    cmd = [FREQTRADE, "backtesting", "-c", str(cfg), "--userdir", str(tmp), "--datadir",
           str(tmp / "data" / "binance"), "--strategy", strategy, "--strategy-path",
           str(strategy_dir), "--timerange", timerange, "--cache", "none", "--export", "trades",
           "--backtest-directory", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{strategy} backtest failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    from freqtrade.data.btanalysis import load_backtest_data

    return wall, len(load_backtest_data(out))


def bench_backtest(tmp: Path, uri: str, standin_overlay: dict, n_pairs: int, days: int,
                   repeats: int) -> dict:
    from freqtrade.data.history import get_datahandler

    pairs = [f"{b}/USDT" for b in BASES[:n_pairs]]
    n_bars = days * 24
    handler = get_datahandler(tmp / "data" / "binance", "feather")
    (tmp / "data" / "binance").mkdir(parents=True, exist_ok=True)
    import pymongo

    client = pymongo.MongoClient(uri, tz_aware=True)
    coll = client["bench"]["crypto_signals"]
    ensure_signal_indexes(coll)
    n_signals = 0
    for i, pair in enumerate(pairs):
        frame = candles(i, n_bars)
        handler.ohlcv_store(pair, "1h", frame, candle_type="spot")
        sig = signals(pair, frame)
        n_signals += len(sig)
        insert(coll, sig)
    client.close()
    base = json.loads((ROOT / "configs" / "config.backtest.json").read_text())
    base.update({"max_open_trades": n_pairs, "stake_amount": 1000, "dry_run_wallet": 1e7,
                 "timeframe": "1h", "ext_signals": {"strategy_ids": ["bench"]}})
    base["exchange"] = {**standin_overlay["exchange"], "pair_whitelist": pairs,
                        "pair_blacklist": []}
    cfg = tmp / "config.json"
    cfg.write_text(json.dumps(base))
    strategy_dir = tmp / "strategies"
    strategy_dir.mkdir(exist_ok=True)
    (strategy_dir / "BenchPrecomputedStrategy.py").write_text(BASELINE_STRATEGY)
    ext_dir = ROOT / "user_data" / "strategies"
    end = (START + timedelta(hours=n_bars)).strftime("%Y%m%d")
    timerange = f"{START:%Y%m%d}-{end}"
    env = bench_env()
    env.update(EXT_SIG_MONGO_URI=uri, EXT_SIG_DB="bench")
    times: dict[str, list[float]] = {"ext": [], "base": []}
    trades: dict[str, int] = {}
    run_backtest(tmp, cfg, "ExternalSignalStrategy", ext_dir, timerange, env)  # bytecode, warm
    run_backtest(tmp, cfg, "BenchPrecomputedStrategy", strategy_dir, timerange, env)
    for r in range(repeats):  # paired rounds, the order alternating so drift hits both alike
        for which in (("base", "ext") if r % 2 == 0 else ("ext", "base")):
            if which == "base":
                w, trades["base"] = run_backtest(tmp, cfg, "BenchPrecomputedStrategy",
                                                 strategy_dir, timerange, env)
            else:
                w, trades["ext"] = run_backtest(tmp, cfg, "ExternalSignalStrategy", ext_dir,
                                                timerange, env)
            times[which].append(w)
        print(f"round {r}: base {times['base'][-1]:.2f} s, ext {times['ext'][-1]:.2f} s",
              flush=True)
    if trades["ext"] != trades["base"]:
        raise RuntimeError(f"different trades: {trades}")
    ratios = [e / b for e, b in zip(times["ext"], times["base"], strict=True)]
    return {"pairs": n_pairs, "bars": n_bars, "signals": n_signals, "trades": trades["ext"],
            "base": statistics.median(times["base"]), "ext": statistics.median(times["ext"]),
            "base_range": (min(times["base"]), max(times["base"])),
            "ext_range": (min(times["ext"]), max(times["ext"])),
            "ratio": statistics.median(ratios), "ratio_range": (min(ratios), max(ratios)),
            "repeats": repeats}


def bench_env() -> dict:
    """The subprocesses' environment: no EXT_SIG_* of ours, and bytecode cached as an installed
    package has it (PYTHONDONTWRITEBYTECODE would recompile every module on every run)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("EXT_SIG_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def import_cost(env: dict, rounds: int) -> float:
    """Seconds a fresh interpreter spends importing the strategy file beyond what Freqtrade's
    own strategy interface costs (paired subprocesses, median)."""
    strategy = ROOT / "user_data" / "strategies" / "ExternalSignalStrategy.py"
    base = "import freqtrade.strategy"
    ours = (f"{base}; import importlib.util as u; s = u.spec_from_file_location('s', "
            f"{str(strategy)!r}); m = u.module_from_spec(s); s.loader.exec_module(m)")
    extra = []
    subprocess.run([sys.executable, "-c", ours], check=True, env=env, cwd=ROOT)  # bytecode
    for _ in range(rounds):
        t = []
        for code in (base, ours):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
            t.append(time.perf_counter() - t0)
        extra.append(t[1] - t[0])
    return statistics.median(extra)


def breakdown(uri: str, n_pairs: int, n_bars: int) -> dict:
    """In-process split of the strategy's backtest overhead: the one query vs our own work."""
    from signal_export.consumer.logic import ExternalSignalLogic

    pairs = [f"{b}/USDT" for b in BASES[:n_pairs]]
    frames = {p: candles(i, n_bars) for i, p in enumerate(pairs)}
    logic = ExternalSignalLogic({"timeframe": "1h", "ext_signals": {"strategy_ids": ["bench"]}},
                                live=False, env={"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": "bench"})
    first, last = frames[pairs[0]]["date"].iloc[0], frames[pairs[0]]["date"].iloc[-1]
    t0 = time.perf_counter()
    docs = logic.source._query(pairs, (first - pd.Timedelta(hours=10)).to_pydatetime(),
                               last.to_pydatetime())
    t1 = time.perf_counter()
    logic.source._ingest(docs, pairs)
    t2 = time.perf_counter()
    logic.source._range, logic.source._range_pairs = (first, last), set(pairs)
    logic.source.available = True
    entries = 0
    for p, f in frames.items():
        out = logic.populate(f, p, pairs)
        entries += int(out["ext_enter_long"].sum())
    t3 = time.perf_counter()
    start = (first - pd.Timedelta(hours=10)).to_pydatetime()
    logic.source._count_outside(pairs, start, last.to_pydatetime(), written_since=None)
    t4 = time.perf_counter()
    # Freqtrade calls custom_stake_amount once per entry it places
    for _ in range(entries):
        logic.stake(1000.0, 1e7, "ext:bench:v1")
    t5 = time.perf_counter()
    logic.source.close()
    return {"docs": len(docs), "query": t1 - t0, "ingest": t2 - t1, "populate": t3 - t2,
            "count": t4 - t3, "stake": t5 - t4, "entries": entries}


def bench_loop_read(uri: str, n_pairs: int, loops: int) -> dict:
    """Live read: 500 pairs, signals for the last 8 bars each, one query vs one per pair."""
    import pymongo

    pairs = [f"P{i:04d}/USDT" for i in range(n_pairs)]
    now = datetime(2026, 1, 10, 0, 0, 30, tzinfo=UTC)
    rows = [{"ts": now - timedelta(seconds=30) - timedelta(hours=h), "timeframe": "1h",
             "symbol": "BINANCE:" + p.replace("/", ""), "pair": p, "strategy_id": "loop",
             "action": "enter_long" if h % 2 else "exit_long", "version": 1}
            for p in pairs for h in range(1, 9)]
    client = pymongo.MongoClient(uri, tz_aware=True)
    ensure_signal_indexes(client["loopbench"]["crypto_signals"])
    insert(client["loopbench"]["crypto_signals"], pd.DataFrame(rows))
    cfg = load_config({"timeframe": "1h", "ext_signals": {"strategy_ids": ["loop"]}},
                      env={"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": "loopbench"})
    source = SignalSource(cfg, client=client)
    source.refresh(pairs, now)  # warm the connection
    one = []
    for _ in range(loops):
        t0 = time.perf_counter()
        source.refresh(pairs, now)
        one.append(time.perf_counter() - t0)
    coll = client["loopbench"]["crypto_signals"]
    start = now - cfg.lookback_bars * timedelta(hours=1)
    per_pair = []
    for _ in range(max(1, loops // 5)):
        t0 = time.perf_counter()
        for p in pairs:
            list(coll.find({"strategy_id": "loop", "pair": p, "timeframe": "1h",
                            "ts": {"$gte": start}}))
        per_pair.append(time.perf_counter() - t0)
    n_docs = sum(len(source.signals_for(p)) for p in pairs)
    client.close()
    return {"pairs": n_pairs, "docs": n_docs, "one": statistics.median(one),
            "per_pair": statistics.median(per_pair), "loops": loops}


def render(bt: dict, loop: dict, quick: bool) -> str:
    ratio = bt["ratio"]
    sp = bt["split"]
    met = "met" if ratio <= GOAL_BACKTEST else "NOT met"
    speed = loop["per_pair"] / loop["one"]
    ours = sp["ingest"] + sp["populate"] + sp["stake"] + sp["import"]
    return f"""## ExternalSignalStrategy: backtesting from MongoDB, and the live per-loop read

Real `freqtrade backtesting --cache none` (subprocess, exchange stand-in, local MongoDB dev server
in a separate process), {bt['pairs']} pairs x {bt['bars']:,} 1h bars, {bt['signals']:,} exported
signals, {bt['trades']:,} trades (identical in both). Baseline: a strategy computing the same
signals in `populate_indicators` (no I/O, no `custom_stake_amount`). {bt['repeats']} paired
rounds (the order alternating, after one untimed run each), bytecode cached as for an installed
package; wall time of the whole CLI run, so the strategy's import and
Freqtrade's `custom_stake_amount` calls are in it; the ratio is the median of the per-round
ratios. {"Quick run (`--quick`): small sizes." if quick else ""}

| workload | median wall s (min-max) | ratio vs baseline, median (min-max) | goal |
|---|---:|---:|---|
| baseline: signals computed in the frame | {bt['base']:.2f} \
({bt['base_range'][0]:.2f}-{bt['base_range'][1]:.2f}) | 1.00x | baseline |
| ExternalSignalStrategy reading MongoDB | {bt['ext']:.2f} \
({bt['ext_range'][0]:.2f}-{bt['ext_range'][1]:.2f}) | {ratio:.3f}x \
({bt['ratio_range'][0]:.3f}-{bt['ratio_range'][1]:.3f}) | <= {GOAL_BACKTEST}x: {met} |

Where the extra time goes (in-process, same data, one run): importing the strategy file beyond
Freqtrade's own strategy interface {sp['import']:.2f} s (fresh interpreters, median of 3
paired), the one MongoDB query for all pairs {sp['query']:.2f} s ({sp['docs']:,} documents),
normalising them {sp['ingest']:.2f} s, matching them onto {bt['pairs']} frames
{sp['populate']:.2f} s, the count of documents outside the whitelist (one `aggregate`)
{sp['count']:.2f} s, `custom_stake_amount` for the {sp['entries']:,} entries {sp['stake']:.3f} s.
Load average when the run ended (2 cores, shared): {os.getloadavg()[1]:.1f} (5 min); a
spread of the per-round ratios far from 1.0 means other work on the machine, not the strategy.
Our own CPU work (import, normalise, match, stake) is {ours / bt['base'] * 100:.1f}% of the
baseline; the query and the count are the local dev server's time (a Python wire-protocol
server, much slower than mongod at returning or counting many documents).

Live read per bot loop, {loop['pairs']} pairs, {loop['docs']:,} signals in the window
(median of {loop['loops']} loops):

| workload | median ms / loop | speed-up vs baseline | goal |
|---|---:|---:|---|
| one query per pair (baseline) | {loop['per_pair'] * 1000:.1f} | 1.0x | baseline |
| `SignalSource.refresh`: one query for all pairs + normalise | {loop['one'] * 1000:.1f} \
| {speed:.1f}x | one query per loop (no figure set) |

One query for all pairs saves 499 round trips per loop; the dev server answers the 500-value
`$in` on `pair` from its index (one indexed range per value). The one-query-per-loop design is
checked by a test with pymongo command monitoring. mongod was not available here to compare.

Run: `python bench/bench_strategy.py` (`--quick` for a small run).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    n_pairs, days, repeats, loop_pairs, loops = (5, 60, 2, 50, 5) if args.quick else (
        20, 365, 5, 500, 20)
    from devservers.exchange.server import ExchangeStandIn
    from devservers.mongo.process import LocalMongoProcess

    pairs = [f"{b}/USDT" for b in BASES[:n_pairs]]
    with tempfile.TemporaryDirectory() as tmp, LocalMongoProcess(data_dir=Path(tmp) / "m") as db, \
            ExchangeStandIn(pairs=pairs) as standin:
        bt = bench_backtest(Path(tmp), db.uri, standin.overlay(), n_pairs, days, repeats)
        bt["split"] = breakdown(db.uri, n_pairs, days * 24)
        bt["split"]["import"] = import_cost(bench_env(), 3)
        loop = bench_loop_read(db.uri, loop_pairs, loops)
    write_section(RESULTS, render(bt, loop, args.quick))


if __name__ == "__main__":
    main(sys.argv[1:])
