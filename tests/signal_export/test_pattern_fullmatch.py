"""Issue 16 (4): every pattern in the contract is a full match, at every entry point.

``re.match`` with ``$`` accepted a trailing newline (``"1h\\n"``, ``"demo\\n"``,
``"BINANCE:BTCUSDT\\n"``): the producer was told "accepted" and the bot never traded it.
Here every string field with a pattern (strategy_id, timeframe, symbol, pair, the
exchange part of a symbol and the exchange used to build one) gets leading/trailing
whitespace and control characters, and must be rejected with an error naming the field
by the model, by batch validation (fast column path and model path alike) and by the
reader of stored documents.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from signal_export.contract import (
    DEFAULT_QUOTES,
    ContractError,
    SignalDocument,
    document_from_stored,
    pair_to_symbol,
    resolve_symbol_pair,
    symbol_to_pair,
    timeframe_seconds,
    to_pair,
    to_symbol,
    validation_context,
)
from signal_export.frame_fast import fast_accept
from signal_export.validate import frame_to_records, validate_frame, validate_records

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 3, tzinfo=UTC)

#: Characters a template, a copy-paste or a C string can leave on a value.
PADDING = ["\n", "\r\n", "\r", " ", "\t", "\x00", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f",
           "\x85", "\xa0", "\u2028", "\u200b", "\ufeff"]

#: field -> (a valid document without that field's value, the valid value, expected field)
FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "strategy_id": ({"pair": "BTC/USDT"}, "rsi_v1"),
    "timeframe": ({"pair": "BTC/USDT"}, "1h"),
    "symbol": ({}, "BINANCE:BTCUSDT"),                      # symbol alone
    "pair": ({}, "BTC/USDT"),                               # pair alone
}


@pytest.fixture(autouse=True)
def _column_wise_path_for_every_size(monkeypatch):
    """Small frames normally skip the column-wise path; these tests compare it with the model."""
    monkeypatch.setattr("signal_export.validate.FAST_PATH_MIN_ROWS", 0)


def doc(**overrides: Any) -> dict[str, Any]:
    base = {"ts": T0, "timeframe": "1h", "strategy_id": "rsi_v1", "action": "enter_long"}
    base.update(overrides)
    return base


def padded(value: str) -> list[tuple[str, str]]:
    """(how, bad value) for every padding character before and after ``value``."""
    return ([(f"trailing {c!r}", value + c) for c in PADDING]
            + [(f"leading {c!r}", c + value) for c in PADDING])


CASES: list[tuple[str, dict[str, Any], str]] = []  # (field, document, how)
for _field, (_rest, _value) in FIELDS.items():
    for _how, _bad in padded(_value):
        CASES.append((_field, doc(**{**_rest, _field: _bad}), _how))
# the exchange part of a symbol, and a bad symbol next to a good pair (must name the symbol)
for _how, _bad in padded("BINANCE"):
    CASES.append(("symbol", doc(symbol=f"{_bad}:BTCUSDT"), f"exchange part, {_how}"))
for _how, _bad in padded("BINANCE:BTCUSDT"):
    CASES.append(("symbol", doc(symbol=_bad, pair="BTC/USDT"), f"with a pair, {_how}"))
for _how, _bad in padded("BTC/USDT"):
    CASES.append(("pair", doc(pair=_bad, symbol="BINANCE:BTCUSDT"), f"with a symbol, {_how}"))
# the settle part of futures forms
CASES += [("pair", doc(pair="BTC/USDT:USDT\n"), "futures pair, trailing newline"),
          ("symbol", doc(symbol="BINANCE:BTCUSDT.USDT\n"), "futures symbol, trailing newline")]
IDS = [f"{f}-{how}" for f, _, how in CASES]


def field_of(err: ValidationError) -> str:
    first = err.errors()[0]
    exc = (first.get("ctx") or {}).get("error")
    return getattr(exc, "field", None) or ".".join(map(str, first["loc"]))


# --- the model --------------------------------------------------------------------


@pytest.mark.parametrize(("field", "document", "how"), CASES, ids=IDS)
def test_the_model_rejects_padding_naming_the_field(field, document, how) -> None:
    with pytest.raises(ValidationError) as err:
        SignalDocument.model_validate(document, context=validation_context(now=NOW))
    assert field_of(err.value) == field, (how, str(err.value))
    assert repr(document[field])[1:-1] in str(err.value) or field == "strategy_id"


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_the_unpadded_values_are_valid(field) -> None:
    rest, value = FIELDS[field]
    SignalDocument.model_validate(doc(**{**rest, field: value}),
                                  context=validation_context(now=NOW))


@pytest.mark.parametrize("exchange", ["BINANCE\n", " BINANCE", "BINANCE\x00", "BIN ANCE",
                                      "bınance", "ＢＩＮＡＮＣＥ"])
def test_a_padded_or_look_alike_exchange_is_rejected_naming_exchange(exchange) -> None:
    with pytest.raises(ValidationError) as err:
        SignalDocument.model_validate(doc(pair="BTC/USDT"),
                                      context=validation_context(now=NOW, exchange=exchange))
    assert field_of(err.value) == "exchange"
    with pytest.raises(ContractError) as err2:
        pair_to_symbol("BTC/USDT", exchange)
    assert err2.value.field == "exchange"


@pytest.mark.parametrize("bad", ["1h\n", " 1h", "1h ", "1h\x00", "1h\r", "\t1h", "1\nh"])
def test_the_timeframe_parser_is_a_full_match(bad) -> None:
    with pytest.raises(ContractError, match="not of the form"):
        timeframe_seconds(bad)


@pytest.mark.parametrize("bad", ["BINANCE:BTCUSDT\n", " BINANCE:BTCUSDT", "BINANCE:BTCUSDT\x00"])
def test_the_symbol_mapping_functions_are_full_matches(bad) -> None:
    for fn in (symbol_to_pair, to_pair, to_symbol):
        with pytest.raises(ContractError):
            fn(bad)
    with pytest.raises(ContractError) as err:
        resolve_symbol_pair(bad, None)
    assert err.value.field == "symbol"


@pytest.mark.parametrize("bad", ["BTC/USDT\n", " BTC/USDT", "BTC/USDT\x00", "BTC/USDT:USDT\n"])
def test_the_pair_mapping_functions_are_full_matches(bad) -> None:
    for fn in (pair_to_symbol, to_pair, to_symbol):
        with pytest.raises(ContractError):
            fn(bad)
    with pytest.raises(ContractError) as err:
        resolve_symbol_pair(None, bad)
    assert err.value.field == "pair"


# --- batch validation: records, and frames through both paths -------------------------


@pytest.mark.parametrize(("field", "document", "how"), CASES, ids=IDS)
def test_validate_records_rejects_padding_naming_the_field(field, document, how) -> None:
    batch = validate_records([doc(pair="BTC/USDT"), document], now=NOW)
    assert batch.indices == [0]
    assert [(e.index, e.field) for e in batch.errors] == [(1, field)], how


def _frame_cases() -> list[tuple[str, dict[str, Any], str]]:
    """The cases as frame rows: every row has the same columns (NaN = not set)."""
    return [(f, {"symbol": None, "pair": None, **d}, how) for f, d, how in CASES]


def test_validate_frame_rejects_every_padded_row_like_the_model() -> None:
    """One frame with a good row between every bad one: the fast path must accept only the good
    rows, and the frame's judgement must equal the model's row by row."""
    rows, expected = [], {}
    for i, (field, row, _) in enumerate(_frame_cases()):
        rows.append({"symbol": None, "pair": "BTC/USDT",
                     **doc(ts=T0 - timedelta(hours=i + 1))})   # a good row, own key
        expected[len(rows)] = field
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    accepted, _ = fast_accept(frame, align="reject", now=NOW, exchange="BINANCE",
                              quotes=DEFAULT_QUOTES)
    assert accepted.tolist() == [i not in expected for i in range(len(rows))]
    fast = validate_frame(frame, now=NOW)
    ref = validate_records(frame_to_records(frame), indices=list(frame.index), now=NOW)
    assert {(e.index, e.field) for e in fast.errors} == set(expected.items())
    assert sorted(map(str, fast.errors)) == sorted(map(str, ref.errors))
    assert fast.records == ref.records and fast.indices == ref.indices


@pytest.mark.parametrize("exchange", ["BINANCE\n", " BINANCE", "bınance"])
def test_validate_frame_rejects_a_padded_exchange_on_both_paths(exchange) -> None:
    frame = pd.DataFrame([doc(pair="BTC/USDT")])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    accepted, _ = fast_accept(frame, align="reject", now=NOW, exchange=exchange,
                              quotes=DEFAULT_QUOTES)
    assert not accepted.any()
    for batch in (validate_frame(frame, now=NOW, exchange=exchange),
                  validate_records([doc(pair="BTC/USDT")], now=NOW, exchange=exchange)):
        assert [e.field for e in batch.errors] == ["exchange"]


# --- the reader of stored documents ----------------------------------------------


def stored(**fields: Any) -> dict[str, Any]:
    """A document as MongoDB hands it back, bookkeeping included."""
    return {"_id": "x", "content_hash": "h", "created_at": NOW, "updated_at": NOW,
            "run_id": "r", "created_run_id": "r", "version": 1,
            **doc(pair="BTC/USDT", symbol="BINANCE:BTCUSDT"), **fields}


def test_a_clean_stored_document_reads_back() -> None:
    assert document_from_stored(stored(), now=NOW).pair == "BTC/USDT"


@pytest.mark.parametrize(("field", "document", "how"), CASES, ids=IDS)
def test_document_from_stored_rejects_padding_naming_the_field(field, document, how) -> None:
    data = stored(**document)
    for other in ("symbol", "pair"):   # keep the case's own symbol/pair combination
        if other not in document:
            data.pop(other)
    with pytest.raises(ValidationError) as err:
        document_from_stored(data, now=NOW)
    assert field_of(err.value) == field, how


# --- any whitespace / control / format character, anywhere ---------------------------

BAD_CHARS = st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(FIELDS)), char=BAD_CHARS, where=st.integers(0, 64),
       repeat=st.integers(1, 3))
def test_any_whitespace_or_control_character_anywhere_is_rejected_everywhere(
        field, char, where, repeat) -> None:
    rest, value = FIELDS[field]
    pos = where % (len(value) + 1)
    bad = value[:pos] + char * repeat + value[pos:]
    document = doc(**{**rest, field: bad})
    with pytest.raises(ValidationError) as err:
        SignalDocument.model_validate(document, context=validation_context(now=NOW))
    assert field_of(err.value) == field
    batch = validate_records([document], now=NOW)
    assert [e.field for e in batch.errors] == [field]
    frame = pd.DataFrame([{"symbol": None, "pair": None, **document}])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    fast = validate_frame(frame, now=NOW)
    assert fast.records == [] and [e.field for e in fast.errors] == [field]
    with pytest.raises(ValidationError) as err2:
        document_from_stored({**document, "_id": 1}, now=NOW)
    assert field_of(err2.value) == field
