"""The FastAPI application of the signal ingest API: routes, auth, limits and error shapes.

Endpoints: ``POST /v1/signals`` (one signal, an array, or ``{"signals": [...]}``,
contract-shaped or TradingView alerts), ``GET /v1/signals/latest``,
``GET /v1/health``, ``GET /metrics`` (Prometheus) and the generated OpenAPI
schema at ``/openapi.json`` (docs at ``/docs``).

Order of checks on ``POST /v1/signals``, the first ones on the request head alone,
before a byte of the body is read (:class:`EdgeMiddleware`):

1. ``Authorization: Bearer`` present: an unknown token is a 401 at once; a known one
   allows a body of up to ``max_body_bytes`` (413 beyond).
2. no bearer token: the body may carry one (a single TradingView alert, ``"token"``,
   since TradingView cannot set headers), so it is read, but only up to
   ``body_token_max_bytes`` (default 8 KiB; alerts are small): a larger body (declared,
   or once that much has arrived) is a 401 without reading on. Then the JSON (400, e.g.
   "body is not valid JSON" for a text/plain alert that is not JSON) and the body token
   (401).
3. the body must arrive within ``body_timeout_s`` of the request head (408 and the
   connection closed), so a body trickled in byte by byte cannot hold a connection.
4. per-producer rate limit (429 + ``Retry-After``) -> JSON (400; a member name given twice
   in one object is refused, naming it) -> items (per-item results; 200/207/403/422, see
   :class:`~signal_export.ingest.models.IngestResponse`). MongoDB down -> 503.

Refusals of unauthenticated requests (401, and the 400 of a token-less body) come out of
a budget per client address (``auth_failure_limit``, default 20 at once, 1 per second
after): over it, 429 + ``Retry-After``, still without reading the body. A request with a
valid token is never held back by its address's budget. Every other route reads at most
``body_token_max_bytes`` of body (413 beyond). Header and keep-alive timeouts, the
connection cap and proxy headers are the server's (:mod:`signal_export.ingest.server`).

Anything unexpected is caught at the edge, logged with a request id and
answered as a clean JSON 500: bad input never gets there (fuzz-tested).
Tokens are never logged: only the producer name is.

Not for: the ingest rules themselves (:mod:`signal_export.ingest.service`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pymongo.errors import PyMongoError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signal_export.contract import Align, ContractError
from signal_export.errors import BridgeError
from signal_export.exporter import ExportError
from signal_export.ingest.metrics import PROMETHEUS_CONTENT_TYPE, IngestMetrics
from signal_export.ingest.models import (
    ErrorBody,
    Health,
    IngestResponse,
    LatestSignal,
    ingest_body_schema,
)
from signal_export.ingest.ratelimit import RateLimiter, retry_after_header
from signal_export.ingest.service import BodyError, SignalSink, ingest_body, latest_signal
from signal_export.ingest.strict import DuplicateMemberError, loads_json
from signal_export.ingest.tokens import Producer, RateLimit, TokenRegistry

log = logging.getLogger(__name__)

API_TITLE = "Signal ingest API"
DRAIN_CAP_FACTOR = 16
SIGNALS_PATH = "/v1/signals"
#: the largest body read without a bearer header (a TradingView alert with its token)
BODY_TOKEN_MAX_BYTES = 8 * 1024
BODY_TIMEOUT_S = 30.0
#: refusals of unauthenticated requests per client address: burst, then per second
AUTH_FAILURE_LIMIT = RateLimit(per_second=1.0, burst=20)
#: where the edge leaves the producer of a valid bearer header for the route
PRODUCER_SCOPE_KEY = "signal_ingest.producer"


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped, so that echoing odd input (a lone surrogate in a field
    name) can never fail to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")


def error_response(status: int, error: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return SafeJSONResponse(ErrorBody(error=error, message=message, field=field).model_dump(),
                            status_code=status, headers=headers)


class ApiError(BridgeError):
    """Raised by handlers, turned into an :class:`ErrorBody` answer."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.field, self.headers = field, headers


# --- authentication -----------------------------------------------------------


