"""Issue 16 (4) at the ingest API: padded values are rejected naming the field, never stored.

``POST /v1/signals`` used to accept ``"timeframe": "1h\\n"``, ``"strategy_id": "alpha\\n"`` and
``"symbol": "BINANCE:BTCUSDT\\n"`` (contract shape; the bot never traded them) and stripped
``" 60"`` or ``"BTCUSDT\\n"`` in TradingView alerts. Every string field with a pattern gets
leading/trailing whitespace and control characters here, in both shapes, and each item
must come back rejected with an error naming its field while the good items of the same
batch are stored. Also the pure TradingView helpers and the token file.
"""

from __future__ import annotations

from typing import Any

import pytest
from signal_bodies import signal

from signal_export.contract import ContractError
from signal_export.ingest.tokens import TokenConfigError, hash_token, producer_from_mapping
from signal_export.ingest.tradingview import tv_action, tv_pair, tv_timeframe

PADDING = ["\n", "\r\n", "\r", " ", "\t", "\x00", "\x0b", "\x1f", "\x7f", "\x85", "\xa0",
           "\u2028", "\ufeff"]


def padded(value: str) -> list[tuple[str, str]]:
    return ([(f"trailing {c!r}", value + c) for c in PADDING]
            + [(f"leading {c!r}", c + value) for c in PADDING])


def tv_alert(**fields: Any) -> dict[str, Any]:
    """A valid alert (no ``time``: the receive time, so the bar is the one in progress)."""
    body = {"ticker": "BINANCE:BTCUSDT", "action": "buy", "strategy_id": "tv_trend",
            "timeframe": "60", "weight": 0.25}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


#: (expected field, item, how) for the contract shape
CONTRACT_CASES: list[tuple[str, dict[str, Any], str]] = []
for _how, _bad in padded("alpha"):
    CONTRACT_CASES.append(("strategy_id", signal(strategy_id=_bad), _how))
for _how, _bad in padded("1h"):
    CONTRACT_CASES.append(("timeframe", signal(timeframe=_bad), _how))
for _how, _bad in padded("BTC/USDT"):
    CONTRACT_CASES.append(("pair", signal(pair=_bad), _how))
for _how, _bad in padded("BINANCE:BTCUSDT"):
    CONTRACT_CASES.append(("symbol", signal(pair=None, symbol=_bad), _how))
    CONTRACT_CASES.append(("symbol", signal(symbol=_bad), f"next to a pair, {_how}"))
for _how, _bad in padded("BINANCE"):
    CONTRACT_CASES.append(("symbol", signal(pair=None, symbol=f"{_bad}:BTCUSDT"),
                           f"exchange part, {_how}"))

#: (expected field, alert, how) for the TradingView shape
TV_CASES: list[tuple[str, dict[str, Any], str]] = []
for _how, _bad in padded("tv_trend"):
    TV_CASES.append(("strategy_id", tv_alert(strategy_id=_bad), _how))
for _how, _bad in padded("60") + padded("1h") + padded("D"):
    TV_CASES.append(("timeframe", tv_alert(timeframe=_bad), _how))
for _how, _bad in padded("BINANCE:BTCUSDT") + padded("BTCUSDT") + padded("BINANCE:BTCUSDT.P"):
    TV_CASES.append(("ticker", tv_alert(ticker=_bad), _how))
for _how, _bad in padded("BINANCE"):
    TV_CASES.append(("ticker", tv_alert(ticker=f"{_bad}:BTCUSDT"), f"exchange part, {_how}"))
    TV_CASES.append(("exchange", tv_alert(ticker="BTCUSDT", exchange=_bad), _how))
for _how, _bad in padded("buy"):
    TV_CASES.append(("action", tv_alert(action=_bad), _how))


def assert_each_rejected_naming(response, cases, first_good: int) -> None:
    """Items ``first_good..`` of the response are the cases, in order, after good items."""
    items = response.json()["items"]
    assert [i["status"] for i in items[:first_good]] == ["accepted"] * first_good
    for item, (field, _, how) in zip(items[first_good:], cases, strict=True):
        assert item["status"] == "rejected", (how, item)
        assert [e["field"] for e in item["errors"]] == [field], (how, item)


def test_contract_items_with_padded_fields_are_rejected_by_field(ingest) -> None:
    body = [signal()] + [item for _, item, _ in CONTRACT_CASES]
    r = ingest.post(body)
    assert r.status_code == 207, r.text
    assert_each_rejected_naming(r, CONTRACT_CASES, first_good=1)
    assert r.json()["counts"]["accepted"] == 1
    stored = list(ingest.signals.find({}, {"_id": 0, "strategy_id": 1, "pair": 1, "symbol": 1,
                                           "timeframe": 1}))
    assert stored == [{"strategy_id": "alpha", "pair": "BTC/USDT", "symbol": "BINANCE:BTCUSDT",
                       "timeframe": "1h"}]


def test_tradingview_alerts_with_padded_fields_are_rejected_by_field(ingest) -> None:
    body = [tv_alert()] + [item for _, item, _ in TV_CASES]
    r = ingest.post(body)
    assert r.status_code == 207, r.text
    assert_each_rejected_naming(r, TV_CASES, first_good=1)
    stored = list(ingest.signals.find({}, {"_id": 0, "strategy_id": 1, "pair": 1, "symbol": 1,
                                           "timeframe": 1}))
    assert stored == [{"strategy_id": "tv_trend", "pair": "BTC/USDT",
                       "symbol": "BINANCE:BTCUSDT", "timeframe": "1h"}]


