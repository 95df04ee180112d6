"""``make demo``: the whole chain, offline, on the embedded defaults.

local MongoDB dev server -> synthetic market stored in ``crypto_market`` ->
factors -> signals -> research backtest -> idempotent export to
``crypto_signals`` -> real ``freqtrade backtesting`` of ExternalSignalStrategy
against the exchange stand-in, with the trade-by-trade parity to the research
backtest printed -> a short ``freqtrade trade --dry-run`` replay in which
signals exported while the bot runs are traded.

Everything it writes lives under ``.demo/`` (git-ignored) and is rebuilt on
every run. Point it at a real MongoDB with ``DEMO_MONGO_URI=mongodb://...``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pymongo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devservers.exchange.server import ExchangeStandIn  # noqa: E402
from devservers.freqtrade_harness import (  # noqa: E402
    DryRunBot,
    freqtrade_env,
    leave_at_least,
    run_backtest,
    write_config,
)
from devservers.mongo.process import LocalMongoProcess  # noqa: E402
from research.backtest import simulate_long_flat_tidy  # noqa: E402
from research.data.freqtrade_candles import write_freqtrade_candles  # noqa: E402
from research.data.market_store import MarketStore, upsert_candles  # noqa: E402
from research.data.synthetic import SyntheticMarket, generate_ohlcv  # noqa: E402
from research.pipeline.config import config_as_dict, load_config, parse_config  # noqa: E402
from research.pipeline.run import run_pipeline  # noqa: E402
from signal_export import demo as export_demo  # noqa: E402
from signal_export.contract import symbol_to_pair  # noqa: E402
from signal_export.exporter import export_signals  # noqa: E402
from signal_export.logs import redact_uri  # noqa: E402
from signal_export.settings import load_settings  # noqa: E402
from signal_export.store import signals_collection  # noqa: E402

WORK = REPO / ".demo"
PIPELINE_CONFIG = REPO / "configs" / "pipeline.demo.yaml"
DRY_RUN_PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def mongo_smoke(client: pymongo.MongoClient) -> None:
    """Issue 3's check: write and read back a few documents, with timings."""
    coll = client["demo_smoke"]["docs"]
    coll.drop()
    docs = [{"i": i, "ts": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)}
            for i in range(1000)]
    t0 = time.perf_counter()
    coll.insert_many(docs)
    t1 = time.perf_counter()
    back = list(coll.find({"i": {"$gte": 100, "$lte": 199}}, {"_id": 0}).sort("i", 1))
    t2 = time.perf_counter()
    assert [d["i"] for d in back] == list(range(100, 200)) and back[0]["ts"].tzinfo is not None
    print(f"insert_many 1,000 docs: {1000 * (t1 - t0):.0f} ms; range find 100 docs: "
          f"{1000 * (t2 - t1):.1f} ms; read back exactly what was written")
    client.drop_database("demo_smoke")


def parity_table(research_trades: pd.DataFrame, ft_trades: pd.DataFrame) -> bool:
    """Print research vs Freqtrade trades side by side; True when they agree trade by trade."""
    ours = research_trades.assign(pair=research_trades["symbol"].astype(str).map(symbol_to_pair))
    ours = ours.sort_values(["pair", "entry_time"]).reset_index(drop=True)
    theirs = ft_trades.sort_values(["pair", "open_date"]).reset_index(drop=True)
    rows, same = [], len(ours) == len(theirs)
    for i in range(max(len(ours), len(theirs))):
        r = ours.iloc[i] if i < len(ours) else None
        f = theirs.iloc[i] if i < len(theirs) else None
        match = (r is not None and f is not None and r["pair"] == f["pair"]
                 and r["entry_time"] == f["open_date"] and r["exit_time"] == f["close_date"]
                 and abs(r["entry_price"] / f["open_rate"] - 1) < 1e-9
                 and abs(r["exit_price"] / f["close_rate"] - 1) < 1e-9)
        same &= bool(match)
        def fill(t, time_col: str, price_col: str) -> str | None:
            return None if t is None else f"{t[time_col]:%Y-%m-%d} @ {t[price_col]:.4f}"

        rows.append({
            "pair": (r if r is not None else f)["pair"],
            "research entry": fill(r, "entry_time", "entry_price"),
            "freqtrade entry": fill(f, "open_date", "open_rate"),
            "research exit": fill(r, "exit_time", "exit_price"),
            "freqtrade exit": fill(f, "close_date", "close_rate"),
            "same": "yes" if match else "NO",
        })
    table = pd.DataFrame(rows)
    print(table.head(12).to_string(index=False))
    if len(table) > 12:
        print(f"... {len(table) - 12} more trades")
    return same


