"""Running a pipeline config: market data -> factors -> signals -> backtest -> report -> export.

:func:`run_pipeline` is the one-call research run over the config's whole date
range; :func:`run_latest` is the scheduled job's run for the newest closed bar
only (incremental factors over :func:`research.factors.history_length` bars of
history, no backtest, no report). Both export through
:func:`signal_export.exporter.export_signals`, so a re-run stores nothing new
(0 inserted, 0 updated) and every run leaves an audit record. Where the data
lives: an explicit ``db`` (a pymongo ``Database``) serves both the market
collections and the signal collections (tests, single-database setups);
otherwise :class:`signal_export.settings.Settings` (environment / ``.env``)
name the market and signal databases, and the config's ``export.db`` /
``export.collection`` override the signal ones. MongoDB is only contacted when
the data source is ``mongo`` or the export writes. :func:`run_pipeline` can
compute its factors on a Dask cluster (``cluster=``, same results);
:func:`run_latest` always runs in process (milliseconds of work a bar). Not a
scheduler.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from tqdm import tqdm

from research.backtest import BacktestResult, simulate_long_flat_tidy, simulate_long_short_tidy
from research.data.market_store import MarketStore
from research.factors import compute_factors, history_length, latest_factors
from research.factors.registry import add_cross_section
from research.pipeline.config import MongoSource, PipelineConfig, config_as_dict
from research.pipeline.market import history_start, load_market
from research.pipeline.positions import Decisions, decide_positions
from research.pipeline.report import write_report, write_run_info
from research.signals import build_generator
from signal_export.contract import OHLCV_FIELDS, ensure_utc, floor_to_bar, timeframe_delta
from signal_export.exporter import ExportCounts, code_version, export_signals
from signal_export.settings import Settings, load_settings
from signal_export.store import connect, ensure_runs_indexes, ensure_signal_indexes
from signal_export.validate import validate_batch

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)


# --- results ------------------------------------------------------------------


@dataclass
class ExportSummary(ExportCounts):
    """What the export did (or, with ``dry_run``, would do): the exporter's counts, and where."""

    target: str = ""
    dry_run: bool = False
    run_id: str | None = None
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return self.count_dict()


@dataclass
class PipelineResult:
    """Everything one pipeline run produced; :meth:`summary` is what the CLI prints."""

    config: PipelineConfig
    run_id: str
    market: pd.DataFrame
    factors: pd.DataFrame
    signals: pd.DataFrame
    positions: pd.DataFrame
    backtest: BacktestResult
    report_dir: Path
    report_files: dict[str, Path]
    export: ExportSummary | None
    #: What the decision rule did with the signals (the bot's outcome buckets).
    decisions: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        m = self.backtest.metrics
        return {
            "pipeline": self.config.name,
            "run_id": self.run_id,
            "strategy_id": self.config.export.strategy_id,
            "timeframe": self.config.timeframe,
            "symbols": len(self.config.universe),
            "bars": len(self.market),
            "signals": len(self.signals),
            **action_counts(self.signals),
            "decisions": dict(sorted(self.decisions.items())),
            "metrics": {"total_return": m.total_return, "cagr": m.cagr, "sharpe": m.sharpe,
                        "max_drawdown": m.max_drawdown, "n_trades": m.n_trades,
                        "win_rate": m.win_rate, "exposure": m.exposure},
            "export": None if self.export is None else {
                "target": self.export.target, "dry_run": self.export.dry_run,
                **self.export.counts()},
            "report": str(self.report_dir / "report.html"),
        }


def action_counts(signals: pd.DataFrame) -> dict[str, int]:
    """enter_long/exit_long counts, and enter_short/exit_short where the signals short."""
    counts = signals["action"].dropna().value_counts()
    out = {a: int(counts.get(a, 0)) for a in ("enter_long", "exit_long")}
    out.update({a: int(counts[a]) for a in ("enter_short", "exit_short") if a in counts})
    return out


