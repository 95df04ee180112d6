"""What ``ExternalSignalStrategy`` does in each Freqtrade hook, without Freqtrade types.

The strategy file stays a thin adapter; this class holds the behaviour so it
can be tested in-process: read signals (one query per loop live, one per
backtest range), match them onto the candle frame, apply the outage policy,
size stakes from weights, and keep the counters for monitoring. Not the
matcher's rules (:mod:`.matching`) nor the MongoDB access (:mod:`.source`).

Counts per strategy id: the reader's rejections come per id from the source;
the matcher's counts are per pair, so a pair whose window holds one id (always,
with one configured id) gives them all to that id. When several ids signal one
pair, the outcomes that depend on the signal alone (``SIGNAL_LEVEL``: stale,
expired, unmatched, pending, no_action) are split by re-running the matcher on
each id's rows for counting only, and the row-level ones (matched, superseded,
deduped, debounced: decided by the ids together) are filed under the joint label
``a+b`` rather than guessed per id. Live the summary is one log line per candle;
a backtest logs one ``ext_signals backtest summary`` line once every pair is
populated, i.e. at the latest when the simulation loop starts (Freqtrade has no
strategy callback after the simulation, and the counts are final before it).

Two steps per candle frame, so ``freqtrade hyperopt`` can tune the decision:
:meth:`ExternalSignalLogic.prepare` (``populate_indicators``, once per frame:
reads the signals, adds the chart columns ``ext_score``/``ext_signal_weight``)
and :meth:`ExternalSignalLogic.decide` (``populate_entry_trend``, every epoch:
matches them with the current :class:`DecisionSettings`, which the strategy sets
from its parameters with :meth:`ExternalSignalLogic.use_settings`).

Honest empty runs: after each read (a backtest's one read, live once per candle)
one line says how many signals were found per configured strategy id in the
window; a configured id with none gets a second line listing the strategy ids
stored for the timeframe (one ``distinct``), so a typo or a wrong timeframe is
named instead of ending in "No trades made". A backtest repeats the count at its
end (its last simulated candle). Where each connection setting and the strategy
ids came from (environment, ``.env``, config, default) is logged once at start-up,
as a warning when an environment variable replaced a different config value.

Live, each loop decides only the pairs whose decision can have changed: a pair's
columns are cached (:class:`_LiveDecision`) under its signal version
(:meth:`SignalSource.signal_version`, moved by the incremental read), its candle dates
and the settings, and reused while ``now`` stays before the first moment a signal on
the last row turns stale or expired (:func:`~.matching.stable_until`). Freqtrade hands
a fresh frame every loop, so ``populate_indicators`` attaches every column the hooks
add in one ``concat`` (one column at a time costs ~0.1 ms each); the entry/exit hooks
then only copy tags where there is an enter/exit. ``live_incremental: false`` reads
and decides everything every loop (the differential test's reference).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pymongo

from signal_export.consumer.config import (
    ExtSignalsConfig,
    MissingSignalPolicy,
    describe_sources,
    load_config,
)
from signal_export.consumer.hyperopt import settings_with
from signal_export.consumer.matching import (
    RISK_FIELDS,
    DecisionSettings,
    MatchResult,
    empty_signal_columns,
    match_signals,
    parse_tag,
    signal_values,
    stable_until,
)
from signal_export.consumer.source import SignalSource
from signal_export.consumer.stats import (
    SIGNAL_LEVEL,
    UNUSABLE_REASONS,
    SignalStats,
    format_counts,
    serve_metrics,
)
from signal_export.contract import floor_to_bar, timeframe_delta

logger = logging.getLogger(__name__)

SIGNAL_COLUMNS: tuple[str, ...] = ("enter_long", "exit_long", "enter_tag", "exit_tag", "ext_weight")
#: Columns the decision has only with shorts / risk fields (futures), with their empty value:
#: stored when the matcher returns them, and always in futures mode (so every frame has them).
SIDED_COLUMNS: dict[str, float] = {"enter_short": 0, "exit_short": 0, "ext_leverage": np.nan,
                                   "ext_stop_loss": np.nan, "ext_take_profit": np.nan}
#: populate_indicators stores the signals under these names; Freqtrade resets enter_tag/exit_tag
#: before populate_entry_trend/populate_exit_trend, which copy them (apply_entry/apply_exit).
EXT_PREFIX = "ext_"
OUTAGE_EXIT_TAG = "ext:outage"
LIVE_RUNMODES = frozenset({"live", "dry_run"})


@dataclass(frozen=True)
class _LiveDecision:
    """A pair's decided columns, valid for ``key`` while ``now_ms <= now < until_ms``."""

    key: tuple
    now_ms: int
    until_ms: int
    block: pd.DataFrame  # every column prepare/decide add, in one frame
    enter_tag: pd.Series | None  # Freqtrade's enter_tag column; None: no enter in the frame
    exit_tag: pd.Series | None


