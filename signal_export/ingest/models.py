"""The JSON shapes of the ingest API, as pydantic models for the generated OpenAPI schema.

Request bodies are *documented* by these models but parsed item by item by
:mod:`signal_export.ingest.service` (so one bad item never sinks a batch). A
contract-shaped item is validated by :class:`~signal_export.contract.SignalDocument`
itself, so the schema and the rules cannot drift apart.

Not for: validation rules (they live in the contract) or HTTP routing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from signal_export.contract import SignalDocument
from signal_export.ingest.tradingview import TradingViewAlert

SignalItem = SignalDocument | TradingViewAlert


class SignalBatch(BaseModel):
    """A batch wrapped in an object: ``{"signals": [...]}`` (a bare JSON array works too)."""

    signals: list[SignalItem]


#: What ``POST /v1/signals`` accepts: one item, an array of items, or ``{"signals": [...]}``.
IngestBody = SignalItem | list[SignalItem] | SignalBatch


class FieldError(BaseModel):
    field: str = Field(description="the offending field, e.g. 'weight' or 'ticker'")
    message: str


class SignalKey(BaseModel):
    strategy_id: str
    pair: str
    timeframe: str
    ts: str = Field(description="bar open time, ISO-8601 UTC")


class ItemResult(BaseModel):
    """Per item: ``accepted`` (valid and handed to the exporter; the batch counts say whether
    it was inserted, updated or already stored), ``rejected`` (bad field) or ``forbidden``
    (the token may not write that strategy_id)."""

    index: int
    status: Literal["accepted", "rejected", "forbidden"]
    key: SignalKey | None = None
    errors: list[FieldError] = Field(default_factory=list)


class IngestCounts(BaseModel):
    received: int
    accepted: int
    rejected: int
    forbidden: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale_version: int = 0
    failed: int = 0


class IngestResponse(BaseModel):
    """Status 200: all accepted; 207: some accepted, some not; 403: none accepted and some
    forbidden; 422: none accepted. The body has the same shape in every case."""

    run_id: str | None = Field(description="export run id (audit record); null if none stored")
    producer: str
    counts: IngestCounts
    items: list[ItemResult]


class ErrorBody(BaseModel):
    """Every non-2xx answer other than the ingest results above."""

    error: str = Field(description="short code: unauthorized, forbidden, too_large, "
                                   "rate_limited, invalid, not_found, unavailable, internal")
    message: str
    field: str | None = None


class LatestSignal(BaseModel):
    """The newest stored signal of one (strategy_id, pair, timeframe)."""

    strategy_id: str
    pair: str
    timeframe: str
    ts: str
    symbol: str | None = None
    action: str | None = None
    score: float | None = None
    weight: float | None = None
    valid_until: str | None = None
    note: str | None = None
    source: str | None = None
    version: int | None = None
    extra: dict[str, Any] | None = None
    leverage: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    updated_at: str | None = None
    run_id: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    mongo: str
    producers: int


def ingest_body_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema of the request body, component schemas it refers to) for the OpenAPI document."""
    schema = TypeAdapter(IngestBody).json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return schema, defs
