"""``research``: the researcher's command line - import data, factors, signals, pipelines.

    research pipeline CONFIG [--dry-run | --no-export] [--latest [--now T] [--bars N]] [--json]
    research factors --symbols BTC/USDT,ETH/USDT --start 2025-01-01 --end 2025-12-31 \\
                     --timeframe 1d --factors rsi,macd --out factors.parquet [--synthetic-seed 7]
    research signals --config CONFIG --out signals.parquet [--export]
    (pipeline, factors, signals: [--workers N | --scheduler tcp://host:8786] computes the
    factors on a Dask cluster, same results; default: in this process)
    research import-synthetic --symbols BTC/USDT,ETH/USDT --timeframe 1d --start D --end D
    research import-file PATH --timeframe 1d [--symbol BTC/USDT] [--tz UTC] [--map 'Time=datetime']
    research import-exchange --exchange binance --pairs BTC/USDT,ETH/USDT --timeframe 1m \
                     --start 2024-06-01 [--end 2024-06-30] [--exchange-config ccxt.json]
    research list factors|generators [--json]

MongoDB comes from the environment / ``.env`` (``EXT_SIG_MONGO_URI``, ``EXT_SIG_DB``,
``MARKET_MONGO_URI``, ``MARKET_DB``; see ``configs/.env.example``); ``--mongo-uri``
points signals and market data at one server. Exit status: 0 done, 1 some signals
were rejected at export, 2 bad input or config, 3 MongoDB failed, 4 the exchange
failed (network, refused, after the retries), 5 the Dask cluster failed (scheduler
unreachable, no worker, a worker lost), 130 interrupted (a re-run resumes).
Progress goes to stderr (``--quiet`` hides it). Not a scheduler: see the
scheduler's own command.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pymongo.errors import PyMongoError
from tqdm import tqdm

from research.data.bars import BarsError
from research.data.file_import import import_ohlcv_file
from research.data.market_store import (
    STORED_TIMEFRAMES,
    MarketStore,
    UpsertResult,
    is_derived_timeframe,
    last_stored_bar,
    upsert_candles,
)
from research.data.synthetic import SyntheticMarket, generate_ohlcv
from research.factors import FactorError, compute_factors, list_factors
from research.factors.cluster import ClusterError, open_cluster
from research.pipeline import (
    MarketDataError,
    PipelineConfig,
    PipelineConfigError,
    load_config,
    run_latest,
    run_pipeline,
)
from research.pipeline.config import MongoSource, SyntheticSource, bar_range, parse_bound
from research.pipeline.market import load_candles, load_market
from research.pipeline.run import export_frame, generate_signals, open_targets
from research.pipeline.run import factor_frame as pipeline_factors
from research.signals.base import GeneratorError
from research.signals.expression import RuleError
from research.signals.registry import (
    COMMON_PARAMS,
    generator_parameters,
    generator_summary,
    list_generators,
)
from signal_export.contract import OHLCV_FIELDS, ContractError, timeframe_seconds, to_symbol
from signal_export.errors import BridgeError
from signal_export.exporter import ExportError
from signal_export.logs import configure_logging, redact_uri
from signal_export.settings import Settings, load_settings

EXIT_OK, EXIT_REJECTED, EXIT_INPUT, EXIT_MONGO, EXIT_EXCHANGE, EXIT_CLUSTER = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
INPUT_ERRORS = (PipelineConfigError, MarketDataError, ContractError, FactorError,
                GeneratorError, RuleError, BarsError, ValueError, OSError)


def _settings(args: argparse.Namespace) -> Settings:
    uri = getattr(args, "mongo_uri", None)
    return load_settings(args.env_file, mongo_uri=uri, market_mongo_uri=uri,
                         db=getattr(args, "db", None), market_db=getattr(args, "market_db", None))


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    head = f"pipeline {summary['pipeline']} ({summary['strategy_id']}, {summary['timeframe']})"
    if "bar" in summary:  # the newest-bar run
        lines = [f"{head}: bar {summary['bar']}, {summary['symbols']} symbols with a candle"
                 + (f" (missing: {', '.join(summary['missing_symbols'])})"
                    if summary["missing_symbols"] else "")]
    else:
        lines = [f"{head}: {summary['symbols']} symbols, {summary['bars']:,} bars"]
    actions = [a for a in ("enter_long", "exit_long", "enter_short", "exit_short")
               if a in summary]
    lines[0] += (f", {summary['signals']:,} signals ("
                 + ", ".join(f"{summary[a]} {a}" for a in actions) + ")")
    m = summary.get("metrics")
    if m:
        from research.backtest.format import format_metric

        lines.append("backtest: " + ", ".join(f"{k}={format_metric(k, v)}"
                                              for k, v in m.items()))
    exp = summary.get("export")
    if exp is None:
        lines.append("export: off")
    else:
        counts = " ".join(f"{k}={exp[k]}" for k in ("submitted", "inserted", "updated",
                                                     "unchanged", "stale_version", "rejected",
                                                     "failed"))
        lines.append(f"export -> {exp['target']}{' (dry run)' if exp['dry_run'] else ''}: "
                     f"{counts}")
    if summary.get("report"):
        lines.append(f"report: {summary['report']}")
    print("\n".join(lines))


def _export_status(export: Any) -> int:
    if export is not None and (export.rejected or export.failed):
        for err in export.errors[:20]:
            print(f"rejected: {err}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


# --- commands -------------------------------------------------------------------


def _load(args: argparse.Namespace) -> PipelineConfig:
    """The config file, with ``--db`` (a command-line choice) beating ``export.db``."""
    config = load_config(args.config)
    if args.db and config.export.db and args.db != config.export.db:
        config = config.model_copy(update={"export": config.export.model_copy(
            update={"db": args.db})})
    return config


def cmd_pipeline(args: argparse.Namespace) -> int:
    config = _load(args)
    export = False if args.no_export else None
    dry = True if args.dry_run else None
    if args.latest and (args.workers is not None or args.scheduler is not None):
        raise ValueError("--workers/--scheduler do not apply to --latest (the newest bar is "
                         "computed in this process)")
    if args.latest:
        now = pd.Timestamp(args.now) if args.now else None
        res = run_latest(config, now=now, settings=_settings(args), export=export, dry_run=dry,
                         bars=args.bars)
        summary = res.summary()
        _print_summary(summary, args.json)
        return _export_status(res.export)
    with open_cluster(args.workers, args.scheduler) as cluster:
        result = run_pipeline(config, settings=_settings(args), export=export, dry_run=dry,
                              output_dir=args.output_dir, progress=not args.quiet,
                              cluster=cluster)
    _print_summary(result.summary(), args.json)
    return _export_status(result.export)


def parse_factor_list(text: str) -> list[str | dict[str, Any]]:
    """``"rsi,sma:period=50,macd:fast=8:slow=21"`` -> factor requests for compute_factors."""
    requests: list[str | dict[str, Any]] = []
    for item in _split(text):
        name, *pairs = item.split(":")
        if not pairs:
            requests.append(name)
            continue
        params: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"--factors {item!r}: expected name:param=value[:param=value]")
            params[key] = yaml.safe_load(value)  # 50 -> int, 2.0 -> float, text stays text
        requests.append({"name": name, "params": params})
    return requests


def cmd_factors(args: argparse.Namespace) -> int:
    symbols = [to_symbol(s) for s in _split(args.symbols)]
    factors = parse_factor_list(args.factors)
    if not symbols or not factors:
        raise ValueError("--symbols and --factors must each name at least one item")
    lo, hi = bar_range(parse_bound(args.start, "--start"), parse_bound(args.end, "--end"),
                       args.timeframe)
    if hi <= lo:
        raise ValueError(f"--end {args.end} is before --start {args.start}")
    cross = _split(args.cross_section) if args.cross_section else None
    source = (SyntheticSource(seed=args.synthetic_seed) if args.synthetic_seed is not None
              else MongoSource())
    store = None if args.synthetic_seed is not None else MarketStore.from_settings(
        _settings(args))
    try:
        with open_cluster(args.workers, args.scheduler) as cluster, tqdm(
                total=2, desc="factors", unit="step", disable=args.quiet, leave=False) as bar:
            bar.set_postfix_str("market data")
            market = load_candles(source, symbols, args.timeframe, lo, hi, store=store)
            bar.update()
            bar.set_postfix_str("factors")
            frame = compute_factors(market, factors, cross_section=cross,
                                    keep=OHLCV_FIELDS if args.keep_ohlcv else (),
                                    cluster=cluster)
            bar.update()
    finally:
        if store is not None:
            store.db.client.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    for name, why in (frame.attrs.get("skipped") or {}).items():
        print(f"skipped factor {name}: {why}", file=sys.stderr)
    print(f"factors: {len(frame):,} rows x {frame.shape[1] - 2} columns for "
          f"{frame['symbol'].nunique()} symbols -> {out}")
    return EXIT_OK


def cmd_signals(args: argparse.Namespace) -> int:
    config = _load(args)
    with open_targets(config, None, _settings(args), write=args.export) as mongo:
        with open_cluster(args.workers, args.scheduler) as cluster, tqdm(
                total=3, desc=config.name, unit="step", disable=args.quiet, leave=False) as bar:
            market = load_market(config, store=mongo.market)
            bar.update()
            factors = pipeline_factors(config, market, cluster=cluster)
            bar.update()
            signals = generate_signals(config, factors)
            bar.update()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        signals.to_parquet(out, index=False)
        print(f"signals: {len(signals):,} rows ({config.export.strategy_id}, "
              f"{config.timeframe}) -> {out}")
        if not args.export:
            return EXIT_OK
        summary = export_frame(config, signals, mongo, now=None, run_id=str(uuid.uuid4()),
                               dry_run=False)
    print(f"export -> {summary.target}: " + " ".join(f"{k}={v}"
                                                     for k, v in summary.counts().items()))
    return _export_status(summary)


def _chunks(lo: pd.Timestamp, hi: pd.Timestamp, timeframe: str) -> list[tuple]:
    """1m imports go one UTC day at a time (bounded memory, a progress tick per day)."""
    if timeframe != "1m":
        return [(lo, hi)]
    cuts = [lo, *pd.date_range(lo.floor("D") + pd.Timedelta(days=1), hi, freq="D",
                               inclusive="left"), hi]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def cmd_import_synthetic(args: argparse.Namespace) -> int:
    symbols = tuple(_split(args.symbols))
    market = SyntheticMarket(seed=args.seed, symbols=symbols, gap_rate=args.gap_rate)
    lo, hi = bar_range(parse_bound(args.start, "--start"), parse_bound(args.end, "--end"),
                       args.timeframe)
    if hi <= lo:
        raise ValueError(f"--end {args.end} is before --start {args.start}")
    store = MarketStore.from_settings(_settings(args))
    total = UpsertResult()
    try:
        for a, b in tqdm(_chunks(lo, hi, args.timeframe), desc=f"import {args.timeframe}",
                         unit="day" if args.timeframe == "1m" else "chunk",
                         disable=args.quiet, leave=False):
            frame = generate_ohlcv(market, a, b, args.timeframe)
            if len(frame):
                total = total + upsert_candles(frame, store, args.timeframe)
    finally:
        store.db.client.close()
    print(f"import-synthetic {args.timeframe} {len(symbols)} symbols -> "
          f"{store.db.name}.{store.collection(args.timeframe).name}: inserted={total.inserted} "
          f"updated={total.updated} unchanged={total.unchanged}")
    return EXIT_OK


def cmd_import_file(args: argparse.Namespace) -> int:
    mapping = {}
    for item in args.map or []:
        if "=" not in item:
            raise ValueError(f"--map {item!r}: expected FILE_COLUMN=canonical_column")
        key, value = item.split("=", 1)
        mapping[key.strip()] = value.strip()
    store = MarketStore.from_settings(_settings(args))
    try:
        res = import_ohlcv_file(args.path, db=store, timeframe=args.timeframe,
                                columns=mapping or None, symbol=args.symbol, tz=args.tz)
    finally:
        store.db.client.close()
    print(f"import-file {args.path} -> {store.db.name}.{store.collection(args.timeframe).name}: "
          f"inserted={res.inserted} updated={res.updated} unchanged={res.unchanged}")
    return EXIT_OK


class ExchangeFailed(BridgeError):
    """The exchange could not be reached or refused a request (exit status 4)."""


def _exchange_config(path: str | None) -> dict[str, Any]:
    """The ccxt constructor config from ``--exchange-config``: a ccxt config object, or a
    Freqtrade config / exchange overlay (its ``exchange.ccxt_config`` is used)."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"--exchange-config {path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--exchange-config {path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--exchange-config {path}: expected a JSON object, got "
                         f"{type(data).__name__}")
    exchange = data.get("exchange")
    if isinstance(exchange, dict) and isinstance(exchange.get("ccxt_config"), dict):
        return dict(exchange["ccxt_config"])  # a Freqtrade config or the stand-in's overlay
    return data


def make_exchange(exchange_id: str, config: dict[str, Any]) -> Any:
    """A ccxt client for ``exchange_id`` (e.g. ``binance``), ``config`` merged into its
    constructor config (ccxt deep-merges it over the exchange's own description)."""
    import ccxt

    name = exchange_id.strip().lower()
    if name not in ccxt.exchanges:
        close = difflib.get_close_matches(name, ccxt.exchanges, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else \
            "ccxt exchange ids, e.g. binance, bybit, kraken, okx"
        raise ValueError(f"unknown exchange {exchange_id!r} ({hint})")
    return getattr(ccxt, name)({"timeout": 30_000, **config, "enableRateLimit": True})


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _when(ts: pd.Timestamp | None, timeframe: str = "1m") -> str:
    if ts is None:
        return "-"
    return ts.strftime("%Y-%m-%d" if timeframe == "1d" else "%Y-%m-%d %H:%M")


def _bars(n: int) -> str:
    return f"{n:,} bar" + ("" if n == 1 else "s")


def _import_summary(report: Any, *, exchange: str, store: MarketStore, seconds: float,
                    newest: dict[str, pd.Timestamp | None], max_rows: int = 20) -> str:
    """One screen: a row per symbol (first ``max_rows``), totals, requests, gaps."""
    tf = report.timeframe
    coll = store.collection(tf)
    items = list(report.symbols.values())
    head = (f"{'symbol':<18} {'fetched':>9} {'inserted':>9} {'updated':>8} {'unchanged':>9}  "
            f"{'first fetched':<16}  {'last fetched':<16}  {'stored up to':<16}  gaps")
    lines = [f"import-exchange {exchange} {tf} -> {store.db.name}.{coll.name}", head]
    for item in items[:max_rows]:
        r = item.result
        lines.append(f"{item.symbol:<18} {item.fetched:>9,} {r.inserted:>9,} {r.updated:>8,} "
                     f"{r.unchanged:>9,}  {_when(item.first, tf):<16}  "
                     f"{_when(item.last, tf):<16}  {_when(newest.get(item.symbol), tf):<16}  "
                     f"{len(item.gaps)}")
    if len(items) > max_rows:
        lines.append(f"... {len(items) - max_rows} more symbols (in the totals)")
    total = report.result
    fetched = sum(i.fetched for i in items)
    gaps = report.gaps
    lines.append(f"{'total':<18} {fetched:>9,} {total.inserted:>9,} {total.updated:>8,} "
                 f"{total.unchanged:>9,}")
    lines.append(f"{report.requests:,} requests, {report.retries:,} retries, {seconds:.1f} s; "
                 f"{len(gaps)} gaps ({sum(g.missing_bars for g in gaps):,} bars missing at the "
                 "exchange, not filled)")
    for gap in gaps[:3]:
        lines.append(f"  gap {gap.symbol} {_when(gap.start, tf)} .. {_when(gap.end, tf)} "
                     f"({_bars(gap.missing_bars)})")
    if len(gaps) > 3:
        lines.append(f"  ... {len(gaps) - 3} more gaps (--gaps-csv FILE lists them all)")
    if fetched == 0:
        lines.append("nothing new: every symbol is stored up to the last closed bar of the "
                     "range (a re-run resumes after the newest stored bar)")
    return "\n".join(lines)


def cmd_import_exchange(args: argparse.Namespace) -> int:
    import ccxt

    from research.data.ccxt_import import import_ohlcv

    timeframe_seconds(args.timeframe)  # not a timeframe at all -> ContractError
    if args.timeframe not in STORED_TIMEFRAMES:
        derived = is_derived_timeframe(args.timeframe)
        raise ValueError(
            f"timeframe {args.timeframe!r}: the market store keeps {', '.join(STORED_TIMEFRAMES)}"
            + (f" and derives {args.timeframe} from 1m when read - import --timeframe 1m"
               if derived else ""))
    symbols = []
    for item in _split(args.pairs):
        try:
            symbols.append(to_symbol(item))
        except ContractError as exc:
            raise ValueError(f"--pairs {item!r}: expected a pair like BTC/USDT or a symbol "
                             f"like BINANCE:BTCUSDT ({exc})") from None
    if not symbols:
        raise ValueError("--pairs must name at least one pair, e.g. BTC/USDT")
    if args.limit < 1 or args.max_retries < 0 or not args.backoff >= 0:
        raise ValueError("--limit must be >= 1, --max-retries and --backoff >= 0")
    lo = pd.Timestamp(_bound_ts(parse_bound(args.start, "--start")))
    until = None
    if args.end:
        hi = bar_range(parse_bound(args.start, "--start"), parse_bound(args.end, "--end"),
                       args.timeframe)[1]
        if hi <= lo:
            raise ValueError(f"--end {args.end} is before --start {args.start}")
        until = hi - pd.Timedelta(milliseconds=1)
    exchange = make_exchange(args.exchange, _exchange_config(args.exchange_config))
    store = MarketStore.from_settings(_settings(args))
    started = time.monotonic()
    try:
        report = import_ohlcv(exchange, symbols, args.timeframe, db=store, since=lo,
                              until=until, limit=args.limit, max_retries=args.max_retries,
                              backoff_s=args.backoff, progress=not args.quiet)
        newest = {s: last_stored_bar(store, s, args.timeframe) for s in report.symbols}
    except KeyboardInterrupt:
        print("interrupted: what was fetched is stored; re-run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ccxt.BadSymbol, ccxt.BadRequest) as exc:
        raise ValueError(f"exchange {exchange.id}: {_short(exc)}") from None
    except ccxt.BaseError as exc:
        raise ExchangeFailed(f"exchange {exchange.id}: {type(exc).__name__}: "
                             f"{_short(exc)}") from None
    finally:
        store.db.client.close()
    if args.gaps_csv:
        report.gap_frame().to_csv(args.gaps_csv, index=False)
    print(_import_summary(report, exchange=exchange.id, store=store,
                          seconds=time.monotonic() - started, newest=newest))
    return EXIT_OK


def _bound_ts(value: Any) -> pd.Timestamp:
    return bar_range(value, value, "1m")[0]


def _factor_rows() -> list[dict[str, Any]]:
    return [{"name": name, "parameters": {k: f.describe_param(k) for k in f.defaults},
             "defaults": dict(f.defaults), "outputs": list(f.outputs),
             "requires": sorted(f.requires), "doc": (f.doc.splitlines() or [""])[0]}
            for name, f in sorted(list_factors().items())]


def _generator_rows() -> list[dict[str, Any]]:
    rows = []
    for name, cls in list_generators().items():
        params = generator_parameters(cls)
        rows.append({"name": name, "doc": generator_summary(cls),
                     "parameters": {p.name: p.text() for p in params if not p.common},
                     "defaults": {p.name: p.default for p in params
                                  if not p.common and not p.required},
                     "required": [p.name for p in params if p.required and not p.common]})
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    rows = _factor_rows() if args.what == "factors" else _generator_rows()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    width = max(len(r["name"]) for r in rows) + 2
    pad = " " * width
    lines = []
    if args.what == "factors":
        lines.append(f"{len(rows)} factors (pipeline: factors: [{{name: rsi, params: "
                     "{period: 7}}]; CLI: --factors rsi:period=7)")
        for r in rows:
            params = ", ".join(r["parameters"].values()) or "(no parameters)"
            lines.append(f"{r['name']:<{width}}{params}")
            lines.append(f"{pad}-> {', '.join(r['outputs'])}; needs {', '.join(r['requires'])}")
            lines.append(f"{pad}{r['doc']}")
    else:
        lines.append(f"{len(rows)} generators (pipeline: generator: {{type: NAME, params: "
                     "{...}})")
        for r in rows:
            lines.append(f"{r['name']:<{width}}{r['doc']}")
            for text in r["parameters"].values():
                lines.append(f"{pad}{text}")
        lines.append(f"every generator also takes {', '.join(COMMON_PARAMS)}; a pipeline fills "
                     "strategy_id, timeframe and version from its export block and timeframe")
    print("\n".join(lines))
    return EXIT_OK


# --- parser ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="research", description="Research side: import data, factors, signals, pipelines.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mongo-uri", help="MongoDB for signals and market data "
                        "(overrides EXT_SIG_MONGO_URI and MARKET_MONGO_URI)")
    common.add_argument("--db", help="signals database (overrides EXT_SIG_DB)")
    common.add_argument("--market-db", help="market database (overrides MARKET_DB)")
    common.add_argument("--env-file", default=".env", help="dotenv file (default: .env)")
    common.add_argument("--log-level", default="WARNING")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    dask = argparse.ArgumentParser(add_help=False)
    one = dask.add_mutually_exclusive_group()  # default: neither, compute in this process
    one.add_argument("--workers", type=int, metavar="N",
                     help="compute the factors on a LocalCluster of N worker processes "
                          "started on this machine (same results)")
    one.add_argument("--scheduler", metavar="ADDRESS",
                     help="compute the factors on a running Dask cluster, e.g. "
                          "tcp://host:8786 (dask scheduler / dask worker; same results)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pipeline", parents=[common, dask],
                       help="run a pipeline config: data -> factors -> signals -> backtest -> "
                            "report -> export")
    p.add_argument("config", help="pipeline YAML/JSON file (see configs/pipeline.demo.yaml)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="validate signals, write nothing")
    mode.add_argument("--no-export", action="store_true", help="skip the export step")
    p.add_argument("--output-dir", help="report folder (overrides report.output_dir)")
    p.add_argument("--latest", action="store_true",
                   help="only the newest closed bar (the scheduled job's run; no report)")
    p.add_argument("--now", help="with --latest: the clock, ISO time with offset")
    p.add_argument("--bars", type=int, default=1,
                   help="with --latest: back-fill the signals of the last N bars (default 1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_pipeline)

    f = sub.add_parser("factors", parents=[common, dask], help="compute factors to a Parquet file")
    f.add_argument("--symbols", required=True, help="comma list, BTC/USDT or BINANCE:BTCUSDT")
    f.add_argument("--start", required=True, help="first day (YYYY-MM-DD) or ISO time")
    f.add_argument("--end", required=True, help="last day (inclusive) or ISO time")
    f.add_argument("--timeframe", default="1d")
    f.add_argument("--factors", required=True,
                   help="comma list, e.g. rsi,macd,sma:period=50 (name:param=value)")
    f.add_argument("--cross-section", help="rank and/or zscore, comma separated")
    f.add_argument("--keep-ohlcv", action="store_true", help="keep the OHLCV input columns")
    f.add_argument("--synthetic-seed", type=int,
                   help="use the synthetic market with this seed instead of MongoDB")
    f.add_argument("--out", required=True, help="output .parquet")
    f.set_defaults(func=cmd_factors)

    s = sub.add_parser("signals", parents=[common, dask],
                       help="compute a pipeline config's signals to Parquet, optionally export")
    s.add_argument("--config", required=True)
    s.add_argument("--out", required=True, help="output .parquet")
    s.add_argument("--export", action="store_true", help="also export them to MongoDB")
    s.set_defaults(func=cmd_signals)

    i = sub.add_parser("import-synthetic", parents=[common],
                       help="store synthetic candles in crypto_market / crypto_market_1m")
    i.add_argument("--symbols", required=True)
    i.add_argument("--timeframe", choices=["1m", "1d"], default="1d")
    i.add_argument("--start", required=True, help="first day (YYYY-MM-DD) or ISO time")
    i.add_argument("--end", required=True, help="last day (inclusive) or ISO time (exclusive)")
    i.add_argument("--seed", type=int, default=7)
    i.add_argument("--gap-rate", type=float, default=0.0, help="missing-bar runs per day")
    i.set_defaults(func=cmd_import_synthetic)

    fi = sub.add_parser("import-file", parents=[common],
                        help="store candles from a CSV/Parquet file")
    fi.add_argument("path")
    fi.add_argument("--timeframe", choices=["1m", "1d"], required=True)
    fi.add_argument("--symbol", help="symbol of every row when the file has no symbol column")
    fi.add_argument("--tz", help="zone of naive timestamps in the file (e.g. UTC)")
    fi.add_argument("--map", action="append", metavar="FILE_COL=COL",
                    help="rename a file column to a canonical one (repeatable)")
    fi.set_defaults(func=cmd_import_file)

    ie = sub.add_parser("import-exchange", parents=[common],
                        help="download OHLCV from an exchange (ccxt) into the market store: "
                             "paged, resumable, idempotent, rate-limited")
    ie.add_argument("--exchange", default="binance", help="ccxt exchange id (default: binance)")
    ie.add_argument("--pairs", "--symbols", dest="pairs", required=True,
                    help="comma list, BTC/USDT or BINANCE:BTCUSDT")
    ie.add_argument("--timeframe", default="1m",
                    help="1m or 1d, the stored timeframes (5m, 15m, 1h, 4h ... are derived "
                         "from 1m when read); default 1m")
    ie.add_argument("--start", required=True, help="first day (YYYY-MM-DD) or ISO time")
    ie.add_argument("--end", help="last day (inclusive) or ISO time; default: the last closed "
                                  "bar")
    ie.add_argument("--exchange-config", metavar="FILE.json",
                    help="merged into the ccxt constructor config (API URLs, options, keys); "
                         "a Freqtrade config's exchange.ccxt_config is taken as is")
    ie.add_argument("--limit", type=int, default=1000, help="bars per request (default 1000)")
    ie.add_argument("--max-retries", type=int, default=6,
                    help="retries of a rate-limited or failed request (default 6)")
    ie.add_argument("--backoff", type=float, default=1.0,
                    help="first retry delay in seconds, doubling (default 1)")
    ie.add_argument("--gaps-csv", metavar="FILE", help="write every gap found to this CSV")
    ie.set_defaults(func=cmd_import_exchange)

    ls = sub.add_parser("list", help="list the registered factors or signal generators with "
                                     "their parameters and defaults")
    ls.add_argument("what", choices=["factors", "generators"])
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--log-level", default="WARNING")
    ls.set_defaults(func=cmd_list)
    return parser


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except ExportError as exc:
        print(f"error: {redact_uri(str(exc))}", file=sys.stderr)
        return EXIT_MONGO
    except ExchangeFailed as exc:
        print(f"error: {redact_uri(str(exc))}", file=sys.stderr)
        return EXIT_EXCHANGE
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    except PyMongoError as exc:
        short = str(exc).split(" (configured timeouts")[0].split(", Timeout:")[0]
        print(f"error: MongoDB: {type(exc).__name__}: {redact_uri(short)}", file=sys.stderr)
        return EXIT_MONGO
    except RuntimeError as exc:  # e.g. index creation failed
        print(f"error: {redact_uri(str(exc))}", file=sys.stderr)
        return EXIT_MONGO
    except INPUT_ERRORS as exc:
        print(f"error: {redact_uri(str(exc))}", file=sys.stderr)
        return EXIT_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    return _run(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
