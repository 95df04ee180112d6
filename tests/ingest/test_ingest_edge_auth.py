"""Authentication at the edge: the header token is checked before the body is read, a token in the
body only in small bodies, refusals rate-limited per client address, strict JSON (a member named
twice is refused), and "not valid JSON" rather than "missing token" for a text body."""

from __future__ import annotations

import json

import pytest
from edge_helpers import served
from ingest_helpers import TOKENS, auth
from signal_bodies import signal

from signal_export.ingest.app import BODY_TOKEN_MAX_BYTES
from signal_export.ingest.ratelimit import RateLimiter
from signal_export.ingest.tokens import RateLimit


def tv_alert(**fields):
    return {"ticker": "BINANCE:BTCUSDT", "action": "buy", "time": "2026-11-20T11:40:00Z",
            "strategy_id": "tv_trend", "timeframe": "60", **fields}


def padded(body: dict, size: int) -> bytes:
    """``body`` as JSON, padded with trailing spaces to exactly ``size`` bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def test_a_body_token_is_read_from_a_body_up_to_the_small_limit(ingest) -> None:
    body = padded(tv_alert(token=TOKENS["desk"]), BODY_TOKEN_MAX_BYTES)
    r = ingest.client.post("/v1/signals", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    assert ingest.signals.count_documents({}) == 1


def test_a_body_token_in_a_larger_body_is_not_read(ingest) -> None:
    body = padded(tv_alert(token=TOKENS["desk"]), BODY_TOKEN_MAX_BYTES + 1)
    r = ingest.client.post("/v1/signals", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 401
    assert f"at most {BODY_TOKEN_MAX_BYTES} bytes" in r.json()["message"]
    assert ingest.signals.count_documents({}) == 0


def test_a_header_token_allows_the_full_body_limit(ingest) -> None:
    body = padded(signal(), BODY_TOKEN_MAX_BYTES * 4)
    r = ingest.client.post("/v1/signals", content=body, headers=auth())
    assert r.status_code == 200, r.text


def test_a_text_body_that_is_not_json_is_told_so_not_missing_token(ingest) -> None:
    r = ingest.client.post("/v1/signals", content=b"BINANCE:BTCUSDT buy {{close}}",
                           headers={"Content-Type": "text/plain"})
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("body is not valid JSON")
    assert r.json()["field"] == "body"
    # with a valid header token: the same answer
    r = ingest.client.post("/v1/signals", content=b"buy", headers=auth())
    assert r.status_code == 400 and r.json()["message"].startswith("body is not valid JSON")


@pytest.mark.parametrize(("raw", "member"), [
    ('{"ts": "2026-11-20T10:00:00Z", "timeframe": "1h", "pair": "BTC/USDT", '
     '"strategy_id": "alpha", "action": "enter_long", "weight": 0.5, "weight": 1.0}', "weight"),
    ('[{"ts": "2026-11-20T10:00:00Z", "timeframe": "1h", "pair": "BTC/USDT", '
     '"strategy_id": "alpha", "action": "enter_long", "extra": {"a": 1, "a": 2}}]', "a"),
    ('{"signals": [], "signals": []}', "signals"),
])
def test_a_member_named_twice_is_refused_naming_it(ingest, raw, member) -> None:
    r = ingest.client.post("/v1/signals", content=raw.encode(), headers=auth())
    assert r.status_code == 400, r.text
    assert r.json()["field"] == member
    assert f"duplicate member name {member!r}" in r.json()["message"]
    assert ingest.signals.count_documents({}) == 0


def test_a_tradingview_alert_with_two_tokens_is_refused(ingest) -> None:
    raw = json.dumps(tv_alert(token=TOKENS["desk"]))[:-1] + ', "token": "other"}'
    r = ingest.client.post("/v1/signals", content=raw.encode(),
                           headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json()["field"] == "token"
    assert TOKENS["desk"] not in r.text


def test_refusals_are_rate_limited_per_client_address(make_ingest) -> None:
    ingest = make_ingest(auth_failure_limit=RateLimit(per_second=0.001, burst=3))
    wrong = {"Authorization": "Bearer wrong-token"}
    codes = [ingest.client.post("/v1/signals", json=signal(), headers=wrong).status_code
             for _ in range(3)]
    assert codes == [401, 401, 401]
    r = ingest.client.post("/v1/signals", json=signal(), headers=wrong)
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert 900 <= int(r.headers["Retry-After"]) <= 1000
    # every kind of refusal of an unauthenticated request draws on the same budget ...
    assert ingest.post(signal(), producer=None).status_code == 429
    assert ingest.client.post("/v1/signals", content=b"not json").status_code == 429
    params = {"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1h"}
    assert ingest.client.get("/v1/signals/latest", params=params).status_code == 429
    # ... while a valid token is never held back by its address
    assert ingest.post(signal()).status_code == 200
    assert ingest.post(tv_alert(token=TOKENS["desk"]), producer=None).status_code == 200
    assert ingest.client.get("/v1/signals/latest", params=params,
                             headers=auth()).status_code == 200
    text = ingest.client.get("/metrics").text
    assert 'signal_bridge_ingest_requests_total{code="429"} 4.0' in text


def test_the_default_refusal_budget_is_twenty_then_429() -> None:
    with served() as (server, _):
        import httpx

        with httpx.Client(base_url=server.url) as client:
            codes = [client.post("/v1/signals", json=signal()).status_code for _ in range(22)]
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429]


def test_other_routes_read_at_most_the_small_body_limit() -> None:
    with served() as (server, app):
        import httpx

        with httpx.Client(base_url=server.url) as client:
            r = client.request("GET", "/metrics", content=b" " * (BODY_TOKEN_MAX_BYTES + 1))
            assert r.status_code == 413
            assert client.request("GET", "/metrics", content=b" " * 100).status_code == 200
    assert app.largest <= BODY_TOKEN_MAX_BYTES + 65536


def test_the_refusal_budgets_keep_a_bounded_number_of_addresses() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(per_second=0.001, burst=1), clock=lambda: now[0], max_keys=3)
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") > 0
    for key in ("b", "c", "d"):
        limiter.acquire(key)
    assert len(limiter) == 3
    assert limiter.acquire("a") == 0.0  # "a" was the least recently used: forgotten
    limiter.acquire("d")  # recently used ones stay
    assert limiter.acquire("d") > 0
