"""TradingView alert mapping and the bar-ts grace window, as pure functions and over HTTP."""

from __future__ import annotations

from datetime import datetime

import pytest

from signal_export.contract import Action, ContractError
from signal_export.ingest.tradingview import (
    TradingViewAlert,
    alert_to_document,
    bar_ts_for_alert,
    tv_action,
    tv_pair,
    tv_timeframe,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("fired", "expected"), [
    ("2026-11-20T11:00:00+00:00", "2026-11-20T10:00:00+00:00"),     # on the boundary
    ("2026-11-20T11:00:04.999+00:00", "2026-11-20T10:00:00+00:00"),  # inside the 5 s window
    ("2026-11-20T11:00:05+00:00", "2026-11-20T11:00:00+00:00"),     # window is half-open
    ("2026-11-20T11:40:00+00:00", "2026-11-20T11:00:00+00:00"),     # bar in progress
    ("2026-11-20T11:59:59+00:00", "2026-11-20T11:00:00+00:00"),
])
def test_grace_window_picks_the_bar_that_just_closed_else_the_bar_in_progress(fired, expected):
    assert bar_ts_for_alert(at(fired), "1h", 5.0) == at(expected)


def test_grace_window_of_zero_always_gives_the_bar_in_progress() -> None:
    assert bar_ts_for_alert(at("2026-11-20T11:00:00+00:00"), "1h", 0.0) == at(
        "2026-11-20T11:00:00+00:00")


def test_grace_window_applies_to_daily_bars_at_midnight_utc() -> None:
    assert bar_ts_for_alert(at("2026-11-21T00:00:02+00:00"), "1d", 5.0) == at(
        "2026-11-20T00:00:00+00:00")
    assert bar_ts_for_alert(at("2026-11-21T01:00:02+01:00"), "1d", 5.0) == at(
        "2026-11-20T00:00:00+00:00")  # the offset is honoured: 00:00:02 UTC


@pytest.mark.parametrize(("interval", "timeframe"), [
    ("1", "1m"), ("15", "15m"), ("60", "1h"), ("240", "4h"), ("D", "1d"), ("1D", "1d"),
    ("W", "1w"), ("1h", "1h"), ("1d", "1d"),
])
def test_tradingview_intervals_map_to_contract_timeframes(interval, timeframe) -> None:
    assert tv_timeframe(interval) == timeframe


def test_an_interval_the_contract_rejects_is_an_error() -> None:
    with pytest.raises(ContractError, match="divide a day"):
        tv_timeframe("7")


@pytest.mark.parametrize(("word", "action"), [
    ("buy", Action.ENTER_LONG), ("BUY", Action.ENTER_LONG), ("long", Action.ENTER_LONG),
    ("sell", Action.EXIT_LONG), ("exit_long", Action.EXIT_LONG), ("close", Action.EXIT_LONG),
])
def test_alert_actions_map_to_contract_actions(word, action) -> None:
    assert tv_action(word) is action


def test_an_unknown_alert_action_names_the_field() -> None:
    with pytest.raises(ContractError) as err:
        tv_action("short")
    assert err.value.field == "action"


@pytest.mark.parametrize(("ticker", "exchange", "symbol", "pair"), [
    ("BINANCE:BTCUSDT", None, "BINANCE:BTCUSDT", "BTC/USDT"),
    ("ETHBTC", None, "BINANCE:ETHBTC", "ETH/BTC"),
    ("SOLUSDC", "bybit", "BYBIT:SOLUSDC", "SOL/USDC"),
    ("BINANCE:BTCUSDT.P", None, "BINANCE:BTCUSDT.USDT", "BTC/USDT:USDT"),
])
def test_tickers_map_through_the_contract(ticker, exchange, symbol, pair) -> None:
    assert tv_pair(ticker, exchange) == (symbol, pair)


def test_an_unknown_quote_in_a_ticker_names_the_ticker_field() -> None:
    with pytest.raises(ContractError) as err:
        tv_pair("BINANCE:BTCXYZ", None)
    assert err.value.field == "ticker"


