"""``signal-reconcile``: what the bot did vs what the as_known backtest says it should have.

    signal-reconcile --from 2026-03-01T00:00 --to 2026-03-08T00:00 --config config.json \\
        --bot-db tradesv3.dryrun.sqlite --bot-log freqtrade.log --out reports/

Runs ``freqtrade backtesting`` over the period with a copy of ``--config`` whose
``ext_signals.signal_view`` is ``as_known`` (or reads ``--backtest-results``),
reads the bot's trades (``--bot-db`` | ``--bot-api`` | ``--writeback-bot``), the
signal versions of the period from MongoDB, the bot's outages/refusals from
its log, and prints the differences with their causes. ``--out`` writes
``reconcile.json`` and ``reconcile.html``; ``--metrics-textfile`` /
``--metrics-port`` publish the figures as Prometheus gauges. docs/RECONCILE.md.

Exit codes: 0 report made; 2 unusable input (a file, the config, MongoDB).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client import start_http_server, write_to_textfile
from pymongo.errors import PyMongoError

from signal_export.consumer.config import ConfigError as ExtSignalsConfigError
from signal_export.consumer.config import load_config as load_ext_signals
from signal_export.contract import ensure_utc
from signal_export.errors import BridgeError
from signal_export.logs import configure_logging
from signal_export.point_in_time import MODES, acting_delay
from signal_export.reconcile import classify, inputs, report
from signal_export.settings import load_settings

EXIT_OK, EXIT_INPUT = 0, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="signal-reconcile", description=__doc__.splitlines()[0],
                                epilog="exit codes: 0 report made, 2 unusable input")
    p.add_argument("--from", dest="start", required=True, help="period start (ISO, UTC)")
    p.add_argument("--to", dest="end", required=True, help="period end (ISO, UTC)")
    p.add_argument("--config", type=Path, help="the bot's Freqtrade config (timeframe, "
                   "max_open_trades, ext_signals); needed to run the backtest")
    p.add_argument("--timeframe", help="default: the config's timeframe")
    p.add_argument("--strategy-id", action="append", dest="strategy_ids",
                   help="producer(s) to read (repeatable); default: ext_signals.strategy_ids")
    bot = p.add_mutually_exclusive_group(required=True)
    bot.add_argument("--bot-db", help="Freqtrade's sqlite trades database (path or sqlite:///)")
    bot.add_argument("--bot-api", help="Freqtrade REST API URL, e.g. http://127.0.0.1:8080")
    bot.add_argument("--writeback-bot", help="bot name in ft_trades (the monitor's write-back)")
    p.add_argument("--bot-user", help="--bot-api user name")
    p.add_argument("--bot-password-env", help="variable holding the --bot-api password")
    p.add_argument("--bot-log", type=Path, help="the bot's log file (outages, refusals)")
    p.add_argument("--max-open-trades", type=int, help="default: the bot's/config's value")
    p.add_argument("--backtest-results", type=Path,
                   help="a Freqtrade backtest result (zip/json/folder) instead of running one")
    p.add_argument("--signal-view", choices=MODES, default="as_known",
                   help="signal view of the backtest this command runs (default as_known)")
    p.add_argument("--freqtrade-args", default="",
                   help="extra arguments for freqtrade backtesting, e.g. "
                        "\"--datadir user_data/data/binance --strategy-path user_data/strategies\"")
    p.add_argument("--strategy", default="ExternalSignalStrategy")
    p.add_argument("--workdir", type=Path, help="keep the backtest's config copy, results and "
                   "log here (default: a new temporary folder)")
    p.add_argument("--late-tolerance-s", type=float, default=None,
                   help="seconds after the candle close a signal may still arrive and count as "
                        "on time (default: as long as the strategy still acts on it, from "
                        "--config's ext_signals: the as_known backtest's deadline)")
    p.add_argument("--late-bars", type=int, default=1,
                   help="bars after the backtest's entry the bot's entry still matches")
    p.add_argument("--out", type=Path, help="folder for reconcile.json and reconcile.html")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    p.add_argument("--metrics-textfile", type=Path,
                   help="write the gauges here (node_exporter textfile collector)")
    p.add_argument("--metrics-port", type=int,
                   help="serve the gauges on this port until SIGTERM/SIGINT")
    p.add_argument("--metrics-addr", default="127.0.0.1")
    p.add_argument("--env-file", default=".env")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def _when(text: str, flag: str) -> pd.Timestamp:
    """An ISO time from the command line; without an offset it is UTC."""
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise inputs.ReconcileInputError(f"{flag} {text!r}: not an ISO date/time") from None
    if ts is pd.NaT:
        raise inputs.ReconcileInputError(f"{flag} {text!r}: not an ISO date/time")
    return ensure_utc(ts.tz_localize("UTC") if ts.tzinfo is None else ts, flag)


def _config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise inputs.ReconcileInputError(f"--config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise inputs.ReconcileInputError(f"--config {path}: not a JSON object")
    return data


def _late_tolerance(seconds: float | None, config: dict[str, Any], timeframe: str) -> timedelta:
    """``--late-tolerance-s``, else the strategy's own: how long after the close it still acts
    on a signal (:func:`signal_export.point_in_time.acting_delay` of its decision settings),
    so "late" means exactly what the ``as_known`` backtest leaves out."""
    if seconds is not None:
        if seconds < 0:
            raise inputs.ReconcileInputError(f"--late-tolerance-s {seconds}: must be >= 0")
        return timedelta(seconds=seconds)
    # only the timing settings matter here: strategy ids may come from --strategy-id instead
    ext = {"strategy_ids": ["reconcile"], **(config.get("ext_signals") or {})}
    try:
        cfg = load_ext_signals({**config, "timeframe": timeframe, "ext_signals": ext})
    except ExtSignalsConfigError as exc:
        raise inputs.ReconcileInputError(f"--config ext_signals: {exc}") from None
    return acting_delay(timeframe, cfg.to_rules().effective_max_delay)


def build(args: argparse.Namespace) -> report.Reconciliation:
    """Read every input and classify; the Reconciliation the outputs are made from."""
    start, end = _when(args.start, "--from"), _when(args.end, "--to")
    if end <= start:
        raise inputs.ReconcileInputError(f"--to {args.end} is not after --from {args.start}")
    config = _config(args.config)
    ext = config.get("ext_signals") or {}
    timeframe = args.timeframe or config.get("timeframe")
    if not timeframe:
        raise inputs.ReconcileInputError("timeframe: give --timeframe or a --config with one")
    rules = classify.Rules(timeframe, _late_tolerance(args.late_tolerance_s, config, timeframe),
                           late_bars=args.late_bars,
                           tolerance_bars=int(ext.get("tolerance_bars", 1)))
    sources: dict[str, str] = {}
    logs = pd.DataFrame(columns=["time", "level", "message"])
    locks = classify.BotContext().locks
    mot = inputs.max_open_trades(args.config) if args.config else None
    if args.bot_db:
        bot, locks = inputs.bot_db(args.bot_db)
        sources["bot"] = f"sqlite:{args.bot_db}"
    elif args.bot_api:
        from signal_export.monitoring.freqtrade_api import FreqtradeApi

        api = FreqtradeApi("bot", args.bot_api, args.bot_user, password_env=args.bot_password_env)
        bot, locks, api_mot, reply = inputs.bot_api(api)
        logs = inputs.log_entries_from_api(reply)
        mot = api_mot if api_mot is not None else mot
        sources["bot"] = f"api:{api.url}"
    else:
        bot = None
        sources["bot"] = f"writeback:{args.writeback_bot}"
    if args.bot_log:
        logs = pd.concat([logs, inputs.log_entries_from_file(args.bot_log)], ignore_index=True)
        sources["bot_log"] = str(args.bot_log)
    if args.max_open_trades is not None:
        mot = args.max_open_trades
    settings = load_settings(args.env_file, **{k: ext.get(k) for k in ("mongo_uri", "db",
                                                                      "collection")})
    strategy_ids = tuple(args.strategy_ids or ext.get("strategy_ids") or settings.strategy_ids)
    client = _client(settings)
    try:
        if bot is None:
            bot = inputs.bot_writeback(client[settings.db], args.writeback_bot,
                                       start.to_pydatetime(), end.to_pydatetime())
        versions = _versions(client, settings, start, end, rules, strategy_ids, timeframe)
    finally:
        client.close()
    if args.backtest_results:
        backtest = inputs.backtest_results(args.backtest_results)
        sources["backtest"] = f"file:{args.backtest_results}"
        signal_view = _view_of(args.backtest_results) or "unknown"
    else:
        if args.config is None:
            raise inputs.ReconcileInputError("--config: needed to run the backtest (or give "
                                             "--backtest-results)")
        extra = ["--strategy", args.strategy, "--timeframe", timeframe,
                 *shlex.split(args.freqtrade_args)]
        backtest, _ = inputs.run_backtest(args.config, start.to_pydatetime(),
                                          end.to_pydatetime(), signal_view=args.signal_view,
                                          extra_args=extra, workdir=args.workdir)
        signal_view = args.signal_view
        sources["backtest"] = "freqtrade backtesting"
    bot = _in_period(bot, start, end)
    backtest = classify.open_at_end(_in_period(backtest, start, end), end, rules.bar)
    ctx = classify.BotContext(max_open_trades=mot, outages=inputs.outages(logs), locks=locks,
                              refusals=inputs.refusals(logs))
    signals = classify.signal_timeliness(versions, rules, ctx.outages)
    signals = signals[(signals["ts"] >= start) & (signals["ts"] <= end)].reset_index(drop=True)
    rows = classify.classify(bot, backtest, signals, rules, ctx, end.to_pydatetime())
    return report.Reconciliation(
        start=start.to_pydatetime(), end=end.to_pydatetime(), timeframe=timeframe,
        signal_view=signal_view, sources=sources,
        settings={"late_tolerance_s": rules.tolerance.total_seconds(),
                  "late_bars": args.late_bars,
                  "tolerance_bars": rules.tolerance_bars, "max_open_trades": mot,
                  "strategy_ids": list(strategy_ids)},
        rows=rows, attribution=classify.attribution(rows), signals=signals,
        producers=classify.producer_lateness(signals), outages=ctx.outages, bot=bot,
        backtest=backtest, slippage=classify.slippage_summary(rows, bot))


def _client(settings: Any) -> Any:
    from signal_export.store import connect

    return connect(settings.mongo_uri, app_name="signal-reconcile")


def _versions(client: Any, settings: Any, start: pd.Timestamp, end: pd.Timestamp,
              rules: classify.Rules, strategy_ids: tuple[str, ...], timeframe: str
              ) -> pd.DataFrame:
    from signal_export.store import history_collection, signal_versions, signals_collection

    lookback = (rules.tolerance_bars + 1) * rules.bar
    return signal_versions(signals_collection(client, settings),
                           history_collection(client, settings),
                           (start - lookback).to_pydatetime(), end.to_pydatetime(),
                           strategy_ids=list(strategy_ids) or None, timeframe=timeframe)


def _view_of(path: Path) -> str | None:
    """The signal_view recorded in a result's config, where Freqtrade kept it."""
    try:
        from freqtrade.data.btanalysis import load_backtest_stats

        stats = load_backtest_stats(path)
        for strat in (stats.get("strategy") or {}).values():
            view = ((strat.get("strategy_config") or {}).get("ext_signals") or {}).get(
                "signal_view")
            return str(view) if view else "latest"
    except Exception:  # noqa: BLE001 - only a label for the report
        return None
    return None


def _in_period(trades: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    keep = (trades["open_time"] >= start) & (trades["open_time"] <= end)
    return trades[keep].reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        rec = build(args)
    except (BridgeError, ValueError, PyMongoError) as exc:
        print(f"signal-reconcile: {exc}", file=sys.stderr)
        return EXIT_INPUT
    data = report.to_json(rec)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report.write_json(rec, args.out / "reconcile.json")
        try:
            report.write_html(rec, args.out / "reconcile.html")
        except report.ReconcileOutputError as exc:
            print(f"signal-reconcile: {exc}", file=sys.stderr)
            return EXIT_INPUT
    print(json.dumps(data, indent=2) if args.json else report.text_table(rec))
    if args.metrics_textfile:
        write_to_textfile(str(args.metrics_textfile), report.registry(data))
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr=args.metrics_addr,
                          registry=report.registry(data))
        print(f"serving metrics on {args.metrics_addr}:{args.metrics_port}", file=sys.stderr,
              flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
    return EXIT_OK
