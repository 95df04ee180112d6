"""Batch validation: named errors, duplicate keys, and frames judged like dicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signal_export.contract import DEFAULT_QUOTES, SIGNAL_FIELDS, ContractError
from signal_export.frame_fast import fast_accept
from signal_export.validate import frame_to_records, validate_frame, validate_records

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 4, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _column_wise_path_for_every_size(monkeypatch):
    """Small frames normally skip the column-wise path; these tests compare it with the model."""
    monkeypatch.setattr("signal_export.validate.FAST_PATH_MIN_ROWS", 0)


def good(i: int = 0, **kw):
    base = {"ts": T0 + timedelta(hours=i), "timeframe": "1h", "pair": "BTC/USDT",
            "strategy_id": "s1", "action": "enter_long"}
    base.update(kw)
    return base


def test_errors_name_the_document_its_key_and_the_field():
    batch = validate_records([good(0), good(1, weight=2.0), good(2)], now=NOW)
    assert [d.ts for d in batch.documents] == [T0, T0 + timedelta(hours=2)]
    assert batch.indices == [0, 2]
    [err] = batch.errors
    assert err.index == 1 and err.field == "weight"
    assert "pair='BTC/USDT'" in err.key and "2026-03-02T11:00:00+00:00" in err.key
    assert "outside [0, 1]" in err.message
    assert str(err).startswith("document 1 (")


def test_a_document_with_several_problems_reports_each():
    batch = validate_records([good(0, score=float("nan"), note="x" * 2000)], now=NOW)
    assert sorted(e.field for e in batch.errors) == ["note", "score"]
    assert batch.rejected_indices == [0]


def test_non_mapping_rows_are_rejected_by_index():
    batch = validate_records([good(0), "not a doc"], now=NOW)
    assert len(batch.documents) == 1
    assert (batch.errors[0].index, batch.errors[0].field) == (1, "document")


def test_duplicate_keys_in_one_batch_reject_every_copy():
    rows = [good(0, score=1.0), good(1), good(0, score=2.0)]
    batch = validate_records(rows, indices=["a", "b", "c"], now=NOW)
    assert batch.indices == ["b"]
    dup = {e.index: e for e in batch.errors}
    assert set(dup) == {"a", "c"}
    assert dup["a"].field == "key" and "c" in dup["a"].message
    assert "duplicate key" in dup["c"].message and "a" in dup["c"].message


def test_ceil_alignment_can_create_duplicates_which_are_rejected_too():
    rows = [good(0, ts=T0 + timedelta(hours=1)), good(0, ts=T0 + timedelta(minutes=20))]
    batch = validate_records(rows, align="ceil", now=NOW)
    assert batch.documents == [] and {e.field for e in batch.errors} == {"key"}


def test_symbol_and_pair_may_differ_in_form_but_not_in_meaning():
    batch = validate_records([
        good(0, pair=None, symbol="BINANCE:ETHBTC"),
        good(1, symbol="BINANCE:ETHUSDT"),
    ], now=NOW)
    assert batch.documents[0].pair == "ETH/BTC"
    assert batch.errors[0].index == 1 and batch.errors[0].field == "pair"


def test_frame_nan_means_not_set_and_extra_columns_fold_into_extra():
    frame = pd.DataFrame({
        "ts": pd.to_datetime([T0, T0 + timedelta(hours=1)], utc=True),
        "timeframe": "1h", "pair": "BTC/USDT", "strategy_id": "s1",
        "action": ["enter_long", None], "score": [np.nan, 0.4],
        "extra.stop_loss": [60000.0, np.nan],
    })
    records = frame_to_records(frame)
    assert "score" not in records[0] and "action" not in records[1]
    assert records[0]["extra"] == {"stop_loss": 60000.0} and "extra" not in records[1]
    batch = validate_frame(frame, now=NOW)
    assert batch.errors == [] and batch.documents[0].extra == {"stop_loss": 60000.0}


def test_frame_with_an_unknown_column_is_refused_as_a_whole():
    frame = pd.DataFrame([good(0)]).assign(scroe=1.0)
    with pytest.raises(ContractError, match="scroe"):
        validate_frame(frame, now=NOW)


def test_frame_errors_use_the_frame_index():
    frame = pd.DataFrame([good(0), good(1, action="sell")], index=[10, 11])
    batch = validate_frame(frame, now=NOW)
    assert [(e.index, e.field) for e in batch.errors] == [(11, "action")]


# A corpus of documents, valid and broken, that both paths must judge alike.
CORPUS = [
    good(0), good(1, score=0.3, weight=0.5), good(2, action="exit_long", weight=0.0),
    good(3, weight=1.5), good(4, action="exit_long", weight=0.2), good(5, action="hold"),
    good(6, ts=datetime(2026, 3, 2, 16)), good(7, ts=T0 + timedelta(minutes=90)),
    good(8, score=float("inf")), good(9, pair="BTC/XYZ"), good(10, strategy_id="a b"),
    good(11, timeframe="7m"), good(12, valid_until=T0), good(13, version=0),
    good(14, symbol="BINANCE:ETHUSDT"), good(15, pair=None, symbol="BINANCE:1000PEPEUSDT"),
    good(16, note="n" * 1001), good(17, ts=NOW + timedelta(days=2)),
    good(1), good(18, action=None, score=-2.0), good(19, action=None),
    good(20, extra={"tp": 1.0}), good(21, extra={"tp": float("nan")}),
]


def test_a_frame_and_a_list_of_dicts_reject_the_same_corpus():
    as_dicts = validate_records(CORPUS, now=NOW)
    frame = pd.DataFrame(CORPUS)
    as_frame = validate_frame(frame, now=NOW)
    judged = {(e.index, e.field) for e in as_dicts.errors}
    assert judged == {(e.index, e.field) for e in as_frame.errors}
    assert as_dicts.indices == as_frame.indices
    assert [d.to_mongo() for d in as_dicts.documents] == [d.to_mongo() for d in as_frame.documents]
    # the corpus really exercises both outcomes and many fields
    assert len(as_dicts.documents) >= 5
    assert {f for _, f in judged} >= {"weight", "action", "ts", "score", "pair", "key",
                                      "strategy_id", "timeframe", "valid_until", "version",
                                      "note", "extra.tp"}


# --- the vectorised fast path must agree with the model, row for row -------------


def model_only(frame: pd.DataFrame, **kw):
    """The reference: every row through the pydantic model."""
    return validate_records(frame_to_records(frame), indices=list(frame.index), **kw)


def assert_same_judgement(frame: pd.DataFrame, **kw):
    fast, ref = validate_frame(frame, **kw), model_only(frame, **kw)
    assert fast.indices == ref.indices
    assert fast.records == ref.records
    # the exporter reads every key and content field of a record and stores nothing else
    assert all(r.keys() == set(SIGNAL_FIELDS) for r in fast.records)
    assert sorted(map(str, fast.errors)) == sorted(map(str, ref.errors))
    return fast


def typed_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for col in ("ts", "valid_until"):
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


TYPED_ROWS = [
    good(0), good(1, score=0.3, weight=0.5), good(2, action="exit_long", weight=0.0),
    good(3, weight=1.5), good(4, action="exit_long", weight=0.2), good(5, action="hold"),
    good(6, ts=T0 + timedelta(hours=6, minutes=30)), good(7, score=float("inf")),
    good(8, pair="BTC/XYZ"), good(9, strategy_id="a b"), good(10, timeframe="7m"),
    good(11, valid_until=T0 + timedelta(hours=11)), good(12, version=0.0),
    good(13, version=2.5), good(14, symbol="BINANCE:ETHUSDT"), good(15, note="n" * 1001),
    good(16, ts=NOW + timedelta(days=2)), good(17, action=None), good(18, ts=pd.NaT),
    good(19, action=None, score=-1.0, valid_until=T0 + timedelta(days=1), version=3.0,
         note="ok", source="unit"),
    good(20, pair=None, symbol="BINANCE:1000PEPEUSDT"), good(21, action="enter_long", weight=0.0),
    good(0, strategy_id="s2"), good(1, strategy_id="s2", timeframe="1d"),
]


def test_fast_path_matches_the_model_on_a_typed_corpus():
    frame = typed_frame(TYPED_ROWS)
    batch = assert_same_judgement(frame, now=NOW)
    accepted, _ = fast_accept(frame, align="reject", now=NOW, exchange="BINANCE",
                              quotes=DEFAULT_QUOTES)
    assert accepted.sum() >= 6 and len(batch.records) == accepted.sum()  # fast path really used
    assert len(batch.errors) >= 14


def test_fast_path_matches_the_model_when_aligning_up():
    frame = typed_frame([good(0, ts=T0 + timedelta(minutes=m)) for m in (60, 7, 59)]
                        + [good(2, ts=T0 + timedelta(hours=2, minutes=1), timeframe="15m")])
    batch = assert_same_judgement(frame, now=NOW, align="ceil")
    assert {e.field for e in batch.errors} == {"key"}  # 3 rows move onto the same bar
    assert batch.documents[0].ts == T0 + timedelta(hours=2, minutes=15)


_pairs = st.sampled_from(["BTC/USDT", "ETH/BTC", "BTC/XYZ", None])
_floats = st.sampled_from([None, 0.0, 0.5, 1.0, -2.0, 1.5, float("inf")])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.fixed_dictionaries({
    "ts": st.sampled_from([T0, T0 + timedelta(hours=1), T0 + timedelta(minutes=5),
                           NOW + timedelta(days=3)]),
    "timeframe": st.sampled_from(["1h", "5m", "1d", "7m"]),
    "pair": _pairs,
    "symbol": st.sampled_from([None, "BINANCE:BTCUSDT", "BINANCE:ETHBTC"]),
    "strategy_id": st.sampled_from(["s1", "s-2", "bad id"]),
    "action": st.sampled_from([None, "enter_long", "exit_long", "hold"]),
    "score": _floats, "weight": _floats,
    "version": st.sampled_from([None, 1.0, 2.0, 0.0, 1.5]),
}), min_size=1, max_size=12), align=st.sampled_from(["reject", "ceil"]))
def test_fast_path_matches_the_model_on_random_frames(rows, align):
    assert_same_judgement(typed_frame(rows), now=NOW, align=align)


def test_fast_path_matches_the_model_below_a_microsecond():
    ns = pd.Timedelta(nanoseconds=500)
    frame = typed_frame([good(0), good(1), good(2)])
    frame["ts"] = frame["ts"].astype("datetime64[ns, UTC]")
    frame.loc[1, "ts"] = frame.loc[1, "ts"] + ns  # truncates onto the grid, like the model
    frame["valid_until"] = frame["ts"] + ns
    frame.loc[0, "valid_until"] = frame.loc[0, "ts"] + pd.Timedelta(hours=1)
    # row 1: ts 11:00 (+500 ns dropped), valid_until 11:00:00.000001 -> valid
    # row 2: valid_until = ts + 500 ns -> equal to ts at microsecond precision -> rejected
    batch = assert_same_judgement(frame, now=NOW)
    assert batch.indices == [0, 1] and [(e.index, e.field) for e in batch.errors] == [
        (2, "valid_until")]
