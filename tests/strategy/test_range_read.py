"""The chunked backtest read (:mod:`signal_export.consumer.range_read`) equals the one query.

Against the local MongoDB server over the wire: random documents, a share of them
malformed in every way ``normalise_signals`` knows (bad pair/strategy_id/ts types,
unknown pairs, NaN/inf/str scores, weights out of range, action/weight conflicts,
valid_until <= ts, bad versions, missing fields), several strategy ids and versions
with ties on (pair, ts). The one-query path is what ``SignalSource`` does today:
``normalise_signals(list(find(flt, PROJECTION)))`` then a stable sort on (pair, ts).
Equal: the frame (columns, dtypes, values, order), the per-pair and per-strategy
counts, the warnings (first call per key, counts summed over batches), the documents
found per strategy id and the per-pair slices, for batch sizes from 1 document up.
Then the decided columns of the in-process ``ExternalSignalLogic`` backtest are the
same when its source serves the chunked frame instead of its own.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from datetime import UTC, datetime, timedelta

import bson
import bson.errors
import numpy as np
import pandas as pd
import pytest
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from strategy_helpers import PAIRS, constructed_candles

from signal_export.consumer.logic import ExternalSignalLogic, apply_entry, apply_exit
from signal_export.consumer.matching import match_signals
from signal_export.consumer.normalise import normalise_signals, strategy_key
from signal_export.consumer.range_read import read_signal_range
from signal_export.consumer.source import PROJECTION, RISK_PROJECTION

H = timedelta(hours=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
N_BARS = 48
SIDS = ("alpha", "beta", "gamma")
WHITELIST = (*PAIRS, "XRP/USDT")


class Recorder:
    """A ``warn`` that keeps the first call per key, as ``WarnOnce`` would log it."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    def __call__(self, key: str, msg: str, *args: object) -> None:
        self.first.setdefault(key, msg % args)


def _pick(rng: np.random.Generator, values: list) -> object:
    return values[int(rng.integers(len(values)))]


def random_docs(n: int, seed: int, bad: float = 0.3) -> list[dict]:
    """``n`` signal documents; about ``bad`` of them with one odd field each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        # few distinct (pair, ts): many ties across strategy ids and versions
        ts = T0 + int(rng.integers(N_BARS)) * H + _pick(rng, [timedelta(0), timedelta(minutes=20)])
        doc: dict = {"pair": _pick(rng, list(WHITELIST)), "strategy_id": _pick(rng, list(SIDS)),
                     "timeframe": "1h", "ts": ts, "version": int(rng.integers(1, 4)),
                     "note": f"n{i}"}
        kind = int(rng.integers(4))
        if kind == 0:
            doc["score"] = float(rng.random())
        elif kind == 1:
            doc["action"] = "enter_long"
            doc["weight"] = round(float(rng.random()) * 0.9 + 0.1, 3)
        elif kind == 2:
            doc["action"] = "exit_long"
        else:
            doc["weight"] = _pick(rng, [0.0, 0.5, 1.0])
            doc["score"] = float(rng.random())
        if rng.random() < 0.5:
            doc["valid_until"] = ts + int(rng.integers(1, 6)) * H
        if rng.random() < 0.3:
            del doc["version"]
        if rng.random() < bad:
            field, value = _pick(rng, ODD)
            if value is DROP:
                doc.pop(field, None)
            else:
                doc[field] = value(ts) if callable(value) else value
        out.append(doc)
    return out


DROP = object()
ODD = [
    ("pair", DROP), ("pair", 7), ("pair", ""), ("pair", "DOGE/USDT"), ("pair", "BTC-USDT"),
    ("pair", None), ("strategy_id", DROP), ("strategy_id", ""), ("strategy_id", 5),
    ("strategy_id", "delta"), ("ts", "2026-01-01T05:00:00Z"), ("ts", 1_700_000_000),
    ("ts", DROP), ("action", "buy"), ("action", 3), ("score", math.nan), ("score", math.inf),
    ("score", "0.7"), ("score", True), ("score", 1), ("weight", 1.5), ("weight", -0.1),
    ("weight", math.nan), ("weight", "x"), ("valid_until", lambda ts: ts - H),
    ("valid_until", lambda ts: ts), ("valid_until", "tomorrow"), ("version", 0),
    ("version", True), ("version", 2.5), ("version", Int64(7)), ("version", "3"),
    ("action", None), ("score", None), ("timeframe", "1d"), ("score", {"x": 1}),
    ("pair", ["BTC/USDT"]), ("weight", Decimal128("0.5")), ("action", "a" * 300),
    ("version", Int64(0)), ("weight", 0), ("score", -0.0), ("valid_until", None),
    ("action", "enter_long\x00"), ("strategy_id", "alpha\x00"),
    # action/weight conflicts (and their valid neighbours), depending on the document
    ("action", "exit_long"), ("action", "enter_long"), ("weight", 0.0), ("weight", 0.3),
    # short actions (futures) are read column-wise too; no conflict rule applies to them
    ("action", "enter_short"), ("action", "exit_short"),
]


def range_filter(start: datetime = T0 - H, end: datetime = T0 + N_BARS * H) -> dict:
    """``SignalSource._query``'s filter for the whitelist (backtest: both ends bounded)."""
    return {"strategy_id": {"$in": list(SIDS)}, "pair": {"$in": sorted(WHITELIST)},
            "timeframe": "1h", "ts": {"$gte": start, "$lte": end}}


