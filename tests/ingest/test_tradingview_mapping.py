"""TradingView alert mapping and the bar-ts grace window, as pure functions and over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_helpers import Ingest, WallClock

from signal_export.contract import Action, ContractError, floor_to_bar, timeframe_delta
from signal_export.ingest.tradingview import (
    TradingViewAlert,
    alert_to_document,
    bar_ts_for_alert,
    check_alert_time,
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


# --- {{time}} vs {{timenow}}: a bar open sent as `time` is refused; `bar_time` takes it -------

GRACE = 5.0


def alert(**fields) -> TradingViewAlert:
    return TradingViewAlert(**{"ticker": "BINANCE:BTCUSDT", "action": "buy", "strategy_id": "s",
                               "timeframe": "1h", **fields})


@pytest.mark.parametrize(("time", "received"), [
    ("2026-11-20T10:00:00Z", "2026-11-20T11:00:01+00:00"),   # bar-close alert: 1 bar later
    ("2026-11-20T10:00:00Z", "2026-11-20T10:40:00+00:00"),   # intrabar alert on the 10:00 bar
    ("2026-11-20T10:00:00Z", "2026-11-20T10:00:05+00:00"),   # exactly g old: already refused
    ("2026-11-20T10:00:04.9Z", "2026-11-20T10:00:09.9+00:00"),
])
def test_a_bar_open_time_sent_as_time_is_rejected_naming_time(time, received) -> None:
    with pytest.raises(ContractError) as err:
        alert_to_document(alert(time=time), received_at=at(received), grace_seconds=GRACE)
    assert err.value.field == "time"
    assert "{{timenow}}" in str(err.value) and "bar_time" in str(err.value)


@pytest.mark.parametrize(("time", "received", "ts"), [
    ("2026-11-20T11:00:03Z", "2026-11-20T11:00:04+00:00", "2026-11-20T10:00:00+00:00"),
    ("2026-11-20T11:00:00Z", "2026-11-20T11:00:04.999+00:00", "2026-11-20T10:00:00+00:00"),
    ("2026-11-20T11:00:03Z", "2026-11-20T11:00:02+00:00", "2026-11-20T10:00:00+00:00"),  # skew
    # received late, but not inside the window of a bar open: the grace rule does not apply
    ("2026-11-20T11:00:05Z", "2026-11-20T13:00:00+00:00", "2026-11-20T11:00:00+00:00"),
    ("2026-11-20T10:40:00Z", "2026-11-21T10:40:00+00:00", "2026-11-20T10:00:00+00:00"),
])
def test_a_prompt_timenow_keeps_the_grace_window_mapping(time, received, ts) -> None:
    doc = alert_to_document(alert(time=time), received_at=at(received), grace_seconds=GRACE)
    assert doc["ts"] == at(ts)


def test_with_a_grace_window_of_zero_a_bar_open_time_is_its_own_bar() -> None:
    doc = alert_to_document(alert(time="2026-11-20T10:00:00Z"),
                            received_at=at("2026-11-20T11:00:01+00:00"), grace_seconds=0.0)
    assert doc["ts"] == at("2026-11-20T10:00:00+00:00")
    check_alert_time(at("2026-11-20T10:00:00+00:00"), at("2026-11-21T00:00:00+00:00"), "1h", 0.0)


@pytest.mark.parametrize(("timeframe", "bar_time", "received"), [
    ("60", "2026-11-20T10:00:00Z", "2026-11-20T11:00:01+00:00"),   # on bar close
    ("60", "2026-11-20T10:00:00Z", "2026-11-20T10:40:00+00:00"),   # intrabar
    ("60", "2026-11-20T10:00:00Z", "2026-11-20T10:00:00+00:00"),   # received as the bar opens
    ("1D", "2026-11-20T00:00:00Z", "2026-11-21T00:00:01+00:00"),
    ("W", "2026-11-16T00:00:00Z", "2026-11-23T00:00:01+00:00"),    # weeks open on Monday
    ("60", "2026-11-20T11:00:00+01:00", "2026-11-20T11:00:01+00:00"),  # offset honoured
])
def test_bar_time_becomes_ts_as_is(timeframe, bar_time, received) -> None:
    doc = alert_to_document(alert(bar_time=bar_time, timeframe=timeframe),
                            received_at=at(received), grace_seconds=GRACE)
    assert doc["ts"] == datetime.fromisoformat(bar_time).astimezone(UTC)
    assert "extra" not in doc  # no alert_time: the alert did not say when it fired


@pytest.mark.parametrize(("fields", "why"), [
    ({"bar_time": "2026-11-20T10:30:00Z"}, "not the open time of a 1h bar"),
    ({"bar_time": "2026-11-20T10:00:00.5Z"}, "not the open time of a 1h bar"),
    ({"bar_time": "2026-11-20T12:00:00Z"}, "after the time the alert was received"),
    ({"bar_time": "2026-11-20T10:00:00"}, "no UTC offset"),
    ({"bar_time": "bar 10"}, "not an ISO-8601 time"),
    ({"bar_time": "2026-11-20T10:00:00Z", "time": "2026-11-20T11:00:01Z"}, "not both"),
])
def test_a_bad_bar_time_is_an_error_naming_bar_time(fields, why) -> None:
    with pytest.raises(ContractError) as err:
        alert_to_document(alert(**fields), received_at=at("2026-11-20T11:00:01+00:00"))
    assert err.value.field == "bar_time"
    assert why in str(err.value)


TIMEFRAMES = st.sampled_from(["1m", "5m", "15m", "1h", "4h", "1d", "1w"])


@settings(max_examples=200, deadline=None)
@given(timeframe=TIMEFRAMES, moment=st.datetimes(min_value=datetime(2020, 1, 1),
                                                  max_value=datetime(2030, 1, 1),
                                                  timezones=st.just(UTC)),
       delay=st.floats(min_value=GRACE, max_value=3 * 7 * 86400))
def test_time_template_never_lands_a_bar_early_and_bar_time_lands_on_its_bar(
        timeframe, moment, delay) -> None:
    """{{time}} is a bar open b, received d >= g later: as `time` it is refused (never filed
    on the bar before b); as `bar_time` it is stored on b."""
    bar = floor_to_bar(moment, timeframe).to_pydatetime()
    received = bar + timedelta(seconds=delay)
    with pytest.raises(ContractError) as err:
        alert_to_document(alert(time=bar.isoformat(), timeframe=timeframe),
                          received_at=received, grace_seconds=GRACE)
    assert err.value.field == "time"
    doc = alert_to_document(alert(bar_time=bar.isoformat(), timeframe=timeframe),
                            received_at=received, grace_seconds=GRACE)
    assert doc["ts"] == bar


@settings(max_examples=200, deadline=None)
@given(timeframe=TIMEFRAMES, moment=st.datetimes(min_value=datetime(2020, 1, 1),
                                                  max_value=datetime(2030, 1, 1),
                                                  timezones=st.just(UTC)),
       delay=st.floats(min_value=0, max_value=3 * 86400))
def test_an_accepted_time_is_never_used_more_than_the_grace_window_before_it_existed(
        timeframe, moment, delay) -> None:
    """Backtesting acts on row ts at ts + timeframe: never earlier than t - g, and when
    inside the window, only for an alert received within g."""
    received = moment + timedelta(seconds=delay)
    try:
        doc = alert_to_document(alert(time=moment.isoformat(), timeframe=timeframe),
                                received_at=received, grace_seconds=GRACE)
    except ContractError as exc:
        assert exc.field == "time"
        return
    acted_on = doc["ts"] + timeframe_delta(timeframe)
    assert acted_on > moment - timedelta(seconds=GRACE)
    if acted_on <= moment:
        assert delay < GRACE


# --- over HTTP ---------------------------------------------------------------

#: The receive time the app judges alert times by in this module's HTTP tests: shortly after
#: the 11:00 boundary, so an alert at 11:00:03 is a prompt {{timenow}}.
RECEIVED = at("2026-11-20T11:00:07+00:00")


@pytest.fixture
def ingest(make_ingest: Callable[..., Ingest]) -> Ingest:
    return make_ingest(wall_clock=WallClock(RECEIVED))


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
    ingest = make_ingest(grace_seconds=10.0, wall_clock=WallClock(RECEIVED))
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


def test_a_bar_open_time_posted_as_time_one_bar_later_is_rejected_and_not_stored(
        make_ingest) -> None:
    """Issue 16 (6): {{time}} of the 10:00 bar, sent as `time` by a bar-close alert at 11:00,
    used to be stored on 09:00 (one bar of lookahead)."""
    ingest = make_ingest(wall_clock=WallClock(at("2026-11-20T11:00:01+00:00")))
    r = ingest.post(tv_alert(time="2026-11-20T10:00:00Z"))
    assert r.status_code == 422, r.text
    item = r.json()["items"][0]
    assert item["status"] == "rejected"
    assert [e["field"] for e in item["errors"]] == ["time"]
    assert "{{timenow}}" in item["errors"][0]["message"]
    assert ingest.signals.count_documents({}) == 0


def test_the_same_alert_with_bar_time_is_stored_on_the_bar_it_names(make_ingest) -> None:
    ingest = make_ingest(wall_clock=WallClock(at("2026-11-20T11:00:01+00:00")))
    r = ingest.post(tv_alert(time=None, bar_time="2026-11-20T10:00:00Z"))
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["key"]["ts"] == "2026-11-20T10:00:00+00:00"
    doc = ingest.signals.find_one()
    assert doc["ts"] == at("2026-11-20T10:00:00+00:00")
    assert "alert_time" not in (doc.get("extra") or {})


@pytest.mark.parametrize(("change", "why"), [
    ({"bar_time": "2026-11-20T10:00:00Z"}, "not both"),                      # with time
    ({"time": None, "bar_time": "2026-11-20T10:15:00Z"}, "not the open time"),
    ({"time": None, "bar_time": "2026-11-20T12:00:00Z"}, "after the time"),
])
def test_a_bad_bar_time_over_http_names_bar_time(ingest, change, why) -> None:
    r = ingest.post(tv_alert(**change))
    assert r.status_code == 422, r.text
    errors = r.json()["items"][0]["errors"]
    assert errors[0]["field"] == "bar_time" and why in errors[0]["message"]
    assert ingest.signals.count_documents({}) == 0

