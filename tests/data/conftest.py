"""Fixtures for the market-data tests: a synthetic market, the exchange stand-in, ccxt."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest
from market_data_helpers import FROZEN_NOW, make_exchange

from devservers.exchange import ExchangeStandIn
from research.data.market_store import MarketStore
from research.data.synthetic import SyntheticMarket


@pytest.fixture
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=11, symbols=("BTC/USDT", "ETH/USDT"))


@pytest.fixture
def standin(market: SyntheticMarket) -> Iterator[ExchangeStandIn]:
    with ExchangeStandIn(market=market, now=FROZEN_NOW) as server:
        yield server


@pytest.fixture
def exchange(standin: ExchangeStandIn) -> ccxt.binance:
    return make_exchange(standin)


@pytest.fixture
def store(mongo_db) -> MarketStore:
    return MarketStore(mongo_db)