@dataclass
class LatestResult:
    """The newest-bar run: the bar, its factor rows, its signals and the export.

    ``bar`` is the newest bar; with back-fill the signals cover a few bars up to it.
    """

    bar: pd.Timestamp
    factors: pd.DataFrame
    signals: pd.DataFrame
    export: ExportSummary | None
    #: Universe symbols with no candle at ``bar`` (not stored yet, or a gap): no signal for them.
    missing_symbols: list[str] = field(default_factory=list)
    config: PipelineConfig | None = None

    def summary(self) -> dict[str, Any]:
        config = self.config
        return {
            "pipeline": config.name if config else None,
            "strategy_id": config.export.strategy_id if config else None,
            "timeframe": config.timeframe if config else None,
            "bar": self.bar.isoformat(),
            "symbols": int((self.factors["datetime"] == self.bar).sum()),
            "missing_symbols": list(self.missing_symbols),
            "signals": len(self.signals),
            **action_counts(self.signals),
            "export": None if self.export is None else {
                "target": self.export.target, "dry_run": self.export.dry_run,
                **self.export.counts()},
        }


# --- where things live ----------------------------------------------------------


@dataclass
class MongoTargets:
    """The collections a run reads and writes (``None``: not needed by this run)."""

    signals: Collection | None
    runs: Collection | None
    market: MarketStore | None
    settings: Settings


@contextmanager
def open_targets(config: PipelineConfig, db: Database | None, settings: Settings | None,
                 *, write: bool, client: MongoClient | None = None) -> Iterator[MongoTargets]:
    """Collections for the run; connects (and closes) only when something needs MongoDB.

    ``db`` serves market and signal collections alike; a caller's ``client`` (the
    scheduler keeps one open) is used for both the signal and the market database
    of the settings and is left open; otherwise clients are made from the settings.
    """
    settings = settings or load_settings()
    need_market = isinstance(config.data, MongoSource)
    if db is not None:
        coll = config.export.collection or settings.collection
        targets = MongoTargets(db[coll] if write else None,
                               db[settings.export_runs_collection] if write else None,
                               MarketStore(db, settings.market_1d_collection,
                                           settings.market_1m_collection), settings)
        _prepare_export(targets)
        yield targets
        return
    clients: list[MongoClient] = []  # the ones made here, closed here
    try:
        signals = runs = market = None
        if write:
            writer = client or connect(settings.mongo_uri, app_name="research-pipeline")
            if client is None:
                clients.append(writer)
            sdb = writer[config.export.db or settings.db]
            signals = sdb[config.export.collection or settings.collection]
            runs = sdb[settings.export_runs_collection]
        if need_market:
            reader = client
            if reader is None:
                if clients and settings.market_uri == settings.mongo_uri:
                    reader = clients[0]
                else:
                    reader = connect(settings.market_uri, app_name="research-market")
                    clients.append(reader)
            market = MarketStore.from_settings(settings, reader)
        targets = MongoTargets(signals, runs, market, settings)
        _prepare_export(targets)
        yield targets
    finally:
        for client in clients:
            client.close()


def _prepare_export(targets: MongoTargets) -> None:
    """Indexes at start (idempotent): also proves MongoDB is reachable before any work."""
    if targets.signals is not None and targets.runs is not None:
        s = targets.settings
        ensure_signal_indexes(targets.signals, s.signals_ttl_seconds,
                              history=targets.signals.database[s.history_collection_name],
                              history_ttl_seconds=s.history_ttl_seconds)
        ensure_runs_indexes(targets.runs)