def dry_run_replay(mongo_uri: str, standin: ExchangeStandIn, settings) -> None:
    """Signals exported while a dry-run bot runs are traded within a bot loop or two."""
    userdir = WORK / "dry-run"
    userdir.mkdir(parents=True)
    db_path = userdir / "trades.sqlite"
    config = write_config(userdir / "config.json", "config.dry-run.json", standin.overlay(), {
        "timeframe": "1m", "db_url": f"sqlite:///{db_path}",
        "internals": {"process_throttle_secs": 1},
        "exchange": {"pair_whitelist": list(DRY_RUN_PAIRS)},
        "ext_signals": {"strategy_ids": ["demo_replay"]},
    })
    coll = signals_collection(pymongo.MongoClient(mongo_uri, tz_aware=True), settings)

    def export(pair: str, action: str) -> datetime:
        ts = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
        result = export_signals(pd.DataFrame([{
            "ts": ts, "timeframe": "1m", "pair": pair, "strategy_id": "demo_replay",
            "action": action, "version": 1}]), coll)
        print(f"  {datetime.now(UTC):%H:%M:%S} exported {action} {pair} for the {ts:%H:%M} "
              f"candle ({result.summary()})", flush=True)
        return ts

    env = freqtrade_env(EXT_SIG_MONGO_URI=mongo_uri, EXT_SIG_DB=settings.db)
    with DryRunBot(config, userdir, db_path, env) as bot:
        bot.wait_for(lambda: "ExternalSignalStrategy reads" in bot.log_text(), 120, "bot start")
        print(f"  {datetime.now(UTC):%H:%M:%S} freqtrade trade --dry-run is up (1m, 3 pairs)")
        leave_at_least(20)  # the enters' candle stays the newest closed one while the bot reads
        for pair in ("BTC/USDT", "ETH/USDT"):
            export(pair, "enter_long")
        opened = bot.wait_for(lambda: [t for t in bot.trades() if t["is_open"]] if len(
            [t for t in bot.trades() if t["is_open"]]) >= 2 else None, 30, "two trades to open")
        print(f"  {datetime.now(UTC):%H:%M:%S} bot opened {[t['pair'] for t in opened]}")
        entry_minute = datetime.now(UTC).replace(second=0, microsecond=0)
        print("  waiting for the next candle to close before exporting the exit ...", flush=True)
        while datetime.now(UTC) < entry_minute + timedelta(minutes=1, seconds=1):
            time.sleep(1)
        export("BTC/USDT", "exit_long")
        bot.wait_for(lambda: [t for t in bot.trades() if t["pair"] == "BTC/USDT"
                              and not t["is_open"]], 30, "BTC/USDT to close")
        trades = pd.DataFrame(bot.trades())
    cols = ["pair", "is_open", "open_date", "open_rate", "close_date", "close_rate",
            "enter_tag", "exit_reason"]
    print(trades[cols].to_string(index=False))


