"""One monitoring cycle: read health, lag and freshness, bots and trades; evaluate the rules;
alert; write back.

:class:`Monitor.cycle` is what ``signal-monitor run`` calls every interval and
``signal-monitor status`` calls once. It never raises on an outage: MongoDB
down becomes the MONGO_DOWN alert (and the Mongo readings are skipped), a bot
whose API does not answer becomes BOT_DOWN. The clock is injected for tests.
Not the checks themselves (pure modules) nor the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from signal_export.contract import timeframe_seconds
from signal_export.logs import redact_text
from signal_export.monitoring import execution, reconcile, rules
from signal_export.monitoring.alerts import Alert, Condition, Notification, Rule, Unit
from signal_export.monitoring.config import MonitorConfig
from signal_export.monitoring.freqtrade_api import FreqtradeApi, FreqtradeApiError
from signal_export.monitoring.health import (
    FRESHNESS_COLUMNS,
    ExporterHealth,
    JobHealth,
    MongoHealth,
    exporter_health,
    freshness_frame,
    job_health,
    lag_frame,
    mongo_health,
    running_exports,
)
from signal_export.monitoring.lag import LAG_COLUMNS
from signal_export.monitoring.manager import AlertManager
from signal_export.monitoring.strategy_metrics import StrategyMetricsError, read_unusable
from signal_export.monitoring.writeback import (
    WritebackResult,
    ensure_writeback_indexes,
    write_trades,
)
from signal_export.settings import Settings
from signal_export.store import signals_in_range

log = logging.getLogger(__name__)


@dataclass
class BotState:
    name: str
    reachable: bool
    state: str = "unknown"
    open_trades: list[dict] = field(default_factory=list)
    trades: pd.DataFrame = field(default_factory=lambda: execution.trades_frame([]))
    free_balance: float | None = None
    rate_limit_lines: list[tuple[datetime, str]] = field(default_factory=list)
    error: str | None = None
    writeback: WritebackResult | None = None
    raw_trades: list[dict] = field(default_factory=list)
    currency: str = "USDT"
    #: ``{strategy_id: {reason: n}}`` scraped from the bot's ``metrics_url``; None: not set
    #: up or not readable (then ``unusable_error`` says why).
    unusable: dict[str, dict[str, int]] | None = None
    unusable_error: str | None = None


@dataclass
class Snapshot:
    now: datetime
    mongo: MongoHealth
    exporter: ExporterHealth | None
    jobs: list[JobHealth]
    lags: pd.DataFrame
    bots: list[BotState]
    outcomes: pd.DataFrame
    conditions: list[Condition]
    alerts: list[Alert]
    #: ``{rule: n}`` firing now (inhibited alerts included): ``status`` exits 1 if any
    active_rules: dict[str, int]
    #: what this cycle sent (one message per channel), None if nothing changed
    notification: Notification | None = None
    #: start of the look-back window of this cycle's readings
    since: datetime | None = None
    #: ``{(channel, "sent"|"failed"): n}`` notifications since the monitor started
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)
    #: freshness of the signals whose bar closed in the SLO window (:func:`freshness_frame`)
    freshness: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(FRESHNESS_COLUMNS)))


class Monitor:
    def __init__(self, config: MonitorConfig, client: MongoClient, settings: Settings, *,
                 apis: Mapping[str, FreqtradeApi] | None = None,
                 manager: AlertManager | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.client = client
        self.settings = settings
        self.db = client[settings.db]
        self.clock = clock
        self.apis = dict(apis) if apis is not None else {
            b.name: FreqtradeApi(b.name, b.url, b.username, password_env=b.password_env)
            for b in config.bots}
        history = (self.db[config.alerts.history_collection]
                   if config.alerts.history_collection else None)
        self.manager = manager or AlertManager.from_config(config, clock=clock, history=history)
        self._logs_seen: dict[str, datetime] = {}
        self._indexes_ready = False

    # --- readings ------------------------------------------------------------

    def _bot(self, api: FreqtradeApi, now: datetime) -> BotState:
        cfg = next((b for b in self.config.bots if b.name == api.name), None)
        currency = cfg.stake_currency if cfg else "USDT"
        unusable, unusable_error = None, None
        if cfg is not None and cfg.metrics_url:  # the bot's own endpoint, not its REST API
            try:
                unusable = read_unusable(cfg.metrics_url)
            except StrategyMetricsError as exc:
                unusable_error = redact_text(str(exc))[:300]
        try:
            state = api.state()
            open_trades = api.open_trades()
            trades = api.trades()
            balance = api.balance()
            logs = api.logs()
        except FreqtradeApiError as exc:
            return BotState(api.name, False, error=redact_text(str(exc)), unusable=unusable,
                            unusable_error=unusable_error)
        by_id = {t["trade_id"]: t for t in trades} | {t["trade_id"]: t for t in open_trades}
        lines = execution.rate_limit_lines(logs, self._logs_seen.get(api.name))
        if lines:
            self._logs_seen[api.name] = lines[-1][0]
        return BotState(api.name, True, state, open_trades,
                        execution.trades_frame(by_id.values()).assign(bot=api.name),
                        execution.stake_balance(balance, currency), lines,
                        raw_trades=list(by_id.values()), currency=currency, unusable=unusable,
                        unusable_error=unusable_error)

    def cycle(self) -> Snapshot:
        """Read everything, evaluate every rule, send alerts, write trades back."""
        now = self.clock()
        cfg = self.config
        th = cfg.thresholds
        since = now - timedelta(hours=cfg.lookback_hours)
        mongo = mongo_health(self.client)
        conditions: list[Condition] = [rules.mongo_condition(mongo.reachable, now, mongo.error)]
        exporter = None
        jobs: list[JobHealth] = []
        lags = pd.DataFrame(columns=list(LAG_COLUMNS))
        freshness = pd.DataFrame(columns=list(FRESHNESS_COLUMNS))
        if mongo.reachable:
            try:
                exporter = exporter_health(self.db[self.settings.export_runs_collection], since)
                jobs, newest_runs = job_health(self.db[cfg.scheduler_runs_collection], since)
                watched = [w.model_dump() for w in cfg.strategies]
                lags = lag_frame(self.db[self.settings.collection], now, watched)
                every_bar = {w.strategy_id for w in cfg.strategies if w.every_bar}
                conditions += rules.lag_conditions(
                    lags[lags["strategy_id"].isin(every_bar)], now,
                    missing_bars=th.missing_bars, budget_seconds=th.lag_budget_seconds)
                freshness = freshness_frame(
                    self.db[self.settings.collection],
                    self.db[self.settings.history_collection_name], now, watched,
                    th.freshness_window_bars)
                conditions += rules.freshness_conditions(
                    freshness, now, quantile=th.freshness_quantile,
                    budgets={(w.strategy_id, w.timeframe): w.freshness_budget_seconds
                             or timeframe_seconds(w.timeframe) / 2 for w in cfg.strategies})
                conditions += rules.export_run_conditions(newest_runs)
                conditions.append(rules.success_rate_condition(
                    exporter.succeeded, exporter.runs, now, th.exporter_min_success_rate))
                conditions.append(rules.stalled_export_condition(
                    running_exports(self.db[self.settings.export_runs_collection], since), now,
                    th.export_running_max_seconds))
            except PyMongoError as exc:
                log.error("monitor: MongoDB read failed: %s", redact_text(str(exc)))
        bots = [self._bot(api, now) for api in self.apis.values()]
        for b in bots:
            conditions.append(Condition(  # the API error already names the bot
                Rule.BOT_DOWN, not b.reachable or b.state != "running", now,
                0.0 if b.reachable else 1.0, 0.0, b.error or f"bot {b.name}: state {b.state}",
                subject=b.name, severity="critical", unit=Unit.FLAG))
            if not b.reachable:
                continue
            orders = execution.orders_frame(b.raw_trades)
            conditions += execution.rejection_conditions(orders, now, th.consecutive_rejections,
                                                         b.name)
            if th.min_balance > 0:
                conditions.append(execution.balance_condition(
                    b.free_balance, b.currency, th.min_balance, now, b.name))
            conditions.append(execution.rate_limit_condition(b.rate_limit_lines, now,
                                                             th.rate_limit_errors, b.name))
        outcomes = self._reconcile(bots, now, since, mongo.reachable)
        if not outcomes.empty:
            conditions += reconcile.reconciliation_conditions(outcomes, now)
            fills = outcomes[outcomes["kind"].isin(["matched", "late"])]
            conditions += execution.slippage_conditions(fills, now, th.slippage_bps)
        if cfg.writeback and mongo.reachable:
            self._write_back(bots, now)
        alerts = self.manager.process(conditions)
        m = self.manager
        deliveries = ({(name, "sent"): n for name, n in m.delivered.items()}
                      | {(name, "failed"): n for name, n in m.failed.items()})
        return Snapshot(now, mongo, exporter, jobs, lags, bots, outcomes, conditions, alerts,
                        m.firing_rules(), m.last_notification, since, deliveries, freshness)

    def _reconcile(self, bots: list[BotState], now: datetime, since: datetime,
                   mongo_ok: bool) -> pd.DataFrame:
        reachable = [b for b in bots if b.reachable]
        if not mongo_ok or not reachable or not self.config.strategies:
            return pd.DataFrame(columns=list(reconcile.OUTCOME_COLUMNS))
        trades = pd.concat([b.trades for b in reachable], ignore_index=True)
        frames = []
        for w in self.config.strategies:
            try:
                signals = signals_in_range(self.db[self.settings.collection], since, now,
                                           strategy_ids=w.strategy_id, timeframe=w.timeframe,
                                           pairs=w.pairs)
            except PyMongoError as exc:
                log.error("monitor: reading signals failed: %s", redact_text(str(exc)))
                continue
            ours = trades["strategy_id"] == w.strategy_id
            if w.pairs:
                ours &= trades["pair"].isin(w.pairs)
            mine = trades[ours | trades["strategy_id"].isna()]  # untagged trades: extra
            frames.append(reconcile.reconcile(signals, mine, w.timeframe, now,
                                              late_bars=self.config.thresholds.late_bars))
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=list(reconcile.OUTCOME_COLUMNS))
        out = pd.concat(frames, ignore_index=True)
        extra = out["kind"].eq("extra")  # an untagged trade is reported once, not per strategy
        return out[~(extra & out.duplicated(["kind", "trade_id"]))].reset_index(drop=True)

    def _write_back(self, bots: list[BotState], now: datetime) -> None:
        try:
            if not self._indexes_ready:
                ensure_writeback_indexes(self.db)
                self._indexes_ready = True
            for b in bots:
                if b.reachable and b.raw_trades:
                    b.writeback = write_trades(self.db, b.name, b.raw_trades, now=now)
        except PyMongoError as exc:
            log.error("monitor: trade write-back failed: %s", redact_text(str(exc)))
