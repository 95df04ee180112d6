"""TradingView/3Commas-style short, leverage, stop and take-profit fields -> the contract.

Pure mapping first, then over HTTP against the real ingest server and dev MongoDB.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from ingest_helpers import Ingest, WallClock, auth

from signal_export.contract import Action, ContractError, SignalDocument
from signal_export.ingest.tradingview import (
    TradingViewAlert,
    alert_to_document,
    tv_action,
    tv_market_position,
)

RECEIVED = datetime.fromisoformat("2026-11-20T11:00:07+00:00")


def alert(**fields) -> dict:
    body = {"ticker": "BINANCE:BTCUSDT.P", "time": "2026-11-20T11:00:03Z",
            "strategy_id": "tv_trend", "timeframe": "60", "action": "enter_short"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def mapped(**fields) -> dict:
    return alert_to_document(TradingViewAlert(**alert(**fields)), received_at=RECEIVED)


def valid(doc: dict) -> SignalDocument:
    return SignalDocument.model_validate(doc, context={"now": RECEIVED})


@pytest.mark.parametrize(("word", "action"), [
    ("enter_short", Action.ENTER_SHORT), ("SELL_SHORT", Action.ENTER_SHORT),
    ("exit_short", Action.EXIT_SHORT), ("cover", Action.EXIT_SHORT),
    ("buy_to_cover", Action.EXIT_SHORT), ("close_short", Action.EXIT_SHORT),
    ("close_long", Action.EXIT_LONG), ("buy", Action.ENTER_LONG), ("sell", Action.EXIT_LONG),
])
def test_short_words_map_to_short_actions(word, action):
    assert tv_action(word) is action


def test_a_bare_short_is_ambiguous():
    with pytest.raises(ContractError, match="ambiguous") as err:
        tv_action("short")
    assert err.value.field == "action"


@pytest.mark.parametrize(("position", "previous", "want"), [
    ("long", None, ("enter_long", None)),
    ("short", "flat", ("enter_short", None)),
    ("flat", "long", ("exit_long", None)),
    ("Flat", "short", ("exit_short", None)),
    ("flat", None, (None, 0.0)),
])
def test_market_position_gives_the_wanted_side(position, previous, want):
    assert tv_market_position(position, previous) == want


def test_a_futures_short_with_leverage_stop_and_target_maps_to_the_contract():
    doc = mapped(leverage=3, stop_loss_pct=2.5, take_profit=0.06, weight=-0.5)
    assert (doc["pair"], doc["symbol"]) == ("BTC/USDT:USDT", "BINANCE:BTCUSDT.USDT")
    assert (doc["action"], doc["weight"], doc["leverage"]) == ("enter_short", -0.5, 3)
    assert doc["stop_loss"] == pytest.approx(0.025) and doc["take_profit"] == 0.06
    d = valid(doc)
    assert (d.leverage, d.stop_loss, d.take_profit) == (3.0, pytest.approx(0.025), 0.06)


@pytest.mark.parametrize(("fields", "stop", "target"), [
    # a short at 100: stop above, target below
    ({"action": "enter_short", "stop_price": 104.0, "take_profit_price": 90.0}, 0.04, 0.10),
    # a long at 100: stop below, target above
    ({"action": None, "market_position": "long", "stop_price": 97.0,
      "take_profit_price": 112.0}, 0.03, 0.12),
])
def test_absolute_prices_become_fractions_of_the_alert_price(fields, stop, target):
    doc = mapped(price=100.0, **fields)
    assert doc["stop_loss"] == pytest.approx(stop) and doc["take_profit"] == pytest.approx(target)
    assert doc["extra"]["price"] == 100.0
    valid(doc)


def test_market_position_flat_without_previous_is_weight_zero():
    doc = mapped(action=None, market_position="flat")
    assert "action" not in doc and doc["weight"] == 0.0
    assert valid(doc).weight == 0.0


@pytest.mark.parametrize(("fields", "field", "why"), [
    ({"stop_price": 95.0, "price": 100.0}, "stop_price", "must lie above the price"),
    ({"stop_price": 105.0}, "stop_price", "needs the alert's price"),
    ({"stop_loss": 0.02, "stop_loss_pct": 2}, "stop_loss_pct", "give one of"),
    ({"market_position": "short"}, "market_position", "either action or market_position"),
    ({"action": None, "prev_market_position": "long"}, "prev_market_position", "only with"),
    ({"action": None, "market_position": "sideways"}, "market_position", "not one of"),
    ({"action": None, "market_position": "flat", "stop_price": 9.0, "price": 10.0},
     "stop_price", "needs an entry side"),
])
def test_bad_fields_are_named(fields, field, why):
    with pytest.raises(ContractError, match=why) as err:
        mapped(**fields)
    assert err.value.field == field


# --- over HTTP ------------------------------------------------------------------------

@pytest.fixture
def ingest(make_ingest: Callable[..., Ingest]) -> Ingest:
    return make_ingest(wall_clock=WallClock(RECEIVED))


def test_a_short_alert_is_stored_with_its_risk_fields_and_read_back(ingest):
    r = ingest.post(alert(leverage=5, stop_loss_pct=1.5, take_profit_pct=4, price=100.0))
    assert r.status_code == 200, r.text
    doc = ingest.signals.find_one()
    assert (doc["pair"], doc["action"], doc["leverage"]) == ("BTC/USDT:USDT", "enter_short", 5.0)
    assert doc["stop_loss"] == pytest.approx(0.015)
    assert doc["take_profit"] == pytest.approx(0.04)
    latest = ingest.client.get("/v1/signals/latest", params={
        "strategy_id": "tv_trend", "pair": "BTC/USDT:USDT", "timeframe": "1h"}, headers=auth())
    assert latest.status_code == 200, latest.text
    body = latest.json()
    assert (body["action"], body["leverage"]) == ("enter_short", 5.0)
    assert body["stop_loss"] == pytest.approx(0.015)


@pytest.mark.parametrize(("change", "field", "why"), [
    ({"ticker": "BINANCE:BTCUSDT"}, "action", "futures pair BTC/USDT:USDT"),
    ({"leverage": 10, "stop_loss": 0.2}, "stop_loss", "liquidation"),
    ({"action": "exit_short", "leverage": 2}, "leverage", "only allowed on an entry"),
])
def test_bad_short_alerts_are_refused_naming_the_field(ingest, change, field, why):
    r = ingest.post(alert(**change))
    assert r.status_code == 422, r.text
    errors = r.json()["items"][0]["errors"]
    assert errors[0]["field"] == field and why in errors[0]["message"]
    assert ingest.signals.count_documents({}) == 0
