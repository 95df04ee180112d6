"""Constants and helpers shared by the market-data tests (imported by name, not via conftest)."""

from __future__ import annotations

import ccxt
import pandas as pd

from devservers.exchange import ExchangeStandIn

#: The stand-in's frozen clock: the 00:10 bar of 2024-06-03 is in progress.
FROZEN_NOW = pd.Timestamp("2024-06-03T00:10:30Z")


def make_exchange(server: ExchangeStandIn) -> ccxt.binance:
    """A real ccxt Binance client pointed at the stand-in (same config Freqtrade gets)."""
    ccxt_config = server.overlay()["exchange"]["ccxt_config"]
    return ccxt.binance({**ccxt_config, "timeout": 10_000})