def test_an_alert_becomes_a_contract_document() -> None:
    alert = TradingViewAlert(ticker="BINANCE:ETHUSDT", action="sell", time="2026-11-20T11:00:02Z",
                             strategy_id="tv_trend", timeframe="60", price=3012.5,
                             comment="tp hit")
    doc = alert_to_document(alert, received_at=at("2026-11-20T11:00:03+00:00"))
    assert doc == {"ts": at("2026-11-20T10:00:00+00:00"), "timeframe": "1h",
                   "symbol": "BINANCE:ETHUSDT", "pair": "ETH/USDT", "strategy_id": "tv_trend",
                   "action": "exit_long", "note": "tp hit",
                   "extra": {"price": 3012.5, "alert_time": "2026-11-20T11:00:02+00:00"}}


def test_an_alert_without_time_uses_the_receive_time() -> None:
    alert = TradingViewAlert(ticker="BTCUSDT", action="buy", strategy_id="s", timeframe="1h")
    doc = alert_to_document(alert, received_at=at("2026-11-20T11:00:01+00:00"))
    assert doc["ts"] == at("2026-11-20T10:00:00+00:00")
    assert "extra" not in doc


@pytest.mark.parametrize("text", ["2026-11-20T11:00:02", "11 o'clock"])
def test_an_alert_time_without_offset_or_unparsable_names_the_time_field(text) -> None:
    alert = TradingViewAlert(ticker="BTCUSDT", action="buy", strategy_id="s", timeframe="1h",
                             time=text)
    with pytest.raises(ContractError) as err:
        alert_to_document(alert, received_at=at("2026-11-20T11:00:01+00:00"))
    assert err.value.field == "time"


# --- over HTTP ---------------------------------------------------------------


def tv_alert(**fields):
    body = {"ticker": "BINANCE:BTCUSDT", "action": "buy", "time": "2026-11-20T11:00:03Z",
            "strategy_id": "tv_trend", "timeframe": "60", "weight": 0.25}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def test_an_alert_inside_the_grace_window_is_stored_on_the_bar_that_just_closed(ingest) -> None:
    r = ingest.post(tv_alert(time="2026-11-20T11:00:03Z"))
    assert r.status_code == 200, r.text
    doc = ingest.signals.find_one()
    assert doc["ts"] == at("2026-11-20T10:00:00+00:00")
    assert (doc["pair"], doc["timeframe"], doc["action"], doc["weight"], doc["source"]) == (
        "BTC/USDT", "1h", "enter_long", 0.25, "desk")


def test_an_alert_after_the_grace_window_is_stored_on_the_bar_in_progress(ingest) -> None:
    r = ingest.post(tv_alert(time="2026-11-20T11:00:06Z"))
    assert r.status_code == 200, r.text
    assert ingest.signals.find_one()["ts"] == at("2026-11-20T11:00:00+00:00")


def test_the_grace_window_is_configurable(make_ingest) -> None:
    ingest = make_ingest(grace_seconds=10.0)
    ingest.post(tv_alert(time="2026-11-20T11:00:06Z"))
    assert ingest.signals.find_one()["ts"] == at("2026-11-20T10:00:00+00:00")


@pytest.mark.parametrize(("field", "change"), [
    ("ticker", {"ticker": "BINANCE:BTCXYZ"}),
    ("action", {"action": "short"}),
    ("time", {"time": "2026-11-20 11:00"}),
    ("time", {"time": "2099-01-01T00:00:00Z"}),   # from the future: the contract's ts rule
    ("timeframe", {"timeframe": "7"}),
    ("weight", {"weight": 3}),
    ("weight", {"action": "sell", "weight": 0.5}),
    ("strategy_id", {"strategy_id": None}),
    ("colour", {"colour": "red"}),
])
def test_a_bad_alert_field_is_named(ingest, field, change) -> None:
    r = ingest.post(tv_alert(**change))
    assert r.status_code == 422, r.text
    assert field in {e["field"] for e in r.json()["items"][0]["errors"]}
    assert ingest.signals.count_documents({}) == 0


def test_alerts_and_contract_signals_mix_in_one_batch(ingest) -> None:
    from signal_bodies import signal

    r = ingest.post([tv_alert(), signal()])
    assert r.status_code == 200, r.text
    assert ingest.signals.count_documents({}) == 2
