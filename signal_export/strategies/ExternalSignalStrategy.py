"""ExternalSignalStrategy: trade the signals the research side exports to MongoDB.

A thin Freqtrade adapter around :mod:`signal_export.consumer` (all rules live
there and are documented there). Settings: the ``ext_signals`` block of the
Freqtrade config and ``EXT_SIG_*`` environment variables (see
``signal_export/consumer/config.py``). Trades follow the signals only: ROI is
off (``{"0": 100}``) and the stoploss is -99 %; add risk limits with Freqtrade
protections (``CooldownPeriod``, ``StoplossGuard``, ``MaxDrawdown``) listed in
``ext_signals.protections``, or a tighter ``stoploss`` in the config.

Futures (``trading_mode: futures``, see ``docs/LONG_SHORT.md``): ``can_short`` follows the
trading mode; the decision rule adds ``enter_short``/``exit_short`` (a flip exits and enters
on one row, Freqtrade trades both at the same open); ``leverage()`` is the entry signal's
leverage capped by ``ext_signals.max_leverage``; the signal's ``stop_loss`` is set once when
the entry fills (``custom_stoploss``) and its ``take_profit`` is a ``custom_roi`` target,
which Freqtrade checks on the candle's high/low alike in backtesting, dry-run and live.

Native Freqtrade tools work with it:

* ``freqtrade hyperopt --spaces buy sell``: the decision knobs are parameters
  (buy: ``enter_score``, ``confirm_n``, ``cooldown_bars``; sell: ``exit_score``,
  ``min_hold_bars``; :mod:`signal_export.consumer.hyperopt`) whose defaults are the
  ``ext_signals`` values; the result file Freqtrade writes next to this file
  overrides them on the next run, as for any strategy. The decision runs in
  ``populate_entry_trend``, so every epoch re-decides with its own values.
* ``freqtrade plot-dataframe`` and FreqUI: ``plot_config`` shows the stored
  score and weight per candle (``ext_score``, ``ext_signal_weight``) with the
  thresholds in use; Freqtrade draws the enter/exit marks. Outside live modes
  nothing needs a pairlist (the config's whitelist stands in).

Shipped inside the package (``signal_export/strategies/``); put it into a
Freqtrade userdir with ``signal-bridge install-strategy --userdir user_data``
(a copy of this file; it imports the rules from the installed package).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from freqtrade.exceptions import OperationalException
from freqtrade.strategy import DecimalParameter, IntParameter, IStrategy
from pandas import DataFrame

from signal_export.consumer.config import ConfigError
from signal_export.consumer.hyperopt import (
    KNOBS,
    check_ranges,
    decimals_for,
    search_ranges,
    settings_with,
)
from signal_export.consumer.logic import LIVE_RUNMODES, ExternalSignalLogic
from signal_export.consumer.matching import DEFAULT_STOPLOSS, DecisionSettings
from signal_export.logs import install_redaction_filter

# Freqtrade sets up its own log handlers: mask secrets (Mongo URI passwords, keys) in them too.
install_redaction_filter()

#: Charts (plot-dataframe, FreqUI): the stored score with the thresholds in use, and the weight.
PLOT_CONFIG: dict[str, Any] = {
    "main_plot": {},
    "subplots": {
        "signal score": {
            "ext_score": {"type": "bar", "color": "#1f77b4"},
            "ext_enter_score": {"color": "#2ca02c"},
            "ext_exit_score": {"color": "#d62728"},
        },
        "signal weight": {
            "ext_signal_weight": {"type": "bar", "color": "#9467bd"},
        },
    },
}


def _parameter(knob: Any, low: float, high: float, default: float) -> Any:
    if knob.kind == "int":
        return IntParameter(int(low), int(high), default=int(default), space=knob.space)
    decimals = max(decimals_for(default), decimals_for(low), decimals_for(high))
    return DecimalParameter(low, high, default=default, decimals=decimals, space=knob.space)


def _builtin_parameter(name: str) -> Any:
    """The parameter with the rule's built-in default and the default search range."""
    knob = next(k for k in KNOBS if k.name == name)
    return _parameter(knob, knob.low, knob.high, DecisionSettings.model_fields[name].default)


