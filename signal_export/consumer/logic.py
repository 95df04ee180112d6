"""What ``ExternalSignalStrategy`` does in each Freqtrade hook, without Freqtrade types.

The strategy file stays a thin adapter; this class holds the behaviour so it
can be tested in-process: read signals (one query per loop live, one per
backtest range), match them onto the candle frame, apply the outage policy,
size stakes from weights, and keep the counters for monitoring. Not the
matcher's rules (:mod:`.matching`) nor the MongoDB access (:mod:`.source`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pymongo

from signal_export.consumer.config import ExtSignalsConfig, MissingSignalPolicy, load_config
from signal_export.consumer.matching import (
    MatchResult,
    empty_signal_columns,
    match_signals,
    parse_tag,
)
from signal_export.consumer.source import SignalSource
from signal_export.consumer.stats import SignalStats, serve_metrics
from signal_export.contract import floor_to_bar

logger = logging.getLogger(__name__)

SIGNAL_COLUMNS: tuple[str, ...] = ("enter_long", "exit_long", "enter_tag", "exit_tag", "ext_weight")
#: populate_indicators stores the signals under these names; Freqtrade resets enter_tag/exit_tag
#: before populate_entry_trend/populate_exit_trend, which copy them (apply_entry/apply_exit).
EXT_PREFIX = "ext_"
OUTAGE_EXIT_TAG = "ext:outage"
LIVE_RUNMODES = frozenset({"live", "dry_run"})


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
    ) -> None:
        self.cfg: ExtSignalsConfig = load_config(ft_config, env)
        self.rules = self.cfg.to_rules()
        self.live = live
        self.source = SignalSource(self.cfg, notify=notify, client=client, live=live)
        self.stats = SignalStats()
        if live and self.cfg.metrics_port:
            serve_metrics(self.cfg.metrics_port, self.cfg.metrics_address)
        self.now: datetime | None = None
        self._summary_candle: datetime | None = None
        logger.info("ExternalSignalStrategy reads %s/%s.%s for strategy_ids=%s timeframe=%s (%s)",
                    self.cfg.redacted_uri(), self.cfg.db, self.cfg.collection,
                    ",".join(self.cfg.strategy_ids), self.cfg.timeframe,
                    "live: one query per bot loop" if live else "backtest: one query per range")

    def bot_loop_start(self, pairs: Collection[str], current_time: datetime) -> None:
        """Live: refresh the cache with one query for all pairs. Backtesting: nothing."""
        if not self.live:
            return
        self.now = current_time
        self._log_summary(current_time)
        self.source.refresh(pairs, current_time)

    def _log_summary(self, now: datetime) -> None:
        """Once per candle: totals of the latest evaluation and the worst signal lag."""
        candle = floor_to_bar(now, self.cfg.timeframe)
        if candle == self._summary_candle:
            return
        self._summary_candle = candle
        snap = self.stats.snapshot()
        if not snap["counts"]:
            return
        totals: Counter = Counter()
        for counts in snap["counts"].values():
            totals.update(counts)
        lags = snap["lag_seconds"]
        worst = max(lags.items(), key=lambda kv: kv[1]) if lags else None
        logger.info("ext_signals summary: %s; max lag %s",
                    ", ".join(f"{k}={v}" for k, v in sorted(totals.items()) if v) or "no signals",
                    f"{worst[1]:.0f}s ({worst[0]})" if worst else "n/a",
                    extra={"ext_signals_counts": dict(totals)})

    def populate(self, dataframe: pd.DataFrame, pair: str, pairs: Collection[str]) -> pd.DataFrame:
        """The candle frame with ``ext_<signal column>`` filled in (see SIGNAL_COLUMNS)."""
        if dataframe.empty:
            return _store(dataframe, empty_signal_columns(0, dataframe.index))
        if self.live:
            signals = self.source.signals_for(pair)
            if signals is None:
                return self._outage_columns(dataframe)
            now = self.now or datetime.now(UTC)
            result = match_signals(dataframe, signals, self.rules, now=now)
        else:
            self.source.load_range(set(pairs) | {pair}, dataframe["date"].iloc[0],
                                   dataframe["date"].iloc[-1])
            signals = self.source.signals_for(pair)
            result = match_signals(dataframe, signals, self.rules)
        self._record(pair, result)
        return _store(dataframe, result.frame)

    def _outage_columns(self, dataframe: pd.DataFrame) -> pd.DataFrame:
        """Signals unknown: no enters anywhere; exit on the live row only if the policy says so."""
        cols = empty_signal_columns(len(dataframe), dataframe.index)
        if self.cfg.missing_signal_policy is MissingSignalPolicy.EXIT:
            cols.iloc[-1, cols.columns.get_loc("exit_long")] = 1
            cols.iloc[-1, cols.columns.get_loc("exit_tag")] = OUTAGE_EXIT_TAG
        return _store(dataframe, cols)

    def _record(self, pair: str, result: MatchResult) -> None:
        counts = Counter(result.counts)
        counts.update(self.source.read_counts.get(pair, Counter()))
        self.stats.record(pair, counts)
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
            stake = proposed_stake * parsed[2]
        cap = max_stake * self.cfg.max_stake_fraction
        return float(np.clip(stake, 0.0, cap))


def _store(dataframe: pd.DataFrame, cols: pd.DataFrame) -> pd.DataFrame:
    for col in SIGNAL_COLUMNS:
        name = col if col.startswith(EXT_PREFIX) else EXT_PREFIX + col
        dataframe[name] = cols[col].to_numpy()
    return dataframe


def apply_entry(dataframe: pd.DataFrame) -> pd.DataFrame:
    """populate_entry_trend: copy the stored enter signal into Freqtrade's columns."""
    dataframe["enter_long"] = dataframe["ext_enter_long"]
    dataframe["enter_tag"] = dataframe["ext_enter_tag"].where(dataframe["ext_enter_long"] == 1, "")
    return dataframe


def apply_exit(dataframe: pd.DataFrame) -> pd.DataFrame:
    """populate_exit_trend: copy the stored exit signal into Freqtrade's columns."""
    dataframe["exit_long"] = dataframe["ext_exit_long"]
    dataframe["exit_tag"] = dataframe["ext_exit_tag"].where(dataframe["ext_exit_long"] == 1, "")
    return dataframe
