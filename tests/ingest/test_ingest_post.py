"""POST /v1/signals through a real uvicorn server: storing, batches, idempotency, bad fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from signal_bodies import batch, signal

from signal_export.contract import CONTENT_HASH_FIELD, UPDATED_AT_FIELD


def test_a_valid_signal_is_stored_with_the_producer_as_source(ingest) -> None:
    r = ingest.post(signal())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"]["inserted"] == 1 and body["counts"]["accepted"] == 1
    assert body["items"] == [{"index": 0, "status": "accepted", "errors": [], "key": {
        "strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1h",
        "ts": "2026-11-20T10:00:00+00:00"}}]
    doc = ingest.signals.find_one({"strategy_id": "alpha"})
    assert doc["ts"] == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert (doc["symbol"], doc["action"], doc["weight"], doc["source"]) == (
        "BINANCE:BTCUSDT", "enter_long", 0.5, "desk")


def test_every_request_leaves_the_exporters_audit_record_naming_the_producer(ingest) -> None:
    run_id = ingest.post(signal()).json()["run_id"]
    record = ingest.runs.find_one({"run_id": run_id})
    assert record["status"] == "ok" and record["counts"]["inserted"] == 1
    assert record["extra"]["producer"] == "desk"
    assert record["extra"]["channel"] == "ingest-api"
    assert record["strategy_ids"] == ["alpha"]


def test_a_batch_is_stored_in_one_run(ingest) -> None:
    r = ingest.post(batch(5))
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["inserted"] == 5
    assert ingest.signals.count_documents({"strategy_id": "alpha"}) == 5
    assert ingest.runs.count_documents({}) == 1


def test_a_batch_may_be_wrapped_in_a_signals_object(ingest) -> None:
    r = ingest.post({"signals": batch(3)})
    assert r.status_code == 200, r.text
    assert ingest.signals.count_documents({}) == 3


def test_re_posting_the_same_batch_changes_nothing(ingest) -> None:
    assert ingest.post(batch(4)).json()["counts"]["inserted"] == 4
    before = {d["ts"]: (d[UPDATED_AT_FIELD], d[CONTENT_HASH_FIELD]) for d in ingest.signals.find()}
    again = ingest.post(batch(4))
    assert again.status_code == 200
    counts = again.json()["counts"]
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (0, 0, 4)
    after = {d["ts"]: (d[UPDATED_AT_FIELD], d[CONTENT_HASH_FIELD]) for d in ingest.signals.find()}
    assert after == before


def test_a_changed_signal_overwrites_the_stored_one(ingest) -> None:
    ingest.post(signal(weight=0.5))
    counts = ingest.post(signal(weight=0.8)).json()["counts"]
    assert (counts["inserted"], counts["updated"]) == (0, 1)
    assert ingest.signals.find_one()["weight"] == 0.8


def test_good_items_of_a_batch_are_stored_and_bad_ones_reported(ingest) -> None:
    items = batch(3)
    items[1]["weight"] = 7.0
    r = ingest.post(items)
    assert r.status_code == 207, r.text
    body = r.json()
    assert [i["status"] for i in body["items"]] == ["accepted", "rejected", "accepted"]
    assert body["items"][1]["errors"][0]["field"] == "weight"
    assert body["counts"] == {"received": 3, "accepted": 2, "rejected": 1, "forbidden": 0,
                              "inserted": 2, "updated": 0, "unchanged": 0, "stale_version": 0,
                              "failed": 0}
    stored = sorted(d["ts"].hour for d in ingest.signals.find())
    assert stored == [0, 2]


def test_duplicate_keys_inside_one_batch_are_all_rejected(ingest) -> None:
    r = ingest.post([signal(), signal(weight=0.9), signal(ts="2026-11-20T11:00:00Z")])
    assert r.status_code == 207
    assert [i["status"] for i in r.json()["items"]] == ["rejected", "rejected", "accepted"]
    assert r.json()["items"][0]["errors"][0]["field"] == "key"


BAD_FIELDS = [
    ("ts", {"ts": "2026-11-20T10:00:00"}),             # naive
    ("ts", {"ts": "2026-11-20T10:30:00Z"}),            # off the 1h grid
    ("ts", {"ts": "yesterday"}),
    ("ts", {"ts": None}),                              # missing
    ("ts", {"ts": "2099-01-01T00:00:00Z"}),            # from the future
    ("timeframe", {"timeframe": "7x"}),
    ("timeframe", {"timeframe": 60}),
    ("pair", {"pair": "BTC/XYZ"}),
    ("symbol", {"pair": None, "symbol": "BTCUSDT"}),
    ("strategy_id", {"strategy_id": None}),
    ("strategy_id", {"strategy_id": ["alpha"]}),
    ("action", {"action": "short"}),
    ("weight", {"weight": 1.5}),
    ("weight", {"weight": "heavy"}),
    ("weight", {"action": "exit_long", "weight": 0.5}),
    ("score", {"score": [1, 2]}),
    ("valid_until", {"valid_until": "2026-11-20T09:00:00Z"}),
    ("version", {"version": 0}),
    ("version", {"version": 2**70}),                   # beyond what MongoDB stores
    ("note", {"note": "x" * 1001}),
    ("extra.nested", {"extra": {"nested": {"a": 1}}}),
    ("colour", {"colour": "red"}),                     # unknown field
]


@pytest.mark.parametrize(("field", "change"), BAD_FIELDS,
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_FIELDS)])
def test_a_bad_field_is_a_4xx_naming_it_and_nothing_is_stored(ingest, field, change) -> None:
    r = ingest.post(signal(**change))
    assert r.status_code == 422, r.text
    item = r.json()["items"][0]
    assert item["status"] == "rejected"
    assert field in {e["field"] for e in item["errors"]}, item
    assert ingest.signals.count_documents({}) == 0


def test_an_empty_body_is_a_400(ingest) -> None:
    r = ingest.post(None)
    assert r.status_code == 400 and r.json()["field"] == "body"


def test_a_body_that_is_not_json_is_a_400(ingest) -> None:
    r = ingest.client.post("/v1/signals", content=b"{not json", headers={
        "Authorization": "Bearer tok-desk-0123456789abcdef", "Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["field"] == "body" and "not valid JSON" in r.json()["message"]


@pytest.mark.parametrize("body", [42, "a string", None, [], {"signals": "nope"}])
def test_a_body_that_is_no_signal_is_a_422_naming_it(ingest, body) -> None:
    r = ingest.client.post("/v1/signals", content=json.dumps(body).encode(), headers={
        "Authorization": "Bearer tok-desk-0123456789abcdef", "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] in ("body", "signals")


def test_a_non_object_item_is_rejected_by_index(ingest) -> None:
    r = ingest.post([signal(), 5])
    assert r.status_code == 207
    assert r.json()["items"][1]["errors"] == [
        {"field": "document", "message": "expected a signal object, got int"}]


def test_too_many_items_in_one_request_is_a_413(make_ingest) -> None:
    ingest = make_ingest(max_items=3)
    r = ingest.post(batch(4))
    assert r.status_code == 413 and "at most 3" in r.json()["message"]


def test_off_grid_ts_may_move_up_to_the_next_bar_on_request(ingest) -> None:
    r = ingest.client.post("/v1/signals", params={"align": "ceil"},
                           json=signal(ts="2026-11-20T10:42:00Z"),
                           headers={"Authorization": "Bearer tok-desk-0123456789abcdef"})
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["key"]["ts"] == "2026-11-20T11:00:00+00:00"


def test_an_unknown_align_value_is_a_422_naming_it(ingest) -> None:
    r = ingest.client.post("/v1/signals", params={"align": "round"}, json=signal(),
                           headers={"Authorization": "Bearer tok-desk-0123456789abcdef"})
    assert r.status_code == 422 and r.json()["field"] == "align"


def test_available_at_is_the_servers_and_a_producer_may_not_set_it(ingest) -> None:
    before = datetime.now(UTC)
    assert ingest.post(signal()).status_code == 200
    stored = ingest.signals.find_one()
    assert before - timedelta(seconds=5) <= stored["available_at"] <= datetime.now(UTC)
    r = ingest.post(signal(weight=0.9, available_at="2026-11-20T10:00:00Z"))
    assert r.status_code == 422, r.text
    (error,) = r.json()["items"][0]["errors"]
    assert error["field"] == "available_at" and "set by the server" in error["message"]
    assert ingest.signals.find_one()["available_at"] == stored["available_at"]
