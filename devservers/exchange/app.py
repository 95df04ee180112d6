"""The aiohttp application answering Binance spot and USD-M futures REST for the stand-in.

Routes the endpoints Freqtrade and ccxt use (see ``NOTES.md``), validates
parameters the way Binance does (error codes -1100/-1120/-1121), enforces an
optional request rate limit with HTTP 429, counts every request by path and
answers any other path with a Binance-style JSON 404 and a log line, so it is
visible what a client asked for that the stand-in does not serve.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from typing import Any

from aiohttp import web

from devservers.exchange import binance_format as fmt
from devservers.exchange.market_view import INTERVALS, MAX_KLINES, MarketView
from research.data.synthetic import symbol_spec
from signal_export.contract import timeframe_seconds

log = logging.getLogger("devservers.exchange")

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class RateLimiter:
    """At most ``max_requests`` per sliding ``window_s`` seconds (None = unlimited)."""

    def __init__(self, max_requests: int | None, window_s: float = 60.0) -> None:
        self.max_requests, self.window_s = max_requests, window_s
        self._stamps: deque[float] = deque()

    def admit(self) -> tuple[bool, int]:
        now = time.monotonic()
        while self._stamps and now - self._stamps[0] > self.window_s:
            self._stamps.popleft()
        if self.max_requests is not None and len(self._stamps) >= self.max_requests:
            return False, len(self._stamps)
        self._stamps.append(now)
        return True, len(self._stamps)


class StandInState:
    """What the handlers share: the market view, the limiter and request counters."""

    def __init__(self, view: MarketView, limiter: RateLimiter) -> None:
        self.view = view
        self.limiter = limiter
        self.requests: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.unknown_paths: list[str] = []
        self.request_log: list[tuple[str, dict[str, str]]] = []
        self.by_id = {fmt.binance_symbol(s): s for s in view.market.symbols}


STATE_KEY: web.AppKey[StandInState] = web.AppKey("state", StandInState)


def _json(payload: Any, status: int = 200, **headers: str) -> web.Response:
    return web.Response(text=json.dumps(payload), status=status,
                        content_type="application/json", headers=headers)


def _symbol(state: StandInState, raw: str | None) -> str:
    if not raw:
        raise BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
    if raw not in state.by_id:
        raise BinanceError(400, -1121, "Invalid symbol.")
    return state.by_id[raw]


def _symbols(state: StandInState, request: web.Request) -> list[str] | None:
    """``symbol=X`` or ``symbols=["X","Y"]``; None means all symbols."""
    if "symbol" in request.query:
        return [_symbol(state, request.query["symbol"])]
    if "symbols" in request.query:
        try:
            names = json.loads(request.query["symbols"])
        except ValueError as exc:
            raise BinanceError(400, -1100,
                               "Illegal characters found in parameter 'symbols'.") from exc
        return [_symbol(state, n) for n in names]
    return None


def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.") from exc


def _state(request: web.Request) -> StandInState:
    return request.app[STATE_KEY]


async def ping(request: web.Request) -> web.Response:
    return _json({})


async def server_time(request: web.Request) -> web.Response:
    return _json({"serverTime": _state(request).view.now_ms()})


async def exchange_info(request: web.Request) -> web.Response:
    state = _state(request)
    chosen = _symbols(state, request) or list(state.view.market.symbols)
    specs = [symbol_spec(state.view.market, s) for s in chosen]
    return _json(fmt.exchange_info(specs, state.view.now_ms()))


async def klines(request: web.Request) -> web.Response:
    state = _state(request)
    symbol = _symbol(state, request.query.get("symbol"))
    interval = request.query.get("interval")
    if interval not in INTERVALS:
        raise BinanceError(400, -1120, "Invalid interval.")
    limit = _int(request, "limit", 500)
    if not 1 <= limit <= MAX_KLINES:
        limit = min(max(limit, 1), MAX_KLINES)
    frame = state.view.klines(symbol, interval, _int(request, "startTime"),
                              _int(request, "endTime"), limit)
    return _json(fmt.kline_rows(frame, timeframe_seconds(interval) * 1000))


async def depth(request: web.Request) -> web.Response:
    state = _state(request)
    symbol = _symbol(state, request.query.get("symbol"))
    limit = _int(request, "limit", 100)
    if limit not in DEPTH_LIMITS:
        limit = min((d for d in DEPTH_LIMITS if d >= limit), default=5000)
    bid_p, bid_q, ask_p, ask_q = state.view.book(symbol, limit)
    return _json({
        "lastUpdateId": state.view.now_ms() // 60_000,
        "bids": [[fmt.num(p), fmt.num(q)] for p, q in zip(bid_p, bid_q, strict=True)],
        "asks": [[fmt.num(p), fmt.num(q)] for p, q in zip(ask_p, ask_q, strict=True)],
    })


def _many(request: web.Request, payload) -> web.Response:
    state = _state(request)
    chosen = _symbols(state, request)
    rows = [payload(state, s) for s in (chosen or state.view.market.symbols)]
    single = "symbol" in request.query
    return _json(rows[0] if single else rows)


def _book_ticker(state: StandInState, symbol: str) -> dict[str, Any]:
    spec = symbol_spec(state.view.market, symbol)
    bid_p, bid_q, ask_p, ask_q = state.view.book(symbol, 1)
    return {"symbol": fmt.binance_symbol(symbol), "bidPrice": fmt.num(bid_p[0]),
            "bidQty": fmt.num(bid_q[0], spec.quantity_decimals), "askPrice": fmt.num(ask_p[0]),
            "askQty": fmt.num(ask_q[0], spec.quantity_decimals)}


def _ticker_24hr(state: StandInState, symbol: str) -> dict[str, Any]:
    spec = symbol_spec(state.view.market, symbol)
    bid_p, _, ask_p, _ = state.view.book(symbol, 1)
    return fmt.ticker_24hr(spec, state.view.last_day(symbol), float(bid_p[0]), float(ask_p[0]),
                           state.view.now_ms())


async def ticker_24hr(request: web.Request) -> web.Response:
    return _many(request, _ticker_24hr)


async def book_ticker(request: web.Request) -> web.Response:
    return _many(request, _book_ticker)


async def ticker_price(request: web.Request) -> web.Response:
    return _many(request, lambda state, s: {"symbol": fmt.binance_symbol(s),
                                            "price": fmt.num(state.view.last_price(s))})


async def delist_schedule(request: web.Request) -> web.Response:
    return _json([])


async def futures_exchange_info(request: web.Request) -> web.Response:
    state = _state(request)
    chosen = _symbols(state, request) or list(state.view.market.symbols)
    specs = [symbol_spec(state.view.market, s) for s in chosen]
    return _json(fmt.futures_exchange_info(specs, state.view.now_ms()))


async def premium_index(request: web.Request) -> web.Response:
    return _many(request, lambda state, s: fmt.premium_index(
        symbol_spec(state.view.market, s), state.view.last_price(s), state.view.now_ms()))


async def funding_rate(request: web.Request) -> web.Response:
    state = _state(request)
    symbol = _symbol(state, request.query.get("symbol"))
    now = state.view.now_ms()
    end = min(_int(request, "endTime", now), now)
    limit = min(max(_int(request, "limit", 100), 1), 1000)
    start = _int(request, "startTime", end - limit * fmt.FUNDING_INTERVAL_MS)

    def mark_at(t_ms: int) -> float:
        bars = state.view.klines(symbol, "1m", t_ms, t_ms, 1)
        return float(bars["open"].iloc[0]) if len(bars) else state.view.last_price(symbol)

    spec = symbol_spec(state.view.market, symbol)
    return _json(fmt.funding_history(spec, start, end, limit, mark_at))


async def unknown(request: web.Request) -> web.Response:
    state = _state(request)
    state.unknown_paths.append(request.path)
    log.warning("exchange stand-in: unsupported endpoint %s %s", request.method, request.path,
                extra={"path": request.path, "method": request.method})
    return _json(fmt.error(-1000, f"stand-in does not serve {request.method} {request.path}"),
                 status=404)


@web.middleware
async def binance_middleware(request: web.Request, handler) -> web.StreamResponse:
    state = _state(request)
    state.requests[request.path] += 1
    state.request_log.append((request.path, dict(request.query)))
    admitted, used = state.limiter.admit()
    if not admitted:
        state.rejected[request.path] += 1
        log.info("exchange stand-in: rate limit hit on %s", request.path)
        return _json(fmt.error(-1003, "Too many requests; current limit of IP is "
                                      f"{state.limiter.max_requests} requests per "
                                      f"{state.limiter.window_s:g} s."),
                     status=429, **{"Retry-After": "1", "X-MBX-USED-WEIGHT-1M": str(used)})
    try:
        response = await handler(request)
    except BinanceError as exc:
        response = _json(fmt.error(exc.code, exc.msg), status=exc.status)
    response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    return response


def build_app(state: StandInState) -> web.Application:
    app = web.Application(middlewares=[binance_middleware])
    app[STATE_KEY] = state
    routes = {
        "/api/v3/ping": ping,
        "/api/v3/time": server_time,
        "/api/v3/exchangeInfo": exchange_info,
        "/api/v3/klines": klines,
        "/api/v3/depth": depth,
        "/api/v3/ticker/24hr": ticker_24hr,
        "/api/v3/ticker/bookTicker": book_ticker,
        "/api/v3/ticker/price": ticker_price,
        "/sapi/v1/spot/delist-schedule": delist_schedule,
        # USD-M futures: the linear perpetual of every symbol, on the same candles; mark
        # price = last price, a constant funding rate (leverage tiers: Freqtrade ships them)
        "/fapi/v1/ping": ping,
        "/fapi/v1/time": server_time,
        "/fapi/v1/exchangeInfo": futures_exchange_info,
        "/fapi/v1/klines": klines,
        "/fapi/v1/markPriceKlines": klines,
        "/fapi/v1/indexPriceKlines": klines,
        "/fapi/v1/depth": depth,
        "/fapi/v1/ticker/24hr": ticker_24hr,
        "/fapi/v1/ticker/bookTicker": book_ticker,
        "/fapi/v1/ticker/price": ticker_price,
        "/fapi/v1/premiumIndex": premium_index,
        "/fapi/v1/fundingRate": funding_rate,
    }
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    app.router.add_route("*", "/{tail:.*}", unknown)
    return app
