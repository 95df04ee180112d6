"""Request size limit (413), per-token rate limit (429 + Retry-After) and the metrics endpoint."""

from __future__ import annotations

import json

import pytest
from ingest_helpers import MAX_BODY_BYTES, TOKENS
from signal_bodies import batch, signal


def test_a_body_over_the_size_limit_is_a_413_and_stores_nothing(ingest) -> None:
    items = batch(20, note="x" * 1000)
    items = items * (MAX_BODY_BYTES // len(json.dumps(items)) + 1)
    r = ingest.post(items)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "too_large" and str(MAX_BODY_BYTES) in r.json()["message"]
    assert ingest.signals.count_documents({}) == 0


def test_a_chunked_body_over_the_size_limit_is_a_413(ingest) -> None:
    def chunks():
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024
        yield json.dumps(signal()).encode()

    r = ingest.client.post("/v1/signals", content=chunks(),
                           headers={"Authorization": f"Bearer {TOKENS['desk']}",
                                    "Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413
    assert ingest.signals.count_documents({}) == 0


def test_a_body_just_under_the_limit_is_accepted(ingest) -> None:
    body = json.dumps(signal()).encode()
    padded = body + b" " * (MAX_BODY_BYTES - len(body))
    r = ingest.client.post("/v1/signals", content=padded,
                           headers={"Authorization": f"Bearer {TOKENS['desk']}"})
    assert r.status_code == 200, r.text


def test_a_producer_over_its_rate_limit_gets_429_with_retry_after(ingest) -> None:
    # producer "slow": burst 2, refills one request per 1000 s
    codes = [ingest.post(signal(strategy_id="gamma"), producer="slow").status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    r = ingest.post(signal(strategy_id="gamma"), producer="slow")
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert 900 <= int(r.headers["Retry-After"]) <= 1000


def test_the_rate_limit_is_per_token(ingest) -> None:
    for _ in range(3):
        ingest.post(signal(strategy_id="gamma"), producer="slow")
    assert ingest.post(signal(), producer="desk").status_code == 200


def test_the_default_rate_limit_applies_to_producers_without_their_own(make_ingest) -> None:
    from signal_export.ingest.tokens import RateLimit

    ingest = make_ingest(rate_limit=RateLimit(per_second=0.001, burst=1))
    assert ingest.post(signal()).status_code == 200
    assert ingest.post(signal()).status_code == 429


def test_ingest_latency_and_counts_are_exported_as_prometheus_metrics(ingest) -> None:
    ingest.post(batch(3))
    ingest.post([signal(weight=9.0)])
    text = ingest.client.get("/metrics").text
    assert 'signal_bridge_ingest_latency_seconds_count{outcome="ok"} 1.0' in text
    assert 'signal_bridge_ingest_latency_seconds_count{outcome="rejected"} 1.0' in text
    assert 'signal_bridge_ingest_signals_total{producer="desk",status="accepted"} 3.0' in text
    assert 'signal_bridge_ingest_signals_total{producer="desk",status="rejected"} 1.0' in text
    assert 'signal_bridge_ingest_requests_total{code="422"} 1.0' in text


def test_a_declared_body_far_over_the_limit_is_refused_without_reading_it(ingest) -> None:
    import socket

    request = (b"POST /v1/signals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer " + TOKENS["desk"].encode() + b"\r\n"
               b"Content-Length: 999999999\r\n\r\n[")
    with socket.create_connection((ingest.url.split("//")[1].split(":")[0],
                                   int(ingest.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(request)
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert '"too_large"' in answer


def test_a_bug_behind_the_api_is_a_clean_logged_500_not_a_crash(make_ingest, caplog) -> None:
    # a misconfigured sink (quote currencies that are not strings) makes the contract code
    # raise TypeError: the edge turns it into a JSON 500 with a request id, and logs it
    ingest = make_ingest(quotes=(1, 2))
    r = ingest.post(signal())
    assert r.status_code == 500
    assert r.json()["error"] == "internal" and "request" in r.json()["message"]
    assert any("unhandled error on POST /v1/signals" in rec.getMessage()
               for rec in caplog.records)
    assert ingest.client.get("/v1/health").status_code == 200  # the server lives on


def test_the_bucket_refills_at_its_rate() -> None:
    from signal_export.ingest.ratelimit import RateLimiter, retry_after_header
    from signal_export.ingest.tokens import RateLimit

    now = [100.0]
    limiter = RateLimiter(RateLimit(per_second=2.0, burst=2), clock=lambda: now[0])
    assert [limiter.acquire("p") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("p") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.acquire("p") == 0.0
    assert limiter.acquire("other") == 0.0  # its own bucket
    assert retry_after_header(0.01) == "1" and retry_after_header(2.2) == "3"
