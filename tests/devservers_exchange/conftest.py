"""Fixtures for the exchange stand-in tests."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest
from standin_helpers import STANDIN_NOW

from devservers.exchange import ExchangeStandIn
from research.data.synthetic import SyntheticMarket


@pytest.fixture
def standin_market() -> SyntheticMarket:
    return SyntheticMarket(seed=21, symbols=("BTC/USDT", "ETH/USDT", "XRP/USDT"))


@pytest.fixture
def frozen_standin(standin_market: SyntheticMarket) -> Iterator[ExchangeStandIn]:
    with ExchangeStandIn(market=standin_market, now=STANDIN_NOW) as server:
        yield server


@pytest.fixture
def binance(frozen_standin: ExchangeStandIn) -> ccxt.binance:
    return ccxt.binance({**frozen_standin.overlay()["exchange"]["ccxt_config"], "timeout": 10_000})