def main() -> int:
    started = time.perf_counter()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    external_uri = os.environ.get("DEMO_MONGO_URI")
    server = None
    if external_uri:
        uri = external_uri
    else:
        server = LocalMongoProcess(data_dir=WORK / "mongo", log_file=WORK / "mongod.log").start()
        uri = server.uri
    try:
        step("1/6 MongoDB")
        print(f"server: {redact_uri(uri)}"
              + ("" if external_uri else "  (local development server, devservers/mongo)"))
        client = pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000)
        mongo_smoke(client)
        settings = load_settings(env_file=None, mongo_uri=uri, db="demo_signals",
                                 market_db="demo_market")

        step("2/6 Exporter: synthetic signal set, exported twice, latest per pair")
        export_demo.run_demo(client, settings, datetime.now(UTC))

        step("3/6 Market data: synthetic 1d candles stored in crypto_market")
        config = load_config(PIPELINE_CONFIG)
        seed = config.data.seed
        pairs = [symbol_to_pair(s) for s in config.universe]
        market = SyntheticMarket(seed=seed, symbols=tuple(pairs))
        start, end = pd.Timestamp(config.start, tz="UTC"), pd.Timestamp(config.end, tz="UTC")
        candles = generate_ohlcv(market, start, end + pd.Timedelta(days=1), "1d")
        stored = upsert_candles(candles, MarketStore.from_settings(settings, client), "1d")
        print(f"{len(candles)} candles for {', '.join(pairs)}: {stored}")

        step("4/6 Research pipeline: factors -> signals -> backtest -> report -> export")
        as_mongo = config_as_dict(config) | {"data": {"kind": "mongo"},
                                             "report": {"output_dir": str(WORK / "report")}}
        config = parse_config(as_mongo, source=str(PIPELINE_CONFIG))
        result = run_pipeline(config, client=client, settings=settings)
        summary = result.summary()
        m = summary["metrics"]
        print(f"{summary['signals']} signals ({summary['enter_long']} enter / "
              f"{summary['exit_long']} exit); backtest: {m['n_trades']} trades, return "
              f"{m['total_return']:+.2%}, Sharpe {m['sharpe']:.2f}, max drawdown "
              f"{m['max_drawdown']:.2%}")
        print(f"export: {summary['export']}")
        print(f"report: {result.report_dir / 'report.html'}")
        again = run_pipeline(config, client=client, settings=settings)
        print(f"same pipeline again -> export: {again.summary()['export']}")

        step("5/6 freqtrade backtesting of ExternalSignalStrategy reading those signals")
        fee = config.backtest.fee
        research = simulate_long_flat_tidy(result.market, result.positions,
                                           timeframe=config.timeframe, fee=fee)
        with ExchangeStandIn(pairs=pairs, seed=seed) as standin:
            userdir = WORK / "backtest"
            datadir = userdir / "data" / "binance"
            write_freqtrade_candles(candles, datadir, config.timeframe)
            bt_config = write_config(userdir / "config.json", "config.backtest.json",
                                     standin.overlay(), {
                                         "timeframe": config.timeframe, "fee": fee,
                                         "max_open_trades": len(config.universe),
                                         "stake_amount": 1000, "dry_run_wallet": 100_000,
                                         "exchange": {"pair_whitelist": pairs},
                                         # the pipeline's own decision settings
                                         "ext_signals": {
                                             "strategy_ids": [config.export.strategy_id],
                                             **config.ext_signals.model_dump()}})
            timerange = f"{start:%Y%m%d}-{end + pd.Timedelta(days=1):%Y%m%d}"
            env = freqtrade_env(EXT_SIG_MONGO_URI=uri, EXT_SIG_DB=settings.db)
            ft_trades = run_backtest(bt_config, userdir, datadir, config.timeframe, timerange, env)
            print(f"research (no slippage, fee {fee}): {len(research.trades)} trades; "
                  f"freqtrade backtesting: {len(ft_trades)} trades")
            at_end = int((ft_trades["exit_reason"] == "force_exit").sum())
            if at_end:  # both sides close what is open at the last candle's open
                print(f"({at_end} position(s) still open at the end of the data: both sides "
                      "close them at the last candle's open, Freqtrade's force_exit)")
            same = parity_table(research.trades, ft_trades)
            print("PARITY: identical trades, open ones included (pairs, entry/exit times, "
                  "prices to 1e-9)" if same else "PARITY: MISMATCH - see the table above")

            step("6/6 freqtrade trade --dry-run replay (about a minute)")
            dry_run_replay(uri, standin, settings)
        print(f"\nDemo finished in {time.perf_counter() - started:.0f} s. "
              f"Everything it wrote is under {WORK.relative_to(REPO)}/.")
        return 0 if same else 1
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