def one_query(coll, flt: dict, risk: bool = False
              ) -> tuple[pd.DataFrame, dict, dict, Recorder, Counter, list]:
    """What the source does today: one find, normalise, stable sort by (pair, ts)."""
    counts: dict = {}
    by_strategy: dict = {}
    warn = Recorder()
    docs = list(coll.find(flt, RISK_PROJECTION if risk else PROJECTION))
    frame = normalise_signals(docs, pairs=WHITELIST, counts=counts, warn=warn,
                              strategy_counts=by_strategy, risk=risk)
    frame = frame.sort_values(["pair", "ts"], kind="stable").reset_index(drop=True)
    found = Counter(strategy_key(d.get("strategy_id")) for d in docs)
    return frame, counts, by_strategy, warn, found, docs


def chunked(coll, flt: dict, batch_size: int, risk: bool = False):
    counts: dict = {}
    by_strategy: dict = {}
    warn = Recorder()
    read = read_signal_range(coll, flt, RISK_PROJECTION if risk else PROJECTION,
                             pairs=WHITELIST, counts=counts, warn=warn,
                             strategy_counts=by_strategy, batch_size=batch_size, risk=risk)
    return read, counts, by_strategy, warn


def source_slices(frame: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """``SignalSource._ingest``'s slices of a sorted frame."""
    names, starts = np.unique(frame["pair"].to_numpy(dtype=object), return_index=True)
    ends = np.append(starts[1:], len(frame)) if len(frame) else starts
    return {str(p): (int(a), int(b)) for p, a, b in zip(names, starts, ends, strict=True)}


@pytest.mark.parametrize("batch_size", [1, 7, 64, 10_000])
def test_chunked_read_equals_the_one_query_path(mongo_db, batch_size):
    coll = mongo_db["crypto_signals"]
    coll.insert_many(random_docs(600, seed=batch_size))
    flt = range_filter()
    frame, counts, by_strategy, warn, found, docs = one_query(coll, flt)
    read, r_counts, r_by_strategy, r_warn = chunked(coll, flt, batch_size)

    assert len(docs) > 400 and 0 < len(frame) < len(docs)  # the corpus has both kinds
    assert frame.duplicated(["pair", "ts"]).any()  # ties: the sort must keep the find order
    pd.testing.assert_frame_equal(read.frame, frame, check_exact=True)
    assert list(read.frame.dtypes.astype(str)) == list(frame.dtypes.astype(str))
    assert r_counts == counts and r_by_strategy == by_strategy
    assert sum(sum(c.values()) for c in counts.values()) == len(docs) - len(frame)
    assert r_warn.first == warn.first
    assert read.found == found and read.documents == len(docs)
    assert read.slices == source_slices(frame)
    # the malformed documents went through normalise, the others were read column-wise
    assert len(docs) - len(frame) <= read.decoded < len(docs) / 2


#: Futures risk values: good ones (doubles, int32, int64) and every kind of bad one.
RISK_VALUES = {
    "leverage": [2.0, 3, Int64(10), 1.0, 125.0, 0.5, 130.0, True, "3", math.nan, math.inf,
                 Decimal128("2"), None],
    "stop_loss": [0.02, 0.05, 0.3, 1, 0.0, -0.01, "5%", math.nan, None, Int64(0)],
    "take_profit": [0.1, 0.5, 1.5, 2, 0.0, False, math.nan, -math.inf, None],
}


def with_risk(docs: list[dict], seed: int) -> list[dict]:
    """About half the documents with risk fields, some of them short entries."""
    rng = np.random.default_rng(seed)
    for doc in docs:
        if rng.random() < 0.15:  # a short entry: take_profit >= 1 breaks the contract
            doc.update(action="enter_short", weight=-0.5)
        for name, values in RISK_VALUES.items():
            if rng.random() < 0.5:
                doc[name] = _pick(rng, values)
    return docs


@pytest.mark.parametrize("batch_size", [1, 64, 10_000])
def test_futures_read_with_risk_fields_equals_the_one_query(mongo_db, batch_size):
    """``risk=True``: the risk columns, and the signals dropped for their risk values
    (counted ``malformed``, warned per reason), are those of ``normalise_signals``."""
    coll = mongo_db["crypto_signals"]
    coll.insert_many(with_risk(random_docs(600, seed=batch_size, bad=0.1), seed=batch_size))
    flt = range_filter()
    frame, counts, by_strategy, warn, found, docs = one_query(coll, flt, risk=True)
    read, r_counts, r_by_strategy, r_warn = chunked(coll, flt, batch_size, risk=True)
    pd.testing.assert_frame_equal(read.frame, frame, check_exact=True)
    assert r_counts == counts and r_by_strategy == by_strategy and r_warn.first == warn.first
    assert read.found == found and read.slices == source_slices(frame)
    assert {"malformed:stop_loss not a number > 0 with stop_loss * leverage < 1",
            "malformed:take_profit not a number > 0 (< 1 on a short)",
            "malformed:leverage not a number in [1, 125]"} <= set(warn.first)
    risk = frame[["leverage", "stop_loss", "take_profit"]]
    assert risk.notna().any().all() and risk.isna().any().all()  # given and absent ones
    assert (frame["leverage"].dropna().between(1, 125)).all()
    assert len(docs) - len(frame) <= read.decoded < len(docs)
    plain, *_ = one_query(coll, flt)  # the spot read of the same documents keeps more
    assert len(plain) > len(frame) and list(plain.columns) == list(frame.columns[:8])

    clean = mongo_db["clean"]  # good values of every number type: all read column-wise
    good = random_docs(200, seed=batch_size, bad=0.0)
    for i, doc in enumerate(good):
        doc.update(leverage=[2.0, 3, Int64(10)][i % 3], stop_loss=[0.02, None][i % 2],
                   take_profit=[0.1, 1, Int64(2)][i % 3])
    clean.insert_many(good)
    frame, *_ = one_query(clean, flt, risk=True)
    read, *_ = chunked(clean, flt, batch_size, risk=True)
    pd.testing.assert_frame_equal(read.frame, frame, check_exact=True)
    assert read.decoded == 0 and len(frame) == 200
    assert set(frame["take_profit"]) == {0.1, 1.0, 2.0}


def test_clean_range_is_read_column_wise_and_naive_codecs_still_equal(mongo_db):
    coll = mongo_db["crypto_signals"]
    coll.insert_many(random_docs(300, seed=5, bad=0.0))
    flt = range_filter()
    frame, counts, *_ = one_query(coll, flt)
    read, r_counts, *_ = chunked(coll, flt, batch_size=50)
    pd.testing.assert_frame_equal(read.frame, frame)
    assert counts == r_counts == {} and len(frame) == 300 and read.decoded == 0

    naive = coll.with_options(codec_options=CodecOptions(tz_aware=False))
    frame, counts, by_strategy, warn, found, _ = one_query(naive, flt)
    read, r_counts, r_by_strategy, r_warn = chunked(naive, flt, batch_size=50)
    assert frame.empty and read.frame.empty and read.decoded == 300  # naive ts: malformed
    assert (r_counts, r_by_strategy, r_warn.first, read.found) == (counts, by_strategy,
                                                                   warn.first, found)


class RawBatches:
    """A collection stand-in serving given raw batches, for what pymongo will not write
    (duplicate names, invalid UTF-8) or the dev server will not send (a date past 9999)."""

    codec_options = CodecOptions(tz_aware=True)

    def __init__(self, batches: list[bytes]) -> None:
        self.batches = batches

    def find_raw_batches(self, flt, projection, batch_size):
        return _Cursor(self.batches)


class _Cursor(list):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def raw_doc(*elements: bytes) -> bytes:
    body = b"".join(elements) + b"\0"
    return (len(body) + 4).to_bytes(4, "little") + body


def element(type_byte: int, name: str, value: bytes) -> bytes:
    return bytes([type_byte]) + name.encode() + b"\0" + value


def bstr(text: bytes) -> bytes:
    return (len(text) + 1).to_bytes(4, "little") + text + b"\0"


def ms(value: int) -> bytes:
    return value.to_bytes(8, "little", signed=True)


def good_elements(score: float = 0.9) -> list[bytes]:
    return [element(0x02, "pair", bstr(b"BTC/USDT")),
            element(0x02, "strategy_id", bstr(b"alpha")),
            element(0x09, "ts", ms(1_767_225_600_000)),
            element(0x01, "score", struct.pack("<d", score))]


@pytest.mark.parametrize("per_batch", [1, 9, 500])
def test_every_odd_value_equals_normalise_without_the_query_filter(per_batch):
    """The query's filter keeps some odd values out (empty or non-string pairs and ids,
    ts of other types, unknown pairs); fed to the reader anyway, it still equals normalise."""
    docs = random_docs(1500, seed=per_batch, bad=0.5)
    raws = [bson.encode(d) for d in docs]
    batches = [b"".join(raws[i:i + per_batch]) for i in range(0, len(raws), per_batch)]
    decoded = bson.decode_all(b"".join(raws), RawBatches.codec_options)
    counts: dict = {}
    by_strategy: dict = {}
    warn = Recorder()
    frame = normalise_signals(decoded, pairs=WHITELIST, counts=counts, warn=warn,
                              strategy_counts=by_strategy)
    frame = frame.sort_values(["pair", "ts"], kind="stable").reset_index(drop=True)
    r_counts: dict = {}
    r_by_strategy: dict = {}
    r_warn = Recorder()
    read = read_signal_range(RawBatches(batches), {}, PROJECTION, pairs=WHITELIST,
                             counts=r_counts, warn=r_warn, strategy_counts=r_by_strategy)
    pd.testing.assert_frame_equal(read.frame, frame, check_exact=True)
    assert (r_counts, r_by_strategy, r_warn.first) == (counts, by_strategy, warn.first)
    assert read.found == Counter(strategy_key(d.get("strategy_id")) for d in decoded)
    assert len(decoded) - len(frame) <= read.decoded < len(decoded) * 0.75


def test_a_date_out_of_python_range_fails_like_the_one_query():
    """pymongo refuses a BSON date past year 9999; the chunked read must raise it too."""

    bad = raw_doc(*good_elements(), element(0x09, "valid_until", ms(253402300800000)))
    batch = raw_doc(*good_elements()) + bad
    with pytest.raises(bson.errors.InvalidBSON, match="year 10000 is out of range"):
        bson.decode_all(batch, RawBatches.codec_options)
    with pytest.raises(bson.errors.InvalidBSON, match="year 10000 is out of range"):
        read_signal_range(RawBatches([batch]), {}, PROJECTION, pairs=WHITELIST)


def test_documents_the_parser_cannot_read_exactly_go_through_bson_and_normalise():
    """Repeated names, invalid UTF-8, a nested value, a string past MAX_STRING: each is
    decoded by ``bson`` (or refused by it, as ``find`` would); a field not asked for is
    skipped whatever it holds."""

    dup = raw_doc(*good_elements(0.8), element(0x01, "score", ms(0)))  # score twice
    extra = raw_doc(*good_elements(), element(0x03, "extra", raw_doc()))  # skipped, read
    nested = raw_doc(*good_elements()[:3], element(0x03, "score", raw_doc()))
    long_sid = raw_doc(*good_elements()[:1], element(0x02, "strategy_id", bstr(b"s" * 300)),
                       *good_elements()[2:])
    plain = raw_doc(*good_elements(0.7))
    batch = plain + dup + extra + nested + long_sid
    docs = bson.decode_all(batch, RawBatches.codec_options)
    expected = normalise_signals(docs, pairs=WHITELIST)
    read = read_signal_range(RawBatches([batch]), {}, PROJECTION, pairs=WHITELIST)
    pd.testing.assert_frame_equal(read.frame, expected.sort_values(
        ["pair", "ts"], kind="stable").reset_index(drop=True))
    assert read.decoded == 3 and len(read.frame) == 4  # the nested score is malformed

    bad_utf8 = raw_doc(*good_elements()[:1], element(0x02, "strategy_id", bstr(b"\xff\xfe")),
                       *good_elements()[2:])
    with pytest.raises(bson.errors.InvalidBSON):
        bson.decode_all(bad_utf8, RawBatches.codec_options)
    with pytest.raises(bson.errors.InvalidBSON):
        read_signal_range(RawBatches([plain + bad_utf8]), {}, PROJECTION, pairs=WHITELIST)


def test_warnings_name_the_range_total_and_its_first_document(mongo_db):
    """Per batch, normalise sees a part; the replayed line counts the whole range."""
    coll = mongo_db["crypto_signals"]
    good = random_docs(30, seed=1, bad=0.0)
    for i, doc in enumerate(good):
        doc["_id"] = i
        if i % 3 == 0:
            doc.pop("action", None)
            doc.pop("weight", None)
            doc["score"] = math.nan
    coll.insert_many(good)
    read, _, by_strategy, warn = chunked(coll, range_filter(), batch_size=4)
    line = warn.first["malformed:score not a finite number"]
    assert line.startswith("ignoring 10 malformed signal document(s): score not a finite "
                           "number (first: _id=0 ")
    assert sum(c["malformed"] for c in by_strategy.values()) == 10
    assert len(read.frame) == 20


def test_empty_range_and_all_malformed_range(mongo_db):
    coll = mongo_db["crypto_signals"]
    read, counts, by_strategy, warn = chunked(coll, range_filter(), batch_size=5)
    assert read.frame.empty and read.slices == {} and read.documents == 0
    assert counts == {} and by_strategy == {} and warn.first == {} and read.found == Counter()
    pd.testing.assert_frame_equal(read.frame, normalise_signals([]))

    coll.insert_many([{"pair": "DOGE/USDT", "strategy_id": "alpha", "timeframe": "1h",
                       "ts": T0 + i * H, "score": 0.9} for i in range(12)])
    flt = {**range_filter(), "pair": {"$in": sorted({*WHITELIST, "DOGE/USDT"})}}
    frame, counts, by_strategy, warn, found, _ = one_query(coll, flt)
    read, r_counts, r_by_strategy, r_warn = chunked(coll, flt, batch_size=5)
    assert frame.empty and read.frame.empty and read.documents == 12
    pd.testing.assert_frame_equal(read.frame, frame)
    assert r_counts == counts == {"DOGE/USDT": Counter(unknown_pair=12)}
    assert r_by_strategy == by_strategy and r_warn.first == warn.first
    assert read.found == found == Counter(alpha=12)


def test_batch_size_must_be_positive(mongo_db):
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        read_signal_range(mongo_db["crypto_signals"], {}, PROJECTION, batch_size=0)


def test_a_failing_query_raises(mongo_db):
    """A backtest without its signals must fail, not trade blind (as ``load_range``)."""
    import pymongo.errors

    coll = mongo_db["crypto_signals"]
    coll.insert_many(random_docs(3, seed=2))
    with pytest.raises(pymongo.errors.OperationFailure):
        read_signal_range(coll, {"ts": {"$bogus": 1}}, PROJECTION)


def make_logic(uri: str, db: str) -> ExternalSignalLogic:
    ft_config = {"timeframe": "1h", "ext_signals": {
        "strategy_ids": ["beta", "alpha"], "min_hold_bars": 1, "confirm_n": 1}}
    return ExternalSignalLogic(ft_config, live=False,
                               env={"EXT_SIG_MONGO_URI": uri, "EXT_SIG_DB": db})


def test_backtest_decisions_are_the_same_from_the_chunked_frame(mongo_uri, mongo_db):
    """In-process backtest: the source serves the chunked read's frame and slices instead
    of its own; every decided column of every pair is identical, and they trade."""
    mongo_db["crypto_signals"].insert_many(random_docs(900, seed=11, bad=0.15))
    candles = {p: constructed_candles(p, "2026-01-01", N_BARS) for p in PAIRS}
    first, last = candles[PAIRS[0]]["date"].iloc[[0, -1]]

    base = make_logic(mongo_uri, mongo_db.name)
    ours = make_logic(mongo_uri, mongo_db.name)
    ours.source.load_range(PAIRS, first, last)
    src = ours.source
    lo, hi = src.window
    flt = {"strategy_id": {"$in": list(src.cfg.strategy_ids)}, "pair": {"$in": sorted(PAIRS)},
           "timeframe": "1h", "ts": {"$gte": lo, "$lte": hi}}
    read = read_signal_range(mongo_db["crypto_signals"], flt, PROJECTION, pairs=PAIRS,
                             batch_size=13, max_time_ms=src.cfg.backtest_timeout_ms)
    pd.testing.assert_frame_equal(read.frame, src._frame)
    src._frame, src._slices = read.frame, read.slices  # what load_range will keep

    entries = exits = 0
    for pair in PAIRS:
        a = apply_exit(apply_entry(base.populate(candles[pair].copy(), pair, PAIRS)))
        b = apply_exit(apply_entry(ours.populate(candles[pair].copy(), pair, PAIRS)))
        assert {"enter_long", "exit_long", "enter_tag", "ext_weight"} <= set(a.columns)
        pd.testing.assert_frame_equal(b, a)
        entries += int(a["enter_long"].sum())
        exits += int(a["exit_long"].sum())
        direct = match_signals(candles[pair], read.frame.iloc[slice(*read.slices[pair])],
                               ours.rules)
        assert direct.counts == match_signals(candles[pair], base.source.signals_for(pair),
                                              base.rules).counts
    assert entries > 0 and exits > 0
    assert ours.source.queries == 1  # served from the injected frame, never re-read
