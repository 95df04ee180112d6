"""Binance spot and USD-M futures REST payloads built from stand-in market data.

Pure functions that shape JSON the way ``api.binance.com`` does (numbers as
strings, millisecond timestamps, ``filters`` lists), so that ccxt's Binance
parser and Freqtrade accept them unchanged. Nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from research.data.synthetic import SymbolSpec
from signal_export.contract import symbol_to_pair

ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
               "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def num(value: float, decimals: int | None = None) -> str:
    """A number as Binance writes it: a string, exact for the float it came from."""
    return f"{value:.{decimals}f}" if decimals is not None else repr(float(value))


def binance_symbol(symbol: str) -> str:
    """``BINANCE:BTCUSDT`` -> ``BTCUSDT`` (Binance's own symbol id)."""
    return symbol.split(":", 1)[1]


def symbol_info(spec: SymbolSpec, min_notional: float = 5.0) -> dict[str, Any]:
    """One entry of ``exchangeInfo.symbols`` with realistic filters."""
    base, quote = symbol_to_pair(spec.symbol).split("/")
    p, q = spec.price_decimals, spec.quantity_decimals
    return {
        "symbol": binance_symbol(spec.symbol),
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": num(spec.tick_size, p),
             "maxPrice": num(1_000_000.0, p), "tickSize": num(spec.tick_size, p)},
            {"filterType": "LOT_SIZE", "minQty": num(spec.step_size, q),
             "maxQty": num(9_000_000.0, q), "stepSize": num(spec.step_size, q)},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": num(0.0, q),
             "maxQty": num(1_000_000.0, q), "stepSize": num(0.0, q)},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10,
             "maxTrailingAboveDelta": 2000, "minTrailingBelowDelta": 10,
             "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5",
             "bidMultiplierDown": "0.2", "askMultiplierUp": "5", "askMultiplierDown": "0.2",
             "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": num(min_notional, 8),
             "applyMinToMarket": True, "maxNotional": "9000000.00000000",
             "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def exchange_info(specs: list[SymbolSpec], server_time_ms: int) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [symbol_info(spec) for spec in specs],
    }


FUTURES_ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                       "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]
#: Binance's "perpetual" delivery date (2100-12-25) and a plausible listing date.
PERPETUAL_DELIVERY_MS = 4133404800000
ONBOARD_MS = 1569398400000
#: The funding rate the stand-in quotes (Binance's common base rate, every 8 hours).
FUNDING_RATE = 0.0001
FUNDING_INTERVAL_MS = 8 * 3_600_000


def futures_symbol_info(spec: SymbolSpec, min_notional: float = 5.0) -> dict[str, Any]:
    """One ``/fapi/v1/exchangeInfo`` entry: the USD-M linear perpetual of a spot symbol
    (same id, e.g. ``BTCUSDT``; ccxt names it ``BTC/USDT:USDT``)."""
    base, quote = symbol_to_pair(spec.symbol).split("/")
    p, q = spec.price_decimals, spec.quantity_decimals
    return {
        "symbol": binance_symbol(spec.symbol),
        "pair": binance_symbol(spec.symbol),
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": ONBOARD_MS,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": p,
        "quantityPrecision": q,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": num(spec.tick_size, p),
             "maxPrice": num(1_000_000.0, p), "tickSize": num(spec.tick_size, p)},
            {"filterType": "LOT_SIZE", "minQty": num(spec.step_size, q),
             "maxQty": num(9_000_000.0, q), "stepSize": num(spec.step_size, q)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": num(spec.step_size, q),
             "maxQty": num(1_000_000.0, q), "stepSize": num(spec.step_size, q)},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": num(min_notional, 0)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
             "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
        "orderTypes": FUTURES_ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSets": ["GRID", "COPY"],
    }


def futures_exchange_info(specs: list[SymbolSpec], server_time_ms: int) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [futures_symbol_info(spec) for spec in specs],
    }


def premium_index(spec: SymbolSpec, mark: float, now_ms: int) -> dict[str, Any]:
    """``/fapi/v1/premiumIndex``: mark = index = the last price, a constant funding rate."""
    return {
        "symbol": binance_symbol(spec.symbol),
        "markPrice": num(mark, spec.price_decimals),
        "indexPrice": num(mark, spec.price_decimals),
        "estimatedSettlePrice": num(mark, spec.price_decimals),
        "lastFundingRate": num(FUNDING_RATE, 8),
        "interestRate": "0.00010000",
        "nextFundingTime": (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS,
        "time": now_ms,
    }


def funding_history(spec: SymbolSpec, start_ms: int, end_ms: int, limit: int,
                    mark_at: Any) -> list[dict[str, Any]]:
    """``/fapi/v1/fundingRate``: the constant rate at every 8 h boundary in the range."""
    first = -(-start_ms // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
    times = range(first, end_ms + 1, FUNDING_INTERVAL_MS)
    return [{"symbol": binance_symbol(spec.symbol), "fundingTime": t,
             "fundingRate": num(FUNDING_RATE, 8), "markPrice": num(mark_at(t), spec.price_decimals)}
            for t in list(times)[:limit]]


def kline_rows(frame: pd.DataFrame, tf_ms: int) -> list[list[Any]]:
    """Binance kline arrays: open time, OHLCV strings, close time, quote volume, trades..."""
    opens = frame["datetime"].dt.as_unit("ms").array.asi8
    quote = frame["close"].to_numpy() * frame["volume"].to_numpy()
    cols = [frame[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
    return [
        [int(t), num(o), num(h), num(lo), num(c), num(v), int(t + tf_ms - 1), num(qv), 50,
         num(v / 2), num(qv / 2), "0"]
        for t, o, h, lo, c, v, qv in zip(opens, *cols, quote, strict=True)
    ]


def ticker_24hr(spec: SymbolSpec, day: pd.DataFrame, bid: float, ask: float,
                now_ms: int) -> dict[str, Any]:
    """The rolling 24h statistics of one symbol from its last 1440 minute bars."""
    last = float(day["close"].iloc[-1])
    first = float(day["open"].iloc[0])
    volume = float(day["volume"].sum())
    quote_volume = float((day["close"] * day["volume"]).sum())
    p = spec.price_decimals
    return {
        "symbol": binance_symbol(spec.symbol),
        "priceChange": num(last - first, p),
        "priceChangePercent": num(100.0 * (last / first - 1.0), 3),
        "weightedAvgPrice": num(quote_volume / volume if volume else last, p),
        "prevClosePrice": num(float(day["close"].iloc[-2]) if len(day) > 1 else first),
        "lastPrice": num(last),
        "lastQty": num(spec.step_size, spec.quantity_decimals),
        "bidPrice": num(bid),
        "bidQty": num(spec.minute_volume, spec.quantity_decimals),
        "askPrice": num(ask),
        "askQty": num(spec.minute_volume, spec.quantity_decimals),
        "openPrice": num(first),
        "highPrice": num(float(day["high"].max())),
        "lowPrice": num(float(day["low"].min())),
        "volume": num(volume, spec.quantity_decimals),
        "quoteVolume": num(quote_volume, 8),
        "openTime": now_ms - 86_400_000,
        "closeTime": now_ms,
        "firstId": 1,
        "lastId": len(day) * 50,
        "count": len(day) * 50,
    }


def error(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg}
