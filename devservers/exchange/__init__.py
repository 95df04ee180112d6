"""A local Binance-compatible exchange stand-in for offline tests and the demo.

It serves the Binance spot REST endpoints that ccxt and Freqtrade use, with
candles from the research side's synthetic market, so Freqtrade and research
see the same prices. A development tool: product code never imports it.
"""

from devservers.exchange.overlay import freqtrade_exchange_overlay
from devservers.exchange.server import ExchangeStandIn

__all__ = ["ExchangeStandIn", "freqtrade_exchange_overlay"]
