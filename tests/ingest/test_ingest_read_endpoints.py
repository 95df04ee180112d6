"""GET /v1/signals/latest, /v1/health, the OpenAPI schema and unknown routes."""

from __future__ import annotations

from ingest_helpers import auth
from signal_bodies import batch, signal


def latest(ingest, **params):
    query = {"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1h", **params}
    return ingest.client.get("/v1/signals/latest", params=query, headers=auth())


def test_latest_returns_the_newest_signal_of_the_key(ingest) -> None:
    ingest.post(batch(3) + [signal(pair="ETH/USDT", ts="2026-11-20T10:00:00Z")])
    r = latest(ingest)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["ts"], body["pair"], body["action"], body["source"]) == (
        "2026-11-19T02:00:00+00:00", "BTC/USDT", "enter_long", "desk")
    assert body["run_id"] and "content_hash" not in body


def test_latest_accepts_a_symbol_for_the_pair(ingest) -> None:
    ingest.post(signal())
    assert latest(ingest, pair="BINANCE:BTCUSDT").json()["pair"] == "BTC/USDT"


def test_latest_survives_a_malformed_document_written_by_someone_else(ingest) -> None:
    from datetime import UTC, datetime

    from bson import Decimal128

    ingest.signals.insert_one({"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1h",
                               "ts": datetime(2026, 11, 20, 10, tzinfo=UTC),
                               "score": float("nan"), "extra": {"px": Decimal128("1.5")}})
    r = latest(ingest)
    assert r.status_code == 200, r.text
    assert "score" in r.json() and r.json()["score"] is None
    assert r.json()["extra"] == {"px": "1.5"}


def test_latest_without_any_signal_is_a_404(ingest) -> None:
    r = latest(ingest)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_latest_with_a_bad_timeframe_or_pair_names_the_field(ingest) -> None:
    assert latest(ingest, timeframe="7x").json()["field"] == "timeframe"
    assert latest(ingest, pair="BTC/XYZ").json()["field"] == "pair"
    r = ingest.client.get("/v1/signals/latest", params={"strategy_id": "alpha"}, headers=auth())
    assert r.status_code == 422 and r.json()["field"] == "pair"


def test_health_reports_mongo_without_a_token(ingest) -> None:
    r = ingest.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "mongo": "ok", "producers": 3}


def test_the_openapi_schema_documents_the_endpoints_and_both_body_shapes(ingest) -> None:
    schema = ingest.client.get("/openapi.json").json()
    assert {"/v1/signals", "/v1/signals/latest", "/v1/health"} <= set(schema["paths"])
    post = schema["paths"]["/v1/signals"]["post"]
    assert {"200", "207", "401", "403", "413", "422", "429"} <= set(post["responses"])
    components = schema["components"]["schemas"]
    assert {"SignalDocument", "TradingViewAlert", "IngestResponse"} <= set(components)
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert ingest.client.get("/docs").status_code == 200


def test_unknown_routes_and_methods_get_the_error_shape(ingest) -> None:
    r = ingest.client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = ingest.client.put("/v1/signals", headers=auth())
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
