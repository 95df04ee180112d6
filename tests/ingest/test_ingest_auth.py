"""Bearer tokens: absent or wrong -> 401, bound to strategy_ids -> 403 naming the strategy."""

from __future__ import annotations

import logging

from ingest_helpers import TOKENS
from signal_bodies import batch, signal


def test_a_request_without_a_token_is_a_401_and_stores_nothing(ingest) -> None:
    r = ingest.post(signal(), producer=None)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"] == "unauthorized" and r.json()["field"] == "Authorization"
    assert ingest.signals.count_documents({}) == 0


def test_a_wrong_token_is_a_401(ingest) -> None:
    r = ingest.client.post("/v1/signals", json=signal(),
                           headers={"Authorization": "Bearer not-a-known-token"})
    assert r.status_code == 401 and "invalid_token" in r.headers["WWW-Authenticate"]
    assert ingest.signals.count_documents({}) == 0


def test_a_token_in_another_scheme_is_not_accepted(ingest) -> None:
    r = ingest.client.post("/v1/signals", json=signal(),
                           headers={"Authorization": f"Basic {TOKENS['desk']}"})
    assert r.status_code == 401


def test_a_token_cannot_write_a_strategy_it_is_not_bound_to(ingest) -> None:
    r = ingest.post(signal(strategy_id="beta"), producer="desk")
    assert r.status_code == 403, r.text
    item = r.json()["items"][0]
    assert item["status"] == "forbidden" and item["errors"][0]["field"] == "strategy_id"
    assert "'beta'" in item["errors"][0]["message"] and "'desk'" in item["errors"][0]["message"]
    assert ingest.signals.count_documents({}) == 0


def test_the_other_producer_can_write_its_own_strategy(ingest) -> None:
    r = ingest.post(signal(strategy_id="beta"), producer="other")
    assert r.status_code == 200, r.text
    assert ingest.signals.find_one()["source"] == "other"


def test_a_batch_stores_the_permitted_items_and_refuses_the_others(ingest) -> None:
    items = batch(2) + [signal(strategy_id="beta")]
    r = ingest.post(items)
    assert r.status_code == 207
    assert [i["status"] for i in r.json()["items"]] == ["accepted", "accepted", "forbidden"]
    assert ingest.signals.count_documents({"strategy_id": "alpha"}) == 2
    assert ingest.signals.count_documents({"strategy_id": "beta"}) == 0


def test_a_producer_cannot_pose_as_another_source(ingest) -> None:
    r = ingest.post(signal(source="research"))
    assert r.status_code == 422
    assert r.json()["items"][0]["errors"][0]["field"] == "source"
    assert ingest.post(signal(source="desk")).status_code == 200


def test_reading_the_latest_signal_needs_a_token_bound_to_the_strategy(ingest) -> None:
    params = {"strategy_id": "beta", "pair": "BTC/USDT", "timeframe": "1h"}
    assert ingest.client.get("/v1/signals/latest", params=params).status_code == 401
    r = ingest.client.get("/v1/signals/latest", params=params,
                          headers={"Authorization": f"Bearer {TOKENS['desk']}"})
    assert r.status_code == 403 and r.json()["field"] == "strategy_id"


def test_tokens_never_reach_the_logs(ingest, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    ingest.post(signal())
    ingest.post(signal(strategy_id="beta"))
    ingest.client.post("/v1/signals", json=signal(), headers={"Authorization": "Bearer wrong-tok"})
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "ingest from desk" in text  # the producer name is logged ...
    for token in (*TOKENS.values(), "wrong-tok"):
        assert token not in text        # ... its token never


def tv_alert(**fields):
    return {"ticker": "BINANCE:BTCUSDT", "action": "buy", "time": "2026-11-20T11:40:00Z",
            "strategy_id": "tv_trend", "timeframe": "60", **fields}


def test_a_tradingview_alert_may_carry_its_token_in_the_body(ingest) -> None:
    r = ingest.post(tv_alert(token=TOKENS["desk"]), producer=None)
    assert r.status_code == 200, r.text
    doc = ingest.signals.find_one()
    assert doc["source"] == "desk"
    assert TOKENS["desk"] not in repr(doc) and TOKENS["desk"] not in r.text
    assert TOKENS["desk"] not in repr(list(ingest.runs.find()))


def test_a_wrong_or_misplaced_body_token_is_not_accepted(ingest) -> None:
    assert ingest.post(tv_alert(token="wrong"), producer=None).status_code == 401
    assert ingest.post(tv_alert(token=7), producer=None).status_code == 401
    # only a single alert object carries a token; elsewhere it is an unknown field
    assert ingest.post([tv_alert(token=TOKENS["desk"])], producer=None).status_code == 401
    r = ingest.post(signal(token=TOKENS["desk"]))
    assert r.status_code == 422 and r.json()["items"][0]["errors"][0]["field"] == "token"


def test_a_body_token_is_bound_to_its_strategies_like_a_header_token(ingest) -> None:
    r = ingest.post(tv_alert(token=TOKENS["other"]), producer=None)
    assert r.status_code == 403
    assert r.json()["items"][0]["errors"][0]["field"] == "strategy_id"