class ExternalSignalStrategy(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1h"  # overridden by the config's "timeframe"
    can_short = False
    minimal_roi = {"0": 100}
    stoploss = DEFAULT_STOPLOSS  # research decide_positions uses the same default
    use_exit_signal = True
    exit_profit_only = False
    ignore_roi_if_entry_signal = False
    # Re-evaluate the latest closed candle every loop (SPEC 5a): a signal exported up to
    # timeframe/2 after the close still acts in that candle. One cached query per loop.
    process_only_new_candles = False
    startup_candle_count = 0
    plot_config = PLOT_CONFIG

    # The decision knobs as hyperoptable parameters (signal_export/consumer/hyperopt.py). These
    # class-level ones carry the rule's built-in defaults (what list-strategies shows); every
    # instance replaces them with the ext_signals values and search ranges (see __init__).
    enter_score = _builtin_parameter("enter_score")
    confirm_n = _builtin_parameter("confirm_n")
    cooldown_bars = _builtin_parameter("cooldown_bars")
    exit_score = _builtin_parameter("exit_score")
    min_hold_bars = _builtin_parameter("min_hold_bars")

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        install_redaction_filter(config)  # also masks the secrets found in this config
        runmode = getattr(config.get("runmode"), "value", config.get("runmode"))
        try:
            self.ext = ExternalSignalLogic(config, live=runmode in LIVE_RUNMODES,
                                           notify=self._notify, runmode=runmode)
            ranges = search_ranges(self.ext.settings, self.ext.cfg.hyperopt_ranges)
            if runmode == "hyperopt":
                check_ranges(ranges)
        except ConfigError as exc:
            raise OperationalException(str(exc)) from None
        # defaults = the ext_signals values; Freqtrade then applies a hyperopt result file
        for knob in KNOBS:
            setattr(self, knob.name, _parameter(knob, *ranges[knob.name],
                                                getattr(self.ext.settings, knob.name)))
        self._decision_key: tuple | None = None
        # futures: shorts, leverage, stops and targets from the signals (spot: as before)
        self.can_short = self.ext.futures
        self.use_custom_stoploss = self.ext.futures
        self.use_custom_roi = self.ext.futures
        self.plot_config = copy.deepcopy(PLOT_CONFIG)
        # risk limits: ext_signals.protections (active with --enable-protections / live)
        self.protections = [dict(p) for p in self.ext.cfg.protections]

    def _use_parameters(self) -> None:
        """Decide with the parameters' current values (config, result file, or hyperopt epoch)."""
        values = {knob.name: getattr(self, knob.name).value for knob in KNOBS}
        key = tuple(values.values())
        if key == self._decision_key:
            return
        try:
            self.ext.use_settings(settings_with(self.ext.cfg, values))
        except ConfigError as exc:
            raise OperationalException(str(exc)) from None
        self._decision_key = key

    def _pairs(self) -> list[str]:
        """The whitelist; outside live/backtest modes (plot-dataframe, FreqUI's webserver) there
        is no pairlist provider, so the configured pairs stand in."""
        try:
            return self.dp.current_whitelist()
        except OperationalException:
            return list(self.config.get("pairs")
                        or self.config.get("exchange", {}).get("pair_whitelist", []))

    def _notify(self, message: str) -> None:
        if getattr(self, "dp", None) is not None:
            self.dp.send_msg(message, always_send=True)

    def bot_loop_start(self, current_time: datetime, **kwargs) -> None:
        self._use_parameters()
        self.ext.bot_loop_start(self._pairs(), current_time)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        return self.ext.prepare(dataframe, metadata["pair"], self._pairs())

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        self._use_parameters()
        return self.ext.entry(dataframe, metadata["pair"], self._pairs())

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        if "ext_exit_long" not in dataframe:  # populate_entry_trend decides both
            dataframe = self.populate_entry_trend(dataframe, metadata)
        return self.ext.exit(dataframe, metadata["pair"], self._pairs())

    def custom_stake_amount(self, pair: str, current_time: datetime, current_rate: float,
                            proposed_stake: float, min_stake: float | None, max_stake: float,
                            leverage: float, entry_tag: str | None, side: str,
                            **kwargs) -> float:
        return self.ext.stake(proposed_stake, max_stake, entry_tag)

    def _entry_risk(self, pair: str, opened: datetime, is_short: bool) -> dict[str, float]:
        dataframe, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        return self.ext.entry_risk(dataframe, opened, is_short)

    def leverage(self, pair: str, current_time: datetime, current_rate: float,
                 proposed_leverage: float, max_leverage: float, entry_tag: str | None,
                 side: str, **kwargs) -> float:
        return self.ext.leverage(self._entry_risk(pair, current_time, side == "short"),
                                 max_leverage)

    def custom_stoploss(self, pair: str, trade: Any, current_time: datetime,
                        current_rate: float, current_profit: float, after_fill: bool,
                        **kwargs) -> float | None:
        if not after_fill:  # set once at the fill: an initial stop, not a trailing one
            return None
        return self.ext.stoploss_value(self._entry_risk(pair, trade.open_date_utc, trade.is_short),
                                       trade.open_rate, current_rate, trade.is_short,
                                       trade.leverage)

    def custom_roi(self, pair: str, trade: Any, current_time: datetime, trade_duration: int,
                   entry_tag: str | None, side: str, **kwargs) -> float | None:
        target = self.ext.target_rate(self._entry_risk(pair, trade.open_date_utc, trade.is_short),
                                      trade.open_rate, trade.is_short)
        return None if target is None else trade.calc_profit_ratio(target)