def _config_sha(config: PipelineConfig) -> str:
    text = json.dumps(config_as_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the steps (pure functions over frames) ---------------------------------------


def factor_frame(config: PipelineConfig, market: pd.DataFrame, *,
                 cluster: Client | None = None) -> pd.DataFrame:
    """Factors per symbol (independent windows), OHLCV kept for rules like ``close > sma_200``.

    ``cluster``: a Dask client whose workers compute the symbols (same frame).
    """
    return compute_factors(market, config.factors, cross_section=config.cross_section,
                           keep=OHLCV_FIELDS, cluster=cluster)


def generate_signals(config: PipelineConfig, factors: pd.DataFrame) -> pd.DataFrame:
    """The configured generator's contract-shaped signal frame."""
    return build_generator(config.generator_config()).generate(factors)


def backtest(config: PipelineConfig, market: pd.DataFrame,
             decisions: Decisions) -> BacktestResult:
    """Long-only decisions: the spot simulation; shorts or risk fields: the futures one
    (stops and targets on the bars' high/low, funding-free: docs/LONG_SHORT.md)."""
    b = config.backtest
    simulate = simulate_long_short_tidy if decisions.sided else simulate_long_flat_tidy
    return simulate(market, decisions.positions, timeframe=config.timeframe, fee=b.fee,
                    slippage_bps=b.slippage_bps, initial_capital=b.initial_capital,
                    weights=b.weights)


def export_frame(config: PipelineConfig, signals: pd.DataFrame, mongo: MongoTargets, *,
                 now: datetime | None, run_id: str, dry_run: bool) -> ExportSummary:
    """Validate and upsert (or, dry run, only validate) the signals; counts either way."""
    s = mongo.settings
    if dry_run:
        batch = validate_batch(signals, align=config.export.align, now=now, exchange=s.exchange,
                               quotes=s.quotes)
        return ExportSummary(target="nothing written", dry_run=True, submitted=len(signals),
                             rejected=len(batch.rejected_indices),
                             errors=[str(e) for e in batch.errors])
    if mongo.signals is None or mongo.runs is None:
        raise ValueError("export: no signal collection was opened (open_targets(write=True))")
    res = export_signals(signals, mongo.signals, runs_collection=mongo.runs,
                         history_collection=mongo.signals.database[s.history_collection_name],
                         align=config.export.align, now=now, exchange=s.exchange,
                         quotes=s.quotes, batch_size=s.batch_size, run_id=run_id,
                         audit_extra={"pipeline": config.name, "config_sha": _config_sha(config)})
    target = f"{mongo.signals.database.name}.{mongo.signals.name}"
    return ExportSummary(target=target, dry_run=False, run_id=res.run_id,
                         errors=[str(e) for e in res.errors], **res.count_dict())


# --- the runs -------------------------------------------------------------------


def run_pipeline(
    config: PipelineConfig,
    *,
    db: Database | None = None,
    client: MongoClient | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
    export: bool | None = None,
    dry_run: bool | None = None,
    output_dir: str | Path | None = None,
    progress: bool = False,
    cluster: Client | None = None,
) -> PipelineResult:
    """Run the whole pipeline once over the config's range and return what it produced.

    ``export``/``dry_run``/``output_dir`` override the config (the CLI's flags);
    ``db``/``client``/``settings``: where MongoDB is (see :func:`open_targets`).
    ``now`` is the clock for validation (signals may not lie in the future).
    ``cluster``: a Dask client (:func:`research.factors.cluster.open_cluster`)
    whose workers compute the factors per symbol; everything else, and every
    result, is the same as in process.
    Re-running the same config reproduces the report files byte for byte (all
    but ``run_info.json``) and changes nothing in MongoDB.
    """
    do_export = config.export.enabled if export is None else export
    dry = config.export.dry_run if dry_run is None else dry_run
    out_dir = Path(output_dir) if output_dir is not None else config.report.output_dir
    run_id = str(uuid.uuid4())
    started = datetime.now(UTC)
    steps = ["market data", "factors", "signals", "backtest", "report"] + (
        ["export"] if do_export else [])
    bar = tqdm(total=len(steps), desc=config.name, unit="step", disable=not progress,
               leave=False)
    extra = {"pipeline": config.name, "run_id": run_id}
    with open_targets(config, db, settings, write=do_export and not dry,
                      client=client) as mongo:
        bar.set_postfix_str(steps[0])
        market = load_market(config, store=mongo.market)
        bar.update()
        bar.set_postfix_str(steps[1])
        factors = factor_frame(config, market, cluster=cluster)
        bar.update()
        bar.set_postfix_str(steps[2])
        signals = generate_signals(config, factors)
        bar.update()
        bar.set_postfix_str(steps[3])
        decisions = decide_positions(signals, market, timeframe=config.timeframe,
                                     settings=config.ext_signals,
                                     strategy_ids=(config.export.strategy_id,))
        result = backtest(config, market, decisions)
        bar.update()
        bar.set_postfix_str(steps[4])
        title = config.report.title or f"{config.name}: {config.export.strategy_id} " \
                                       f"({config.timeframe})"
        files = write_report(out_dir, result=result, market=market, signals=signals,
                             config=config_as_dict(config), title=title, factors=factors)
        bar.update()
        summary = None
        if do_export:
            bar.set_postfix_str(steps[5])
            summary = export_frame(config, signals, mongo, now=now, run_id=run_id, dry_run=dry)
            bar.update()
    bar.close()
    outcome = PipelineResult(config, run_id, market, factors, signals, decisions.positions,
                             result, out_dir, files, summary, dict(decisions.counts))
    write_run_info(out_dir, {"run_id": run_id, "started_at": started,
                             "finished_at": datetime.now(UTC), "code_version": code_version(),
                             "config_sha": _config_sha(config),
                             "export": None if summary is None else {
                                 "target": summary.target, "dry_run": summary.dry_run,
                                 "run_id": summary.run_id, **summary.counts(),
                                 "errors": summary.errors[:20]}})
    log.info("pipeline %s done: %d signals, report %s", config.name, len(signals), out_dir,
             extra={**extra, "signals": len(signals)})
    return outcome


def newest_closed_bar(now: datetime, timeframe: str) -> pd.Timestamp:
    """Open time of the newest bar whose close is at or before ``now``."""
    return floor_to_bar(now, timeframe) - timeframe_delta(timeframe)


def latest_factor_frame(config: PipelineConfig, history: pd.DataFrame, bar: pd.Timestamp,
                        bars: int = 1) -> pd.DataFrame:
    """Factor rows the generator needs for the last ``bars`` bars up to ``bar``, from short history.

    That is ``latest.context_bars + bars - 1`` bars. One bar: the incremental
    :func:`research.factors.latest_factors` path (plus OHLCV and cross-sections
    of that bar). More: :func:`compute_factors` over the short history, whose
    last rows equal a full run's (each has at least :func:`history_length` bars
    behind it).
    """
    context = config.latest.context_bars + bars - 1
    if context > 1:
        frame = factor_frame(config, history)
        first = bar - (context - 1) * timeframe_delta(config.timeframe)
        return frame[(frame["datetime"] >= first) & (frame["datetime"] <= bar)].reset_index(
            drop=True)
    newest = latest_factors(history, config.factors)
    newest = newest[newest["datetime"] == bar]
    prices = history[["datetime", "symbol", *OHLCV_FIELDS]]
    frame = newest.merge(prices, on=["datetime", "symbol"], how="left")
    factor_cols = [c for c in newest.columns if c not in ("datetime", "symbol")]
    frame = frame[["datetime", "symbol", *OHLCV_FIELDS, *factor_cols]]
    if config.cross_section:
        frame = add_cross_section(frame, factor_cols, config.cross_section)
    return frame.reset_index(drop=True)


def run_latest(
    config: PipelineConfig,
    *,
    now: datetime | None = None,
    bar: datetime | None = None,
    db: Database | None = None,
    client: MongoClient | None = None,
    settings: Settings | None = None,
    export: bool | None = None,
    dry_run: bool | None = None,
    bars: int = 1,
) -> LatestResult:
    """Signals of one bar (default: the newest closed bar at ``now``), exported idempotently.

    Reads only ``history_length(factors) + latest.context_bars - 1`` bars per
    symbol (plus a small margin for missing bars), ignoring the config's date
    range, and keeps the generator's rows whose ``ts`` is that bar: the same
    rows a full :func:`run_pipeline` produces for it (see
    :class:`research.pipeline.config.LatestConfig` for the generator's memory).
    ``bars > 1`` back-fills: the signals of the last ``bars`` bars up to it
    (e.g. a restarted scheduler catching up), read with that much more history.
    """
    if bars < 1:
        raise ValueError(f"bars must be >= 1, got {bars}")
    now = ensure_utc(now or datetime.now(UTC), "now").to_pydatetime()
    tf = config.timeframe
    target = newest_closed_bar(now, tf) if bar is None else floor_to_bar(bar, tf)
    first = target - (bars - 1) * timeframe_delta(tf)
    needed = history_length(config.factors) + config.latest.context_bars + bars - 2
    margin = max(10, needed // 10)
    do_export = config.export.enabled if export is None else export
    dry = config.export.dry_run if dry_run is None else dry_run
    with open_targets(config, db, settings, write=do_export and not dry,
                      client=client) as mongo:
        history = load_market(config, start=history_start(target, tf, needed + margin),
                              end=target + timeframe_delta(tf), store=mongo.market)
        have = set(history.loc[history["datetime"] == target, "symbol"])
        missing = [s for s in config.universe if s not in have]
        if missing:
            log.warning("pipeline %s: no %s candle at %s for %s; no signal for them",
                        config.name, tf, target.isoformat(), missing,
                        extra={"pipeline": config.name, "bar": target.isoformat(),
                               "missing_symbols": missing})
        factors = latest_factor_frame(config, history, target, bars)
        signals = generate_signals(config, factors)
        signals = signals[signals["ts"] >= first].reset_index(drop=True)
        summary = None
        if do_export:
            summary = export_frame(config, signals, mongo, now=now, run_id=str(uuid.uuid4()),
                                   dry_run=dry)
    return LatestResult(target, factors, signals, summary, missing, config)