@pytest.mark.parametrize(("field", "item"), [
    ("strategy_id", signal(strategy_id="alpha\n")),
    ("timeframe", signal(timeframe="1h\n")),
    ("pair", signal(pair="BTC/USDT\n")),
    ("symbol", signal(pair=None, symbol="BINANCE:BTCUSDT\n")),
    ("strategy_id", tv_alert(strategy_id="tv_trend\n")),
    ("timeframe", tv_alert(timeframe="60\n")),
    ("ticker", tv_alert(ticker="BINANCE:BTCUSDT\n")),
    ("exchange", tv_alert(ticker="BTCUSDT", exchange="BINANCE\n")),
    ("action", tv_alert(action="buy\n")),
])
def test_a_single_item_with_a_trailing_newline_is_a_422_and_nothing_is_stored(
        ingest, field, item) -> None:
    r = ingest.post(item)
    assert r.status_code == 422, r.text
    errors = r.json()["items"][0]["errors"]
    assert [e["field"] for e in errors] == [field]
    assert "\\n" in errors[0]["message"]   # the value is shown escaped, so the newline is seen
    assert ingest.signals.count_documents({}) == 0
    assert ingest.runs.count_documents({}) == 0


def test_a_malformed_strategy_id_is_rejected_not_forbidden(ingest) -> None:
    """A padded id is a bad field (422), not a permission problem (403)."""
    r = ingest.post(signal(strategy_id="alpha "))
    assert r.status_code == 422
    assert r.json()["items"][0]["status"] == "rejected"


@pytest.mark.parametrize(("params", "field"), [
    ({"strategy_id": "alpha", "pair": "BTC/USDT\n", "timeframe": "1h"}, "pair"),
    ({"strategy_id": "alpha", "pair": "BINANCE:BTCUSDT\n", "timeframe": "1h"}, "pair"),
    ({"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": "1h\n"}, "timeframe"),
    ({"strategy_id": "alpha", "pair": "BTC/USDT", "timeframe": " 1h"}, "timeframe"),
])
def test_the_latest_endpoint_rejects_padded_query_values(ingest, params, field) -> None:
    r = ingest.client.get("/v1/signals/latest", params=params,
                          headers={"Authorization": "Bearer tok-desk-0123456789abcdef"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


# --- the pure TradingView helpers: nothing is stripped -----------------------------------


@pytest.mark.parametrize(("how", "bad"), padded("60") + padded("1D") + [("inner", "6\n0")])
def test_tv_timeframe_rejects_padding(how, bad) -> None:
    with pytest.raises(ContractError) as err:
        tv_timeframe(bad)
    assert err.value.field == "timeframe", how


@pytest.mark.parametrize(("how", "bad"), padded("BINANCE:BTCUSDT") + [
    ("look-alike", "bınance:btcusdt"), ("full width", "ＢＴＣＵＳＤＴ")])
def test_tv_pair_rejects_a_padded_or_look_alike_ticker(how, bad) -> None:
    with pytest.raises(ContractError) as err:
        tv_pair(bad, None)
    assert err.value.field == "ticker", how


@pytest.mark.parametrize(("how", "bad"), padded("BINANCE") + [("look-alike", "bınance"),
                                                             ("inner space", "BIN ANCE"),
                                                             ("colon", "BINANCE:X")])
def test_tv_pair_rejects_a_bad_exchange_even_when_the_ticker_names_one(how, bad) -> None:
    for ticker in ("BTCUSDT", "BINANCE:BTCUSDT"):
        with pytest.raises(ContractError) as err:
            tv_pair(ticker, bad)
        assert err.value.field == "exchange", how


def test_tv_pair_still_folds_case() -> None:
    assert tv_pair("binance:btcusdt.p", None) == ("BINANCE:BTCUSDT.USDT", "BTC/USDT:USDT")
    assert tv_pair("btcusdt", "bybit") == ("BYBIT:BTCUSDT", "BTC/USDT")


@pytest.mark.parametrize(("how", "bad"), padded("buy") + padded("SELL"))
def test_tv_action_rejects_padding(how, bad) -> None:
    with pytest.raises(ContractError) as err:
        tv_action(bad)
    assert err.value.field == "action", how


# --- the token file: names become ``source``, so they are full matches too ---------------


def entry(**fields: Any) -> dict[str, Any]:
    return {"name": "desk", "token_hash": hash_token("t"), "strategy_ids": ["alpha"], **fields}


@pytest.mark.parametrize(("field", "change"), [
    ("name", {"name": "desk\n"}), ("name", {"name": " desk"}), ("name", {"name": "desk\x00"}),
    ("token_hash", {"token_hash": hash_token("t") + "\n"}),
    ("token_hash", {"token_hash": " " + hash_token("t")}),
    ("strategy_ids", {"strategy_ids": ["alpha\n"]}),
    ("strategy_ids", {"strategy_ids": ["alpha", "\tbeta"]}),
])
def test_token_file_entries_are_full_matches(field, change) -> None:
    producer_from_mapping(entry())
    with pytest.raises(TokenConfigError, match=rf"\.{field}:"):
        producer_from_mapping(entry(**change))