def _bearer_value(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _scope_bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return _bearer_value(value.decode("latin-1"))
    return None


def _scope_client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class Gate:
    """Token checks, with refusals of unauthenticated requests rate-limited per client
    address (:data:`AUTH_FAILURE_LIMIT`): over the budget a refusal is a 429."""

    def __init__(self, registry: TokenRegistry, failures: RateLimiter,
                 body_token_max_bytes: int) -> None:
        self.registry = registry
        self.failures = failures
        self.body_token_max_bytes = body_token_max_bytes

    def refuse(self, client: str, refusal: ApiError) -> ApiError:
        """``refusal``, or a 429 when ``client`` has used up its budget of refusals."""
        wait = self.failures.acquire(client)
        if wait > 0:
            return ApiError(429, "rate_limited", "too many unauthenticated or refused requests "
                            f"from this address; retry in {wait:.1f} s", None,
                            {"Retry-After": retry_after_header(wait)})
        return refusal

    def missing(self, client: str, why: str = "") -> ApiError:
        return self.refuse(client, ApiError(
            401, "unauthorized", f"missing bearer token (Authorization: Bearer <token>){why}",
            "Authorization", {"WWW-Authenticate": "Bearer"}))

    def invalid(self, client: str) -> ApiError:
        return self.refuse(client, ApiError(
            401, "unauthorized", "invalid bearer token", "Authorization",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'}))

    def too_large_for_body_token(self, client: str) -> ApiError:
        return self.missing(client, f"; a token in the body is read only from bodies of at "
                                    f"most {self.body_token_max_bytes} bytes")

    def authenticate(self, token: str | None, client: str) -> Producer:
        """The producer of ``token``; raises the (rate-limited) refusal otherwise."""
        if not token:
            raise self.missing(client)
        producer = self.registry.authenticate(token)
        if producer is None:
            raise self.invalid(client)
        return producer


async def _answer(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(error.status, error.error, error.message, error.field,
                         error.headers)(scope, receive, send)


# --- ASGI edge: auth before the body, size and time limits, catch-all, counter -------


class EdgeMiddleware:
    """Decides from the request head how much body may be read (:class:`Gate`; see the
    module docstring), buffers it within that limit (413, or 401 without a bearer token)
    and within ``body_timeout_s`` (408, connection closed), catches anything a handler let
    escape (clean 500) and counts answers by status code."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: IngestMetrics,
                 gate: Gate, body_timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.gate = gate
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: dict[str, int] = {}

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                self.metrics.requests.labels(code=str(message["status"])).inc()
            await send(message)

        limit, refuse_large = self.gate.body_token_max_bytes, None
        if scope.get("method") == "POST" and scope.get("path") == SIGNALS_PATH:
            client = _scope_client(scope)
            token = _scope_bearer(scope)
            if token is not None:
                producer = self.gate.registry.authenticate(token)
                if producer is None:  # refused on the head alone: the body is never read
                    await _answer(self.gate.invalid(client), scope, receive, send_counted)
                    return
                scope[PRODUCER_SCOPE_KEY] = producer
                limit = self.max_body_bytes
            else:
                limit = min(self.max_body_bytes, self.gate.body_token_max_bytes)
                refuse_large = lambda: self.gate.too_large_for_body_token(client)  # noqa: E731
        body = await self._read_body(scope, receive, send_counted, limit, refuse_large)
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send_counted)
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception("unhandled error on %s %s (request %s)", scope.get("method"),
                          scope.get("path"), request_id, extra={"request_id": request_id})
            if "code" not in status:
                response = error_response(500, "internal", f"internal error (request "
                                          f"{request_id}); the input was not stored")
                await response(scope, receive, send_counted)

    async def _read_body(self, scope: Scope, receive: Receive, send: Send, limit: int,
                         refuse_large: Callable[[], ApiError] | None) -> bytes | None:
        """The whole body, or ``None`` after answering (the reason is in the answer).

        Over ``limit``: with ``refuse_large`` (no bearer token) its refusal at once, reading
        nothing more; otherwise 413 (a moderately oversized body is drained first, so that
        the client reads the 413 instead of a reset). Not complete within
        ``body_timeout_s``: 408 and the connection is closed.
        """
        length = dict(scope.get("headers") or []).get(b"content-length")
        declared: int | None = None
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _answer(ApiError(400, "invalid", "Content-Length is not an integer",
                                       "Content-Length"), scope, receive, send)
                return None
        if refuse_large is not None and declared is not None and declared > limit:
            await _answer(refuse_large(), scope, receive, send)
            return None
        chunks: list[bytes] = []
        total = 0
        too_large = declared is not None and declared > limit
        cap = limit * DRAIN_CAP_FACTOR
        more = not (declared is not None and declared > cap)
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        while more:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await _answer(ApiError(
                    408, "timeout", f"the request body did not arrive within "
                    f"{self.body_timeout_s:g} s; nothing was stored", "body",
                    {"Connection": "close"}), scope, receive, send)
                return None
            if message["type"] == "http.disconnect":
                return None
            piece = message.get("body", b"")
            total += len(piece)
            more = message.get("more_body", False)
            if total > limit:
                if refuse_large is not None:
                    await _answer(refuse_large(), scope, receive, send)
                    return None
                too_large = True
            if too_large:
                if total > cap:
                    break
                continue
            chunks.append(piece)
        if too_large:
            size = declared if declared is not None else total
            await _answer(ApiError(413, "too_large", f"request body of {size} bytes is over the "
                                   f"limit of {limit} bytes", "body"), scope, receive, send)
            return None
        return b"".join(chunks)


# --- the app ------------------------------------------------------------------


def _pop_body_token(body: Any) -> str | None:
    """A single TradingView alert may carry its token as ``"token"`` (TradingView cannot set
    headers); it is taken out before the alert is read, so it is never stored or echoed."""
    if isinstance(body, dict) and "ticker" in body and "token" in body:
        token = body.pop("token")
        return token if isinstance(token, str) and token else ""
    return None


def _parse_json(raw: bytes) -> tuple[Any, ApiError | None]:
    """The body as JSON, or the 400 to answer (a repeated member name is refused)."""
    try:
        return loads_json(raw), None
    except DuplicateMemberError as exc:
        return None, ApiError(400, "invalid", f"body is not valid JSON for this API: {exc}",
                              exc.name)
    except ValueError as exc:
        return None, ApiError(400, "invalid", f"body is not valid JSON: {exc}", "body")
    except RecursionError:
        return None, ApiError(400, "invalid", "body is nested too deeply", "body")


def _loc_field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("query", "body", "header", "path")]
    return ".".join(parts) or "request"


def create_app(sink: SignalSink, registry: TokenRegistry, *, max_body_bytes: int = 1_048_576,
               rate_limit: RateLimit = RateLimit(10.0, 50),
               metrics: IngestMetrics | None = None,
               clock: Callable[[], float] = time.monotonic,
               wall_clock: Callable[[], datetime] | None = None,
               body_token_max_bytes: int = BODY_TOKEN_MAX_BYTES,
               body_timeout_s: float = BODY_TIMEOUT_S,
               auth_failure_limit: RateLimit = AUTH_FAILURE_LIMIT) -> FastAPI:
    """The ASGI app, wired to a signal sink and a token registry.

    ``clock`` drives the rate limiters; ``wall_clock`` (tz-aware, default: now in UTC) is
    the receive time of a request, which TradingView alert times are judged against, so
    tests can replay an alert "as received" at a given moment. ``body_token_max_bytes``,
    ``body_timeout_s`` and ``auth_failure_limit``: see the module docstring.
    """
    received_clock = wall_clock or (lambda: datetime.now(UTC))
    metrics = metrics or IngestMetrics()
    limiter = RateLimiter(rate_limit, clock)
    gate = Gate(registry, RateLimiter(auth_failure_limit, clock), body_token_max_bytes)
    app = FastAPI(title=API_TITLE, version="1", default_response_class=SafeJSONResponse,
                  description="Signals from external producers (TradingView alerts, ML servers, "
                              "research UIs) into the crypto_signals store, through the same "
                              "contract, idempotently, with an audit record per request.")
    app.state.sink, app.state.registry, app.state.metrics = sink, registry, metrics
    app.state.gate = gate

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = _loc_field(first.get("loc", ()))
        return error_response(422, "invalid", f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid")
        return error_response(exc.status_code, code, str(exc.detail), None,
                              getattr(exc, "headers", None))

    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": text} for code, text in (
            (400, "body is not JSON (or names a member twice)"),
            (401, "missing or invalid token"),
            (408, "the body did not arrive in time (connection closed)"),
            (413, "body or batch too large"), (429, "rate limited; see Retry-After"),
            (503, "MongoDB unavailable"))}
    results: dict[int | str, dict[str, Any]] = {
        code: {"model": IngestResponse, "description": text} for code, text in (
            (207, "some items accepted, some rejected"),
            (403, "no item accepted, some forbidden"))}
    results[422] = {"description": "no item accepted (per-item results), or the body / a query "
                                   "parameter is unusable (error body)",
                    "content": {"application/json": {"schema": {"anyOf": [
                        {"$ref": "#/components/schemas/IngestResponse"},
                        {"$ref": "#/components/schemas/ErrorBody"}]}}}}
    body_schema, _ = ingest_body_schema()

    @app.post("/v1/signals", response_model=IngestResponse,
              responses={**results, **error_responses},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": body_schema}}}},
              summary="Store one signal or a batch (contract shape or TradingView alert)",
              description="Auth: `Authorization: Bearer <token>`; a single TradingView alert "
                          "may instead carry `\"token\": \"<token>\"` in its body (never "
                          "stored; only in bodies of at most "
                          f"{body_token_max_bytes} bytes). See the per-status descriptions "
                          "for the answers.")
    async def post_signals(
        request: Request,
        align: Annotated[Align, Query(
            description="off-grid ts: reject (default) or ceil (next bar open)")]
        = "reject",
    ) -> Response:
        t0 = time.perf_counter()
        received_at = received_clock()
        client = request.client.host if request.client else None
        raw = await request.body()
        body, parse_error = _parse_json(raw)
        body_token = _pop_body_token(body)  # taken out even when a header token is used
        producer: Producer | None = request.scope.get(PRODUCER_SCOPE_KEY)
        if producer is None:  # no bearer header: the edge let at most a small body through
            if parse_error is not None:
                raise gate.refuse(client or "unknown", parse_error)
            producer = gate.authenticate(body_token, client or "unknown")
        wait = limiter.acquire(producer.name, producer.rate_limit)
        if wait > 0:
            raise ApiError(429, "rate_limited", f"producer {producer.name!r} is over its rate "
                           f"limit; retry in {wait:.1f} s", None,
                           {"Retry-After": retry_after_header(wait)})
        if parse_error is not None:
            raise parse_error
        try:
            outcome = await run_in_threadpool(
                ingest_body, body, producer, sink, received_at=received_at, align=align,
                audit={"remote": client})
        except BodyError as exc:
            raise ApiError(exc.status, "too_large" if exc.status == 413 else "invalid",
                           str(exc), exc.field) from None
        except (ExportError, PyMongoError) as exc:
            metrics.latency.labels(outcome="error").observe(time.perf_counter() - t0)
            log.error("ingest from %s failed: MongoDB unavailable (%s)", producer.name,
                      type(exc).__name__, extra={"producer": producer.name})
            raise ApiError(503, "unavailable", "signal store unavailable; nothing new was "
                           "acknowledged, retry later (re-posting is idempotent)", None,
                           {"Retry-After": "5"}) from None
        for status in ("accepted", "rejected", "forbidden"):
            n = outcome.count(status)
            if n:
                metrics.signals.labels(producer=producer.name, status=status).inc(n)
        metrics.latency.labels(outcome=outcome.outcome_label).observe(time.perf_counter() - t0)
        payload = outcome.as_dict()
        log.info("ingest from %s: %s", producer.name, payload["counts"],
                 extra={"producer": producer.name, "run_id": outcome.run_id})
        return SafeJSONResponse(payload, status_code=outcome.http_status)

    @app.get("/v1/signals/latest", response_model=LatestSignal,
             responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                        404: {"model": ErrorBody}, 422: {"model": ErrorBody},
                        429: {"model": ErrorBody}, 503: {"model": ErrorBody}},
             summary="The newest stored signal of one strategy, pair and timeframe")
    async def get_latest(
        request: Request,
        strategy_id: Annotated[str, Query(min_length=1, max_length=64)],
        pair: Annotated[str, Query(min_length=1, max_length=64,
                                   description="BTC/USDT or BINANCE:BTCUSDT")],
        timeframe: Annotated[str, Query(min_length=1, max_length=8)],
    ) -> Response:
        client = request.client.host if request.client else "unknown"
        producer = gate.authenticate(_bearer_value(request.headers.get("authorization")), client)
        if not producer.may_write(strategy_id):
            raise ApiError(403, "forbidden", f"strategy_id {strategy_id!r}: the token of "
                           f"producer {producer.name!r} is not bound to it", "strategy_id")
        try:
            doc = await run_in_threadpool(latest_signal, sink.collection, strategy_id, pair,
                                          timeframe, sink.quotes)
        except ContractError as exc:
            raise ApiError(422, "invalid", str(exc), exc.field or "timeframe") from None
        except PyMongoError:
            raise ApiError(503, "unavailable", "signal store unavailable", None,
                           {"Retry-After": "5"}) from None
        if doc is None:
            raise ApiError(404, "not_found", f"no signal for strategy_id={strategy_id!r} "
                           f"pair={pair!r} timeframe={timeframe!r}")
        return SafeJSONResponse(doc)

    @app.get("/v1/health", response_model=Health, responses={503: {"model": Health}},
             summary="Liveness and MongoDB connectivity (no token needed)")
    async def health() -> Response:
        def ping() -> str:
            try:
                sink.collection.database.client.admin.command("ping")
                return "ok"
            except PyMongoError as exc:
                return f"error: {type(exc).__name__}"

        mongo = await run_in_threadpool(ping)
        ok = mongo == "ok"
        body = Health(status="ok" if ok else "degraded", mongo=mongo, producers=len(registry))
        return SafeJSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            _, defs = ingest_body_schema()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(EdgeMiddleware, max_body_bytes=max_body_bytes, metrics=metrics,
                       gate=gate, body_timeout_s=body_timeout_s)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI schema without a database or tokens (for docs, clients and schema tests)."""
    sink = SignalSink(collection=None, runs_collection=None)  # type: ignore[arg-type]
    return create_app(sink, TokenRegistry([])).openapi()