def _now_ms(now: datetime) -> int:
    """Epoch ms as :func:`match_signals` floors ``now``."""
    return int(pd.Timestamp(now).tz_convert("UTC").value // 1_000_000)


class ExternalSignalLogic:
    """Per-process state of the strategy: settings, signal source, counters."""

    def __init__(
        self,
        ft_config: Mapping[str, Any],
        *,
        live: bool,
        notify: Callable[[str], None] | None = None,
        client: pymongo.MongoClient | None = None,
        env: Mapping[str, str] | None = None,
        runmode: str | None = None,
    ) -> None:
        sources: dict[str, str] = {}
        self.cfg: ExtSignalsConfig = load_config(ft_config, env, sources=sources)
        #: The decision settings in use (the config's, until :meth:`use_settings`).
        self.settings: DecisionSettings = settings_with(self.cfg, {})
        self.rules = self.cfg.to_rules()
        self.live = live
        #: Freqtrade's futures mode: shorts, leverage, stops and targets from the signals.
        self.futures = ft_config.get("trading_mode") == "futures"
        self.runmode = runmode or ("live" if live else "backtest")
        #: hyperopt: every epoch re-decides every pair; no per-run lines from the workers.
        self.quiet = self.runmode == "hyperopt"
        #: futures: the signal read also carries leverage/stop_loss/take_profit
        self.source = SignalSource(self.cfg, notify=notify, client=client, live=live,
                                   risk=self.futures)
        self.stats = SignalStats(self.cfg.strategy_ids)
        if live and self.cfg.metrics_port:
            serve_metrics(self.cfg.metrics_port, self.cfg.metrics_address)
        self.now: datetime | None = None
        self._summary_candle: datetime | None = None
        self._bt_populated: set[str] = set()
        self._bt_summary_due = False
        self._bt_last_date: pd.Timestamp | None = None
        self._bt_end_logged = False
        self._found_candle: datetime | None = None
        self._stored_ids: tuple[object, list[str] | None] | None = None
        self._now_ms: tuple[datetime, int] | None = None
        self._live_cache: dict[str, _LiveDecision] = {}
        #: (frame, pair, rules, decision) prepare attached every decided column to (live)
        self._prepared: tuple[pd.DataFrame, str, Any, _LiveDecision] | None = None
        self.decisions = 0  # live pairs decided (cache misses), for tests and benchmarks
        logger.info("ExternalSignalStrategy reads %s/%s.%s for strategy_ids=%s timeframe=%s (%s)",
                    self.cfg.redacted_uri(), self.cfg.db, self.cfg.collection,
                    ",".join(self.cfg.strategy_ids), self.cfg.timeframe,
                    "live: one query per bot loop" if live else "backtest: one query per range")
        overridden, line = describe_sources(sources, self.cfg)
        logger.log(logging.WARNING if overridden else logging.INFO, line)

    def use_settings(self, settings: DecisionSettings) -> None:
        """Decide with ``settings`` from now on (the strategy's hyperoptable parameter values).

        The live read window grows with them (debounce state needs its history).
        """
        if settings == self.settings:
            return
        self.settings = settings
        self.rules = settings.match_rules(self.cfg.timeframe, self.cfg.strategy_ids)
        self.source.lookback_bars = max(self.cfg.lookback_bars, settings.lookback_bars)

    def bot_loop_start(self, pairs: Collection[str], current_time: datetime) -> None:
        """Live: refresh the cache with one query for all pairs.

        Backtesting: Freqtrade calls this once per simulated candle, after every pair
        was populated, so the first call logs the backtest summary if it is still due.
        """
        if not self.live:
            if self.quiet:
                return
            if self._bt_summary_due:
                self._log_backtest_summary()
            if (self._bt_last_date is not None and not self._bt_end_logged
                    and pd.Timestamp(current_time) >= self._bt_last_date):
                self._bt_end_logged = True  # the simulation's last candle: its end
                self._log_found(f"{self.runmode} end")
            return
        self.now = current_time
        self._now_ms = (current_time, _now_ms(current_time))
        self._prepared = None
        self._log_summary(current_time)
        self.stats.retain(pairs)
        if len(self._live_cache) > len(pairs):
            keep = set(pairs)
            self._live_cache = {p: e for p, e in self._live_cache.items() if p in keep}
        if self.source.refresh(pairs, current_time):
            self.stats.record_reader(self.source.unusable)
            candle = floor_to_bar(current_time, self.cfg.timeframe)
            if candle != self._found_candle:
                self._found_candle = candle
                self._log_found("live")

    def _log_found(self, when: str) -> None:
        """The signals the latest read found per configured id; for an id with none, the ids
        that are stored for the timeframe (one ``distinct``, once per read)."""
        found, window = self.source.found, self.source.window
        if window is None:
            return
        start, end = window
        span = (f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}" if end is not None
                else f"since {start:%Y-%m-%d %H:%M}")
        parts = []
        for sid in self.cfg.strategy_ids:
            outside = self.source.unusable.get(sid, {}).get("unknown_pair", 0)
            parts.append(f"{sid}={found.get(sid, 0)}"
                         + (f" (+{outside} for pairs outside the whitelist)" if outside else ""))
        logger.info("ext_signals %s: signals found per strategy id in %s UTC (timeframe %s, "
                    "%s.%s): %s", when, span, self.cfg.timeframe, self.cfg.db,
                    self.cfg.collection, ", ".join(parts),
                    extra={"ext_signals_found": {s: found.get(s, 0)
                                                 for s in self.cfg.strategy_ids}})
        missing = [sid for sid in self.cfg.strategy_ids if not found.get(sid)]
        if not missing:
            return
        read_key = (self.source.queries, window)
        if self._stored_ids is None or self._stored_ids[0] != read_key:  # once per read
            self._stored_ids = (read_key, self.source.stored_strategy_ids())
        stored = self._stored_ids[1]
        if stored is None:
            listing = "(the stored ids could not be listed)"
        elif stored:
            listing = f"strategy ids stored for timeframe {self.cfg.timeframe}: {', '.join(stored)}"
        else:
            listing = (f"no strategy id has signals stored for timeframe {self.cfg.timeframe} in "
                       f"{self.cfg.redacted_uri()}/{self.cfg.db}.{self.cfg.collection} (wrong "
                       f"database, collection or timeframe?)")
        unknown = [sid for sid in missing if stored is not None and sid not in stored]
        level = logging.WARNING if (not self.live or unknown) else logging.INFO
        logger.log(level, "ext_signals %s: no signals for strategy id %s in %s UTC; %s",
                   when, ", ".join(repr(s) for s in missing), span, listing)

    def _log_summary(self, now: datetime) -> None:
        """Once per candle: totals of the latest evaluation, per-strategy unusable, worst lag."""
        candle = floor_to_bar(now, self.cfg.timeframe)
        if candle == self._summary_candle:
            return
        self._summary_candle = candle
        snap = self.stats.snapshot()
        by_strategy = snap["by_strategy"]
        if not snap["counts"] and not any(by_strategy.values()):
            return
        totals: Counter = Counter()
        for counts in snap["counts"].values():
            totals.update(counts)
        lags = snap["lag_seconds"]
        worst = max(lags.items(), key=lambda kv: kv[1]) if lags else None
        ids = list(self.cfg.strategy_ids) + sorted(set(by_strategy) - set(self.cfg.strategy_ids))
        parts = []
        for sid in ids:
            c = by_strategy.get(sid, {})
            if sid in self.cfg.strategy_ids or any(c.get(r) for r in UNUSABLE_REASONS):
                parts.append(f"{sid} " + format_counts(
                    {r: c.get(r, 0) for r in UNUSABLE_REASONS}, UNUSABLE_REASONS, zeros=True))
        unusable = "; ".join(parts)
        logger.info("ext_signals summary: %s; unusable by strategy: %s; max lag %s",
                    ", ".join(f"{k}={v}" for k, v in sorted(totals.items()) if v) or "no signals",
                    unusable or "none",
                    f"{worst[1]:.0f}s ({worst[0]})" if worst else "n/a",
                    extra={"ext_signals_counts": dict(totals),
                           "ext_signals_by_strategy": by_strategy})

    def _log_backtest_summary(self) -> None:
        """One line: every bucket per strategy id (zeros shown: ``unknown_pair=0`` is news)."""
        self._bt_summary_due = False
        self._bt_populated.clear()
        by_strategy = self.stats.strategy_counts()
        parts = [f"strategy_id={sid} {format_counts(by_strategy.get(sid, {}), zeros=True)}"
                 for sid in self.cfg.strategy_ids]
        parts += [f"strategy_id={sid} {format_counts(c)}" for sid, c in sorted(
            by_strategy.items()) if sid not in self.cfg.strategy_ids and c]
        logger.info("ext_signals %s summary: %s", self.runmode, "; ".join(parts),
                    extra={"ext_signals_by_strategy": by_strategy})

    def populate(self, dataframe: pd.DataFrame, pair: str, pairs: Collection[str]) -> pd.DataFrame:
        """:meth:`prepare` then :meth:`decide`: the frame with every ``ext_*`` column."""
        return self.decide(self.prepare(dataframe, pair, pairs), pair, pairs)

    def prepare(self, dataframe: pd.DataFrame, pair: str, pairs: Collection[str]) -> pd.DataFrame:
        """populate_indicators: the pair's signals at hand and the chart columns.

        Backtesting: the one read of the range (all ``pairs``), counted and logged
        (:meth:`_log_found`). Live: the loop's read happened in :meth:`bot_loop_start`.
        Adds ``ext_score`` / ``ext_signal_weight``: the stored values of the signal that
        applies to each row (:func:`signal_values`), NaN elsewhere.
        """
        if self.live and not dataframe.empty:
            entry = self._live_decision(dataframe, pair)
            if entry is not None:
                out = _attach(dataframe, entry.block)
                self._prepared = (out, pair, self.rules, entry)
                return out
        if not self.live and not dataframe.empty:
            reads = self.source.queries
            self._load(dataframe, pair, pairs)
            last = pd.Timestamp(dataframe["date"].iloc[-1])
            if self._bt_last_date is None or last > self._bt_last_date:
                self._bt_last_date = last
            if self.source.queries != reads:
                self._bt_end_logged = False
                self._log_found(f"{self.runmode} start")
        signals = self.source.signals_for(pair) if not dataframe.empty else None
        values = signal_values(dataframe, signals, self.rules)
        for col in ("ext_score", "ext_signal_weight"):
            dataframe[col] = values[col].to_numpy()
        return dataframe

    def _load(self, dataframe: pd.DataFrame, pair: str, pairs: Collection[str]) -> None:
        self.source.load_range(set(pairs) | {pair}, dataframe["date"].iloc[0],
                               dataframe["date"].iloc[-1])
        self.stats.record_reader(self.source.unusable)

    def decide(self, dataframe: pd.DataFrame, pair: str, pairs: Collection[str]) -> pd.DataFrame:
        """populate_entry_trend: the decision columns (``ext_<signal column>``, see
        SIGNAL_COLUMNS) from the pair's signals and the current settings (:attr:`rules`)."""
        if self.live and not dataframe.empty:
            if self._prepared_entry(dataframe, pair) is not None:
                return dataframe  # prepare attached this loop's decision already
            entry = self._live_decision(dataframe, pair)
            if entry is not None:
                return _attach(dataframe, entry.block.drop(columns=list(CHART_COLUMNS)))
        dataframe["ext_enter_score"] = self.settings.enter_score
        dataframe["ext_exit_score"] = self.settings.exit_score
        if dataframe.empty:
            return _store(dataframe, empty_signal_columns(0, dataframe.index), self.futures)
        if self.live:  # the store is unavailable
            return self._outage_columns(dataframe)
        if not self.source.covers({pair}, dataframe["date"].iloc[0],
                                  dataframe["date"].iloc[-1]):
            self._load(dataframe, pair, pairs)  # prepare did not run for this frame
        signals = self.source.signals_for(pair)
        result = match_signals(dataframe, signals, self.rules)
        self._record(pair, result, self._split_by_strategy(dataframe, signals, result, None))
        if not self.quiet:
            self._bt_populated.add(pair)
            self._bt_summary_due = True
            if self._bt_populated >= set(pairs):
                self._log_backtest_summary()
        return _store(dataframe, result.frame, self.futures)

    def entry(self, dataframe: pd.DataFrame, pair: str, pairs: Collection[str]
              ) -> pd.DataFrame:
        """populate_entry_trend: :meth:`decide` + :func:`apply_entry`.

        Live, on the frame :meth:`prepare` just decided: only the tags of enter rows are
        written (``enter_long`` is in prepare's block; Freqtrade resets ``enter_tag`` to ""
        before this hook).
        """
        entry = self._prepared_entry(dataframe, pair)
        if entry is None:
            return apply_entry(self.decide(dataframe, pair, pairs))
        if entry.enter_tag is not None or "enter_tag" not in dataframe.columns:
            dataframe["enter_tag"] = entry.enter_tag if entry.enter_tag is not None else ""
        return dataframe

    def exit(self, dataframe: pd.DataFrame, pair: str, pairs: Collection[str]) -> pd.DataFrame:
        """populate_exit_trend: :func:`apply_exit`, with the same live shortcut as :meth:`entry`."""
        entry = self._prepared_entry(dataframe, pair)
        if entry is None:
            if "ext_exit_long" not in dataframe.columns:
                dataframe = self.decide(dataframe, pair, pairs)
            return apply_exit(dataframe)
        if entry.exit_tag is not None or "exit_tag" not in dataframe.columns:
            dataframe["exit_tag"] = entry.exit_tag if entry.exit_tag is not None else ""
        return dataframe

    def _prepared_entry(self, dataframe: pd.DataFrame, pair: str) -> _LiveDecision | None:
        """The cached decision :meth:`prepare` attached to this very frame this loop."""
        prepared = self._prepared
        if (prepared is not None and prepared[0] is dataframe and prepared[1] == pair
                and prepared[2] is self.rules):
            return prepared[3]
        return None

    def _live_decision(self, dataframe: pd.DataFrame, pair: str) -> _LiveDecision | None:
        """The pair's decided columns for this loop: cached, or decided now (and recorded).

        None while the store is unavailable (the caller applies the outage policy).
        """
        if not self.source.available:
            return None
        dates = dataframe["date"].to_numpy(dtype="datetime64[ms]")
        key = (self.source.signal_version(pair), len(dates), dates[0], dates[-1],
               dates.view(np.int64).sum(), self.rules)
        now = self.now or datetime.now(UTC)
        if self._now_ms is None or self._now_ms[0] is not now:
            self._now_ms = (now, _now_ms(now))
        now_ms = self._now_ms[1]
        entry = self._live_cache.get(pair)
        if (entry is not None and entry.key == key and entry.now_ms <= now_ms < entry.until_ms
                and self.cfg.live_incremental):
            lag = self.source.lag_seconds(pair, now)
            if lag is not None:
                self.stats.record_lag(pair, lag)
            return entry
        self.decisions += 1
        signals = self.source.signals_for(pair)
        values = signal_values(dataframe, signals, self.rules)
        result = match_signals(dataframe, signals, self.rules, now=now)
        self._record(pair, result, self._split_by_strategy(dataframe, signals, result, now))
        cols = result.frame
        n = len(dataframe)
        block = pd.DataFrame({
            "ext_score": values["ext_score"].to_numpy(),
            "ext_signal_weight": values["ext_signal_weight"].to_numpy(),
            "ext_enter_score": np.full(n, self.settings.enter_score),
            "ext_exit_score": np.full(n, self.settings.exit_score),
            **{col if col.startswith(EXT_PREFIX) else EXT_PREFIX + col: cols[col].to_numpy()
               for col in SIGNAL_COLUMNS},
            **{_ext(col): cols[col].to_numpy() for col in SIDED_COLUMNS if col in cols},
            **{_ext(col): np.full(n, empty) for col, empty in SIDED_COLUMNS.items()
               if self.futures and col not in cols},
        }, index=dataframe.index)
        for flag in FLAG_COLUMNS:  # Freqtrade's own signal columns, where there are any
            if _ext(flag) in block:
                block[flag] = block[_ext(flag)].to_numpy()
        entry = _LiveDecision(key, now_ms, stable_until(dataframe, signals, self.rules, now),
                              block, _tags(block, "enter"), _tags(block, "exit"))
        self._live_cache[pair] = entry
        return entry

    def _split_by_strategy(self, dataframe: pd.DataFrame, signals: pd.DataFrame | None,
                           result: MatchResult, now: datetime | None) -> dict[str, Counter]:
        """The pair's matcher counts per strategy id (see the module doc for several ids)."""
        if signals is None or signals.empty:
            return {}
        if len(self.cfg.strategy_ids) == 1:  # the usual case: no per-loop work at all
            return {self.cfg.strategy_ids[0]: Counter(result.counts)}
        ids = pd.unique(signals["strategy_id"]).tolist()
        if len(ids) == 1:
            return {ids[0]: Counter(result.counts)}
        order = {sid: i for i, sid in enumerate(self.cfg.strategy_ids)}
        ids.sort(key=lambda s: (order.get(s, len(order)), s))
        sid_col = signals["strategy_id"].to_numpy(dtype=object)
        out: dict[str, Counter] = {}
        for sid in ids:  # counting only: the frame traded is the joint result above
            alone = match_signals(dataframe, signals[sid_col == sid], self.rules, now=now).counts
            out[sid] = Counter({k: alone[k] for k in SIGNAL_LEVEL if alone.get(k)})
        joint = Counter({k: v for k, v in result.counts.items() if k not in SIGNAL_LEVEL and v})
        if joint:
            out["+".join(ids)] = joint
        return out

    def _outage_columns(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        """Signals unknown: no enters anywhere; exit on the live row only if the policy says so."""
        cols = empty_signal_columns(len(dataframe), dataframe.index)
        if self.cfg.missing_signal_policy is MissingSignalPolicy.EXIT:
            cols.iloc[-1, cols.columns.get_loc("exit_long")] = 1
            cols.iloc[-1, cols.columns.get_loc("exit_tag")] = OUTAGE_EXIT_TAG
        return _store(dataframe, cols, self.futures)

    def _record(self, pair: str, result: MatchResult, by_strategy: dict[str, Counter]) -> None:
        counts = Counter(result.counts)
        counts.update(self.source.read_counts.get(pair, Counter()))
        self.stats.record(pair, counts, by_strategy)
        if self.live and self.now is not None:
            lag = self.source.lag_seconds(pair, self.now)
            if lag is not None:
                self.stats.record_lag(pair, lag)
        ignored = {k: v for k, v in counts.items() if k not in ("matched", "pending") and v}
        if ignored:
            logger.debug("ext_signals %s: matched=%d ignored=%s", pair, counts["matched"], ignored)

    def stake(self, proposed_stake: float, max_stake: float, entry_tag: str | None) -> float:
        """weight x proposed stake when the signal carries a weight, capped at the max fraction."""
        stake = proposed_stake
        parsed = parse_tag(entry_tag)
        if self.cfg.use_weight_for_stake and parsed is not None and parsed[2] is not None:
            stake = proposed_stake * abs(parsed[2])  # a short's weight is negative
        cap = max_stake * self.cfg.max_stake_fraction
        return float(np.clip(stake, 0.0, cap))

    def leverage(self, risk: Mapping[str, float], max_leverage: float) -> float:
        """The entry signal's leverage, capped by ``max_leverage`` (ext_signals) and Freqtrade's
        ``max_leverage`` for the pair and stake; 1 without one."""
        return float(self.settings.cap_leverage(risk.get("leverage", np.nan), max_leverage))

    @staticmethod
    def stoploss_value(risk: Mapping[str, float], open_rate: float, current_rate: float,
                       is_short: bool, leverage: float) -> float | None:
        """``custom_stoploss``'s return for a stop at ``open_rate * (1 - side * stop_loss)``.

        Freqtrade places a stoploss value ``v`` at ``rate * (1 - |v| / leverage)`` (long), so
        the stop price needs ``v = side * (1 - stop / current_rate) * leverage``. None: no
        stop in the signal (the config's ``stoploss`` stands)."""
        stop_loss = risk.get("stop_loss", np.nan)
        if not np.isfinite(stop_loss):
            return None
        side = -1 if is_short else 1
        stop = open_rate * (1 - side * stop_loss)
        return side * (1 - stop / current_rate) * leverage

    @staticmethod
    def target_rate(risk: Mapping[str, float], open_rate: float, is_short: bool) -> float | None:
        """The take-profit price ``open_rate * (1 + side * take_profit)``; None without one."""
        take_profit = risk.get("take_profit", np.nan)
        if not np.isfinite(take_profit):
            return None
        return open_rate * (1 + (-1 if is_short else 1) * take_profit)

    def entry_risk(self, dataframe: pd.DataFrame | None, opened: datetime, is_short: bool
                   ) -> dict[str, float]:
        """The risk values (``leverage``, ``stop_loss``, ``take_profit``; NaN = none) of the
        entry signal a trade opened at ``opened`` followed: the last row of its side's entry
        signal whose candle closed by then (the decision rule puts entries only on the rows
        where the side changes, so this is the signal that started the side)."""
        flag = "ext_enter_short" if is_short else "ext_enter_long"
        if dataframe is None or dataframe.empty or flag not in dataframe.columns:
            return {}
        close = dataframe["date"] + timeframe_delta(self.cfg.timeframe)
        rows = np.flatnonzero((close <= pd.Timestamp(opened)).to_numpy()
                              & (dataframe[flag].to_numpy() == 1))
        if not rows.size:
            return {}
        return {name: float(dataframe["ext_" + name].iloc[rows[-1]]) for name in RISK_FIELDS
                if "ext_" + name in dataframe.columns}


CHART_COLUMNS = ("ext_score", "ext_signal_weight")
#: Every column a live decision adds (prepare's one concat).
FLAG_COLUMNS = ("enter_long", "exit_long", "enter_short", "exit_short")
_BLOCK_COLUMNS = frozenset({*CHART_COLUMNS, "ext_enter_score", "ext_exit_score",
                            *(c if c.startswith(EXT_PREFIX) else EXT_PREFIX + c
                              for c in (*SIGNAL_COLUMNS, *SIDED_COLUMNS)), *FLAG_COLUMNS})


def _ext(col: str) -> str:
    """The name a decision column is stored under (``ext_`` once)."""
    return col if col.startswith(EXT_PREFIX) else EXT_PREFIX + col


def _tags(block: pd.DataFrame, side: str) -> pd.Series | None:
    """Freqtrade's ``<side>_tag`` column (the tag on flagged rows, "" elsewhere), or None
    when no row is flagged (Freqtrade's reset to "" is then already right)."""
    flags = block[f"{side}_long"].to_numpy() == 1
    if f"{side}_short" in block:
        flags = flags | (block[f"{side}_short"].to_numpy() == 1)
    rows = np.flatnonzero(flags)
    if not rows.size:
        return None
    tags = np.full(len(block), "", dtype=object)
    tags[rows] = block[f"ext_{side}_tag"].to_numpy(dtype=object)[rows]
    return pd.Series(tags, index=block.index, dtype=object)


def _attach(dataframe: pd.DataFrame, block: pd.DataFrame) -> pd.DataFrame:
    """``dataframe`` with ``block``'s columns: one concat when they are new (Freqtrade's fresh
    frame every loop), else replaced one by one."""
    if not _BLOCK_COLUMNS.isdisjoint(dataframe.columns.tolist()):
        for col in block.columns:
            dataframe[col] = block[col].to_numpy()
        return dataframe
    if not block.index.equals(dataframe.index):
        block = block.set_axis(dataframe.index)
    return pd.concat([dataframe, block], axis=1)


def _store(dataframe: pd.DataFrame, cols: pd.DataFrame, futures: bool = False) -> pd.DataFrame:
    """The decision columns under ``ext_`` names; the sided ones when decided (or futures)."""
    for col in SIGNAL_COLUMNS:
        dataframe[_ext(col)] = cols[col].to_numpy()
    for col, empty in SIDED_COLUMNS.items():
        if col in cols:
            dataframe[_ext(col)] = cols[col].to_numpy()
        elif futures or _ext(col) in dataframe.columns:  # hyperopt re-decides one frame
            dataframe[_ext(col)] = empty
    return dataframe


def _copy_signal(dataframe: pd.DataFrame, side: str) -> pd.DataFrame:
    """``<side>_long``/``<side>_short`` = their ``ext_`` columns (short ones where decided);
    ``<side>_tag`` = ``ext_<side>_tag`` on flagged rows, "" elsewhere."""
    hit = np.zeros(len(dataframe), dtype=bool)
    for flag in (f"{side}_long", f"{side}_short"):
        if _ext(flag) not in dataframe.columns:
            continue
        flags = dataframe[_ext(flag)].to_numpy()
        if flag not in dataframe.columns or not np.array_equal(dataframe[flag].to_numpy(), flags):
            dataframe[flag] = flags
        hit |= flags == 1
    tag = f"{side}_tag"
    rows = np.flatnonzero(hit)
    tags = np.full(len(dataframe), "", dtype=object)
    tags[rows] = dataframe[EXT_PREFIX + tag].to_numpy(dtype=object)[rows]
    dataframe[tag] = pd.Series(tags, index=dataframe.index, dtype=object)
    return dataframe


def apply_entry(dataframe: pd.DataFrame) -> pd.DataFrame:
    """populate_entry_trend: copy the stored enter signal into Freqtrade's columns."""
    return _copy_signal(dataframe, "enter")


def apply_exit(dataframe: pd.DataFrame) -> pd.DataFrame:
    """populate_exit_trend: copy the stored exit signal into Freqtrade's columns."""
    return _copy_signal(dataframe, "exit")
