"""Fuzzing the live endpoint with hypothesis, against its own OpenAPI schema.

Bodies: random JSON, random bytes, valid signals with one field swapped for junk, and
items generated from the request-body schemas the server publishes (``SignalDocument``,
``TradingViewAlert``). Whatever the body, the answer is never a 5xx, its status code is
one the schema documents for that operation, and its JSON validates against the
documented response schema (jsonschema, Draft 2020-12, as OpenAPI 3.1 specifies).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import Ingest, auth, start_ingest
from jsonschema import Draft202012Validator
from signal_bodies import signal

from signal_export.ingest.app import openapi_document

OPENAPI = openapi_document()
COMPONENTS = OPENAPI["components"]["schemas"]

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80), st.text(max_size=30),
    st.sampled_from(["\ud800", "a\x00b", "2026-11-20T10:00:00Z", "2026-11-20T10:00:00",
                     "BTC/USDT", "BINANCE:BTCUSDT", "1h", "buy", "enter_long", "", "$set"]),
)
keys = st.text(max_size=8) | st.sampled_from(["\ud800", "a\x00", "$set", "a.b", "", "ts"])
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12)
SIGNAL_FIELDS = ["ts", "timeframe", "pair", "symbol", "strategy_id", "action", "score", "weight",
                 "valid_until", "note", "source", "version", "extra", "ticker", "time"]
TV_FIELDS = ["ticker", "action", "time", "bar_time", "strategy_id", "timeframe", "weight", "score",
             "price", "exchange", "comment", "note", "valid_until", "version", "extra"]


def tv_alert() -> dict:
    return {"ticker": "BINANCE:BTCUSDT", "action": "buy", "time": "2026-11-20T11:40:00Z",
            "strategy_id": "tv_trend", "timeframe": "60"}


@pytest.fixture(scope="module")
def fuzz_ingest(mongo_client) -> Iterator[Ingest]:
    name = f"fuzz_{uuid.uuid4().hex[:10]}"
    server, ingest = start_ingest(mongo_client[name], max_body_bytes=256 * 1024)
    yield ingest
    ingest.client.close()
    server.stop()
    mongo_client.drop_database(name)


def documented_schema(path: str, method: str, status: int) -> dict:
    responses = OPENAPI["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered undocumented {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    return {**schema, "components": OPENAPI["components"]}


def assert_clean(r) -> None:
    assert r.status_code < 500, (r.status_code, r.text, r.request.content[:500])
    body = r.json()
    assert isinstance(body, dict)
    schema = documented_schema(r.request.url.path, r.request.method, r.status_code)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(body)]
    assert not errors, (r.status_code, body, errors[:3])
    if r.status_code in (200, 207, 403, 422) and "items" in body:
        for item in body["items"]:
            assert item["status"] == "accepted" or item["errors"], item


def post_raw(ingest: Ingest, content: bytes):
    return ingest.client.post("/v1/signals", content=content,
                              headers={**auth(), "Content-Type": "application/json"})


@FUZZ
@given(body=json_values)
def test_random_json_bodies_never_get_a_5xx(fuzz_ingest, body) -> None:
    assert_clean(post_raw(fuzz_ingest, json.dumps(body).encode()))


@pytest.mark.parametrize("depth", [17, 200, 900])
def test_deeply_nested_items_are_refused_by_field_not_by_a_crash(fuzz_ingest, depth) -> None:
    nested: object = 1
    for _ in range(depth):
        nested = {"a": nested}
    r = post_raw(fuzz_ingest, json.dumps(signal(extra=nested)).encode())
    assert_clean(r)
    assert r.status_code == 422
    assert r.json()["items"][0]["errors"][0]["message"] == "nested deeper than 16 levels"


def test_odd_field_names_are_echoed_safely(fuzz_ingest) -> None:
    for name in ("\ud800", "bad\x00name"):
        r = post_raw(fuzz_ingest, json.dumps(signal(**{name: 1})).encode())
        assert_clean(r)
        assert r.status_code == 422


@FUZZ
@given(content=st.binary(max_size=300))
def test_random_bytes_never_get_a_5xx(fuzz_ingest, content) -> None:
    assert_clean(post_raw(fuzz_ingest, content))


@FUZZ
@given(field=st.sampled_from(SIGNAL_FIELDS), value=json_values, drop=st.booleans())
def test_a_signal_with_one_junk_field_never_gets_a_5xx(fuzz_ingest, field, value, drop) -> None:
    body = signal()
    if drop:
        body.pop(field, None)
    else:
        body[field] = value
    assert_clean(post_raw(fuzz_ingest, json.dumps(body).encode()))


@FUZZ
@given(field=st.sampled_from(TV_FIELDS), value=json_values)
def test_an_alert_with_one_junk_field_never_gets_a_5xx(fuzz_ingest, field, value) -> None:
    body = tv_alert()
    body[field] = value
    assert_clean(post_raw(fuzz_ingest, json.dumps([body, signal()]).encode()))


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["strategy_id", "pair", "timeframe", "align"]),
                              st.text(max_size=70), max_size=4))
def test_random_query_parameters_never_get_a_5xx(fuzz_ingest, params) -> None:
    assert_clean(fuzz_ingest.client.get("/v1/signals/latest", params=params, headers=auth()))
    assert_clean(fuzz_ingest.client.post("/v1/signals", params=params, json=signal(),
                                         headers=auth()))


def from_property(prop: dict) -> st.SearchStrategy:
    """A value of one schema property: its declared type(s), sometimes junk."""
    options = prop.get("anyOf", [prop])
    kinds = []
    for option in options:
        kind, fmt = option.get("type"), option.get("format")
        if "$ref" in option or "enum" in option:
            kinds.append(st.sampled_from(["enter_long", "exit_long", "hold"]))
        elif fmt == "date-time":
            kinds.append(st.datetimes(timezones=st.sampled_from([UTC, None])).map(
                lambda d: d.isoformat()))
        elif kind == "string":
            kinds.append(st.text(max_size=20) | st.sampled_from(
                ["1h", "60", "BTC/USDT", "BINANCE:BTCUSDT", "alpha", "tv_trend", "buy"]))
        elif kind == "number":
            kinds.append(st.floats(allow_nan=False))
        elif kind == "integer":
            kinds.append(st.integers(min_value=-5, max_value=2**64))
        elif kind == "object":
            kinds.append(st.dictionaries(st.text(max_size=5), scalars, max_size=3))
        elif kind == "null":
            kinds.append(st.none())
    return st.one_of(kinds) if kinds else json_values


def from_component(name: str) -> st.SearchStrategy:
    """Objects shaped by a published request schema: required keys always, others maybe."""
    schema = COMPONENTS[name]
    props = schema["properties"]
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {k: from_property(v) for k, v in props.items() if k in required},
        optional={k: from_property(v) for k, v in props.items() if k not in required})


@FUZZ
@given(items=st.lists(from_component("SignalDocument") | from_component("TradingViewAlert"),
                      min_size=1, max_size=5), wrap=st.booleans())
def test_bodies_generated_from_the_published_schema_never_get_a_5xx(fuzz_ingest, items,
                                                                    wrap) -> None:
    body = {"signals": items} if wrap else items
    assert_clean(post_raw(fuzz_ingest, json.dumps(body).encode()))
