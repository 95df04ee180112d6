"""The index key encoding orders bytes exactly as MongoDB orders values.

Pure unit tests (no server): within a type the byte order equals the value
order, across types the BSON type brackets hold, equal numbers of different
types share a key, and compound keys keep prefix order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from devservers.mongo import keys

finite = st.floats(allow_nan=False, allow_infinity=True)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.one_of(finite, int64), st.one_of(finite, int64))
def test_numbers_order_by_value_across_int_and_float(a, b):
    ka, kb = keys.encode_value(a), keys.encode_value(b)
    if a < b:
        assert ka < kb
    elif a > b:
        assert ka > kb
    else:
        assert ka == kb


@given(st.text(), st.text())
def test_strings_order_by_utf8_bytes(a, b):
    ba, bb = a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    ka, kb = keys.encode_value(a), keys.encode_value(b)
    assert (ka < kb) == (ba < bb) and (ka == kb) == (ba == bb)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
       st.integers(min_value=-10**12, max_value=10**12))
def test_datetimes_order_by_millisecond(base, delta_ms):
    other = base + timedelta(milliseconds=delta_ms)
    assert (keys.encode_value(base) < keys.encode_value(other)) == (delta_ms > 0)


def test_type_brackets_follow_mongodb_comparison_order():
    ordered = [None, -5, 3.5, "", "a", {"a": 1}, [1], b"\x00", ObjectId(), False, True,
               datetime(1970, 1, 1, tzinfo=UTC)]
    encoded = [keys.encode_value(v) for v in ordered]
    assert encoded == sorted(encoded)


def test_missing_indexes_like_null_and_nan_sorts_below_numbers():
    assert keys.encode_value(keys.MISSING) == keys.encode_value(None)
    assert keys.encode_value(float("nan")) < keys.encode_value(float("-inf"))


@given(st.tuples(st.text(), int64), st.tuples(st.text(), int64))
def test_compound_keys_order_field_by_field(a, b):
    da, db = {"x": a[0], "y": a[1]}, {"x": b[0], "y": b[1]}
    ka, kb = keys.encode_key(da, ["x", "y"]), keys.encode_key(db, ["x", "y"])
    ta = (a[0].encode("utf-8", "surrogatepass"), a[1])
    tb = (b[0].encode("utf-8", "surrogatepass"), b[1])
    assert (ka < kb) == (ta < tb)
    prefix = keys.encode_value(a[0])
    assert ka.startswith(prefix) and ka < keys.prefix_upper_bound(prefix)
