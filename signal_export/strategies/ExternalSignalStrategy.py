"""ExternalSignalStrategy: trade the signals the research side exports to MongoDB.

A thin Freqtrade adapter around :mod:`signal_export.consumer` (all rules live
there and are documented there). Settings: the ``ext_signals`` block of the
Freqtrade config and ``EXT_SIG_*`` environment variables (see
``signal_export/consumer/config.py``). Trades follow the signals only: ROI is
off (``{"0": 100}``) and the stoploss is -99 %; add risk limits with Freqtrade
protections (``CooldownPeriod``, ``StoplossGuard``, ``MaxDrawdown``) listed in
``ext_signals.protections``, or a tighter ``stoploss`` in the config.

Shipped inside the package (``signal_export/strategies/``); put it into a
Freqtrade userdir with ``signal-bridge install-strategy --userdir user_data``
(a copy of this file; it imports the rules from the installed package).
"""

from __future__ import annotations

from datetime import datetime

from freqtrade.exceptions import OperationalException
from freqtrade.strategy import IStrategy
from pandas import DataFrame

from signal_export.consumer.config import ConfigError
from signal_export.consumer.logic import (
    LIVE_RUNMODES,
    ExternalSignalLogic,
    apply_entry,
    apply_exit,
)
from signal_export.logs import install_redaction_filter

# Freqtrade sets up its own log handlers: mask secrets (Mongo URI passwords, keys) in them too.
install_redaction_filter()


class ExternalSignalStrategy(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1h"  # overridden by the config's "timeframe"
    can_short = False
    minimal_roi = {"0": 100}
    stoploss = -0.99
    use_exit_signal = True
    exit_profit_only = False
    ignore_roi_if_entry_signal = False
    # Re-evaluate the latest closed candle every loop (SPEC 5a): a signal exported up to
    # timeframe/2 after the close still acts in that candle. One cached query per loop.
    process_only_new_candles = False
    startup_candle_count = 0

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        install_redaction_filter(config)  # also masks the secrets found in this config
        runmode = getattr(config.get("runmode"), "value", config.get("runmode"))
        try:
            self.ext = ExternalSignalLogic(config, live=runmode in LIVE_RUNMODES,
                                           notify=self._notify)
        except ConfigError as exc:
            raise OperationalException(str(exc)) from None
        # risk limits: ext_signals.protections (active with --enable-protections / live)
        self.protections = [dict(p) for p in self.ext.cfg.protections]

    def _notify(self, message: str) -> None:
        if getattr(self, "dp", None) is not None:
            self.dp.send_msg(message, always_send=True)

    def bot_loop_start(self, current_time: datetime, **kwargs) -> None:
        self.ext.bot_loop_start(self.dp.current_whitelist(), current_time)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        return self.ext.populate(dataframe, metadata["pair"], self.dp.current_whitelist())

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        return apply_entry(dataframe)

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        return apply_exit(dataframe)

    def custom_stake_amount(self, pair: str, current_time: datetime, current_rate: float,
                            proposed_stake: float, min_stake: float | None, max_stake: float,
                            leverage: float, entry_tag: str | None, side: str,
                            **kwargs) -> float:
        return self.ext.stake(proposed_stake, max_stake, entry_tag)
