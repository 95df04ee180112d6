"""The signal contract as a specification: mapping, time grid, and document rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import ccxt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from signal_export.contract import (
    DEFAULT_QUOTES,
    Action,
    ContractError,
    SignalDocument,
    empty_signal_frame,
    floor_datetime,
    floor_series_to_bar,
    floor_to_bar,
    is_on_grid,
    pair_to_symbol,
    parse_quotes,
    resolve_symbol_pair,
    signal_frame_columns,
    symbol_to_pair,
    timeframe_seconds,
    to_pair,
    to_symbol,
    validation_context,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, on every grid up to 1h
NOW = datetime(2026, 3, 3, tzinfo=UTC)
CTX = validation_context(now=NOW)


def doc(**overrides):
    base = {"ts": T0, "timeframe": "1h", "pair": "BTC/USDT", "strategy_id": "rsi_v1",
            "action": "enter_long"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def validate(data, **ctx):
    return SignalDocument.model_validate(data, context={**CTX, **ctx})


def rejected_field(data, **ctx) -> tuple[str, str]:
    with pytest.raises(ValidationError) as info:
        validate(data, **ctx)
    err = info.value.errors()[0]
    exc = (err.get("ctx") or {}).get("error")
    field = getattr(exc, "field", None) or ".".join(map(str, err["loc"]))
    return field, str(info.value)


# --- symbol mapping -------------------------------------------------------


@pytest.mark.parametrize(("symbol", "pair"), [
    ("BINANCE:BTCUSDT", "BTC/USDT"),
    ("BINANCE:ETHBTC", "ETH/BTC"),
    ("BINANCE:1000PEPEUSDT", "1000PEPE/USDT"),
    ("BINANCE:BTCFDUSD", "BTC/FDUSD"),
    ("BINANCE:BTCUSDT.USDT", "BTC/USDT:USDT"),
    ("BINANCE:BTCUSD.BTC", "BTC/USD:BTC"),
])
def test_symbol_and_pair_map_both_ways(symbol, pair):
    assert symbol_to_pair(symbol) == pair
    assert pair_to_symbol(pair) == symbol
    assert to_pair(symbol) == to_pair(pair) == pair
    assert to_symbol(pair) == to_symbol(symbol) == symbol


def test_longest_quote_wins_over_shorter_suffix():
    assert symbol_to_pair("BINANCE:ETHBUSD") == "ETH/BUSD"
    assert symbol_to_pair("BINANCE:ETHBUSD", quotes=("USD",)) == "ETHB/USD"


def test_pair_whose_symbol_reads_back_differently_is_rejected_as_ambiguous():
    with pytest.raises(ContractError, match="ambiguous"):
        pair_to_symbol("BTCB/USD")


@pytest.mark.parametrize("bad", ["BTCUSDT", "binance:btcusdt", "BINANCE:", "BINANCE:USDT",
                                 "BINANCE:BTCXYZ", None, 42])
def test_bad_symbols_are_rejected(bad):
    with pytest.raises(ContractError):
        symbol_to_pair(bad)


@pytest.mark.parametrize("bad", ["BTCUSDT", "btc/usdt", "BTC/", "/USDT", "BTC/XYZ"])
def test_bad_pairs_are_rejected(bad):
    with pytest.raises(ContractError):
        pair_to_symbol(bad)


def test_quote_list_is_configurable():
    assert parse_quotes(" usdt, btc ") == ("USDT", "BTC")
    assert parse_quotes("") == DEFAULT_QUOTES
    assert symbol_to_pair("KRAKEN:XBTZAR", quotes=parse_quotes("ZAR,USD")) == "XBT/ZAR"
    with pytest.raises(ContractError):
        pair_to_symbol("XBT/ZAR")  # not in the default list


def test_resolve_symbol_pair_derives_the_missing_one_and_checks_agreement():
    assert resolve_symbol_pair(None, "ETH/BTC") == ("BINANCE:ETHBTC", "ETH/BTC")
    assert resolve_symbol_pair("OKX:ETHBTC", None) == ("OKX:ETHBTC", "ETH/BTC")
    assert resolve_symbol_pair(None, "ETH/BTC", exchange="okx") == ("OKX:ETHBTC", "ETH/BTC")
    with pytest.raises(ContractError, match="not to pair"):
        resolve_symbol_pair("BINANCE:ETHUSDT", "ETH/BTC")
    with pytest.raises(ContractError):
        resolve_symbol_pair(None, None)


_asset = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=10)


@settings(deadline=None)  # no timing limits in unit tests (shared machines)
@given(base=_asset, quote=st.sampled_from(DEFAULT_QUOTES),
       settle=st.none() | st.sampled_from(DEFAULT_QUOTES),
       exchange=st.sampled_from(["BINANCE", "OKX", "BYBIT"]))
def test_every_symbol_round_trips_through_its_pair(base, quote, settle, exchange):
    symbol = f"{exchange}:{base}{quote}" + (f".{settle}" if settle else "")
    pair = symbol_to_pair(symbol)
    assert pair_to_symbol(pair, exchange=exchange) == symbol
    assert symbol_to_pair(pair_to_symbol(pair, exchange=exchange)) == pair


@settings(deadline=None)  # no timing limits in unit tests (shared machines)
@given(base=_asset, quote=st.sampled_from(DEFAULT_QUOTES))
def test_every_accepted_pair_round_trips_through_its_symbol(base, quote):
    pair = f"{base}/{quote}"
    try:
        symbol = pair_to_symbol(pair)
    except ContractError as exc:
        assert "ambiguous" in str(exc)
        return
    assert symbol_to_pair(symbol) == pair


# --- time grid --------------------------------------------------------------


@pytest.mark.parametrize(("tf", "seconds"), [("1m", 60), ("5m", 300), ("15m", 900),
                                             ("1h", 3600), ("4h", 14400), ("1d", 86400),
                                             ("1w", 604800)])
def test_timeframes_parse(tf, seconds):
    assert timeframe_seconds(tf) == seconds


@pytest.mark.parametrize("bad", ["", "1", "m", "0m", "7m", "5s", "1M", "1y", "1H", None, 60])
def test_bad_timeframes_are_rejected(bad):
    with pytest.raises(ContractError):
        timeframe_seconds(bad)


def test_bars_are_labelled_by_open_time():
    t = datetime(2026, 3, 4, 13, 47, 12, tzinfo=UTC)  # a Wednesday
    assert floor_to_bar(t, "1m") == pd.Timestamp("2026-03-04 13:47", tz="UTC")
    assert floor_to_bar(t, "15m") == pd.Timestamp("2026-03-04 13:45", tz="UTC")
    assert floor_to_bar(t, "4h") == pd.Timestamp("2026-03-04 12:00", tz="UTC")
    assert floor_to_bar(t, "1d") == pd.Timestamp("2026-03-04 00:00", tz="UTC")
    assert floor_to_bar(t, "1w") == pd.Timestamp("2026-03-02 00:00", tz="UTC")  # Monday


def test_floor_converts_other_timezones_to_utc():
    t = datetime(2026, 3, 4, 1, 30, tzinfo=timezone(timedelta(hours=8)))  # 17:30 UTC the day before
    assert floor_to_bar(t, "1d") == pd.Timestamp("2026-03-03", tz="UTC")


def test_naive_datetimes_are_an_error_not_utc():
    with pytest.raises(ContractError, match="naive"):
        floor_to_bar(datetime(2026, 3, 4), "1h")
    with pytest.raises(ContractError, match="naive"):
        floor_series_to_bar(pd.Series(pd.to_datetime(["2026-03-04"])), "1h")


_aware = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                      timezones=st.just(UTC))
_tf = st.sampled_from(["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "12h", "1d", "3d", "1w"])


@settings(deadline=None)  # no timing limits in unit tests (shared machines)
@given(t=_aware, tf=_tf)
def test_floor_matches_ccxt_and_is_idempotent(t, tf):
    floored = floor_to_bar(t, tf)
    ms = int(pd.Timestamp(t).value // 1_000_000)
    assert floored.value // 1_000_000 == ccxt.Exchange.round_timeframe(tf, ms, ccxt.ROUND_DOWN)
    assert floor_to_bar(floored, tf) == floored
    assert is_on_grid(floored, tf)
    assert floored <= t < floored + pd.Timedelta(seconds=timeframe_seconds(tf))
    assert floor_datetime(t, tf) == floored.to_pydatetime()


@settings(deadline=None)  # no timing limits in unit tests (shared machines)
@given(ts=st.lists(_aware, min_size=1, max_size=20), tf=_tf)
def test_vectorised_floor_equals_scalar_floor(ts, tf):
    series = pd.Series(pd.to_datetime(ts, utc=True))
    expected = [floor_to_bar(t, tf) for t in ts]
    assert list(floor_series_to_bar(series, tf)) == expected


# --- documents ---------------------------------------------------------------


def test_a_valid_document_is_normalised():
    d = validate(doc(ts=datetime(2026, 3, 2, 18, 0, tzinfo=timezone(timedelta(hours=8))),
                     score=0.7, weight=0.25, note="rsi cross", version=2,
                     extra={"stop_loss": 60000.5, "take_profit": 70000}))
    assert d.ts == T0 and d.ts.tzinfo is not None and d.ts.utcoffset() == timedelta(0)
    assert (d.symbol, d.pair, d.action) == ("BINANCE:BTCUSDT", "BTC/USDT", Action.ENTER_LONG)
    stored = d.to_mongo()
    assert stored["action"] == "enter_long" and stored["version"] == 2
    assert stored["extra"] == {"stop_loss": 60000.5, "take_profit": 70000}
    assert d.key() == ("rsi_v1", "BTC/USDT", "1h", T0)


def test_iso_strings_with_offset_are_accepted_without_offset_rejected():
    assert validate(doc(ts="2026-03-02T10:00:00Z")).ts == T0
    assert validate(doc(ts="2026-03-02T12:00:00+02:00")).ts == T0
    field, msg = rejected_field(doc(ts="2026-03-02T10:00:00"))
    assert field == "ts" and "no UTC offset" in msg


def test_score_alone_and_weight_alone_are_enough():
    assert validate(doc(action=..., score=-1.5)).score == -1.5
    assert validate(doc(action=..., weight=0.0)).weight == 0.0


@pytest.mark.parametrize(("overrides", "field", "why"), [
    ({"ts": ...}, "ts", "required"),
    ({"ts": datetime(2026, 3, 2, 10)}, "ts", "naive"),
    ({"ts": 1772445600}, "ts", "numbers"),
    ({"ts": T0 + timedelta(minutes=30)}, "ts", "not on the 1h bar grid"),
    ({"ts": NOW + timedelta(hours=2)}, "ts", "after now"),
    ({"timeframe": "7m"}, "timeframe", "divide a day"),
    ({"timeframe": ...}, "timeframe", "required"),
    ({"pair": ..., "symbol": ...}, "symbol", "one of them is required"),
    ({"pair": "BTC/XYZ"}, "pair", "unknown quote"),
    ({"symbol": "BINANCE:ETHUSDT"}, "pair", "not to pair"),
    ({"strategy_id": ""}, "strategy_id", "at least 1"),
    ({"strategy_id": "bad id!"}, "strategy_id", "must be 1-64"),
    ({"strategy_id": "x" * 65}, "strategy_id", "at most 64"),
    ({"action": "buy"}, "action", "enter_long"),
    ({"action": ...}, "action", "at least one"),
    ({"score": float("nan")}, "score", "not finite"),
    ({"score": float("inf")}, "score", "not finite"),
    ({"score": "abc"}, "score", "not a number"),
    ({"score": True}, "score", "bool"),
    ({"weight": 1.5}, "weight", "outside [0, 1]"),
    ({"weight": -0.1}, "weight", "outside [0, 1]"),
    ({"weight": float("-inf")}, "weight", "not finite"),
    ({"action": "exit_long", "weight": 0.5}, "weight", "conflicts with action exit_long"),
    ({"action": "enter_long", "weight": 0.0}, "weight", "conflicts with action enter_long"),
    ({"valid_until": T0}, "valid_until", "must be after ts"),
    ({"valid_until": datetime(2026, 3, 3)}, "valid_until", "naive"),
    ({"note": "x" * 1001}, "note", "at most 1000"),
    ({"source": "x" * 201}, "source", "at most 200"),
    ({"version": 0}, "version", "greater than or equal to 1"),
    ({"version": 1.5}, "version", "integer"),
    ({"version": True}, "version", "bool"),
    ({"extra": {"a.b": 1}}, "extra", "without '$' or '.'"),
    ({"extra": {"sl": float("nan")}}, "extra.sl", "not finite"),
    ({"extra": {"nested": {"x": 1}}}, "extra.nested", "only scalars"),
    ({"stop_price": 1.0}, "stop_price", "Extra inputs"),
])
def test_each_broken_rule_names_its_field(overrides, field, why):
    got_field, message = rejected_field(doc(**overrides))
    assert got_field == field
    assert why in message


def test_off_grid_ts_moves_up_to_the_next_bar_when_asked_never_earlier():
    d = validate(doc(ts=T0 + timedelta(minutes=59, seconds=59)), align="ceil")
    assert d.ts == T0 + timedelta(hours=1)
    assert validate(doc(ts=T0), align="ceil").ts == T0  # on the grid: unchanged


def test_floor_alignment_is_gone_with_a_message_that_says_why():
    with pytest.raises(ValidationError, match="align='floor' was removed.*ceil"):
        validate(doc(ts=T0 + timedelta(minutes=10)), align="floor")


def test_exit_with_zero_weight_and_score_next_to_action_are_consistent():
    d = validate(doc(action="exit_long", weight=0.0, score=-3.0))
    assert (d.action, d.weight, d.score) == (Action.EXIT_LONG, 0.0, -3.0)


def test_one_bar_ahead_of_now_is_tolerated_more_is_not():
    now = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert validate(doc(ts=datetime(2026, 3, 2, 11, tzinfo=UTC)), now=now)
    field, _ = rejected_field(doc(ts=datetime(2026, 3, 2, 12, tzinfo=UTC)), now=now)
    assert field == "ts"


def test_signal_frame_helpers_give_typed_empty_frame():
    frame = empty_signal_frame()
    assert list(frame.columns) == list(signal_frame_columns())
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert math.isnan(pd.Series([None], dtype=signal_frame_columns()["score"]).iloc[0])
