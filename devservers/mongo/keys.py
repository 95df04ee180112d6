"""Order-preserving byte encoding of BSON values for SQLite index columns.

Every MongoDB index of the local dev server is stored as one BLOB column whose
bytes compare (``memcmp``, SQLite's BLOB order) exactly as MongoDB orders the
values: first by BSON type bracket (MinKey < null < numbers < strings < objects
< arrays < binary < ObjectId < bool < date < timestamp < regex < MaxKey), then
by value. A datetime and an int therefore never collide, ``1 == 1.0`` does, and
a range on one field becomes a byte range. Compound keys are the concatenation
of self-delimiting components, so a key prefix is a byte prefix. Not a general
BSON serializer: keys are write-only (never decoded back).
"""

from __future__ import annotations

import functools
import math
import re
import struct
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from bson import Binary, Code, Decimal128, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.raw_bson import RawBSONDocument

MISSING = object()
"""Marker for a field absent from a document (indexed like null, as mongod does)."""

TAG_MINKEY = 0x01
TAG_NULL = 0x05
TAG_NAN = 0x0F
TAG_NUMBER = 0x10
TAG_STRING = 0x14
TAG_OBJECT = 0x18
TAG_ARRAY = 0x1C
TAG_BINARY = 0x20
TAG_OBJECTID = 0x24
TAG_BOOL = 0x28
TAG_DATE = 0x2C
TAG_TIMESTAMP = 0x30
TAG_REGEX = 0x34
TAG_MAXKEY = 0x7E
END = b"\x00"

_PACK_D = struct.Struct(">d").pack
_PACK_Q = struct.Struct(">Q").pack
_EPOCH = datetime(1970, 1, 1)
_EPOCH_TZ = datetime(1970, 1, 1, tzinfo=timezone.utc)  # noqa: UP017


def _ordered_double(value: float) -> bytes:
    if value == 0.0:
        value = 0.0  # -0.0 == 0.0 in MongoDB
    bits = struct.unpack(">Q", _PACK_D(value))[0]
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits & 0x8000000000000000 else bits | 0x8000000000000000
    return _PACK_Q(bits)


def _ordered_int64(value: int) -> bytes:
    return _PACK_Q((value + (1 << 63)) & 0xFFFFFFFFFFFFFFFF)


def _string(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass").replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def _datetime_millis(value: datetime) -> int:
    delta = value - _EPOCH if value.tzinfo is None else value - _EPOCH_TZ
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _encode_big_int(value: int) -> bytes:
    """Numbers share one bracket: the double, then the exact remainder for huge ints."""
    as_float = float(value) if abs(value) < (1 << 1023) else math.copysign(math.inf, value)
    exact_tail = value - int(as_float) if math.isfinite(as_float) else 0
    return bytes((TAG_NUMBER,)) + _ordered_double(as_float) + _ordered_int64(exact_tail)


def type_tag(value: Any) -> int:
    """The type-bracket byte of a value (used for range bounds)."""
    return encode_value(value)[0]


_NUMBER_TAG = bytes((TAG_NUMBER,))
_STRING_TAG = bytes((TAG_STRING,))
_DATE_TAG = bytes((TAG_DATE,))
_ZERO_TAIL = _ordered_int64(0)


@functools.lru_cache(maxsize=65536)
def _fast_str(value: str) -> bytes:
    return _STRING_TAG + _string(value)


def _fast_date(value: datetime) -> bytes:
    return _DATE_TAG + _ordered_int64(_datetime_millis(value))


def _fast_float(value: float) -> bytes:
    if value != value:
        return bytes((TAG_NAN,))
    return _NUMBER_TAG + _ordered_double(value) + _ZERO_TAIL


def _fast_int(value: int) -> bytes:
    if -(1 << 53) <= value <= (1 << 53):
        return _NUMBER_TAG + _ordered_double(float(value)) + _ZERO_TAIL
    return _encode_big_int(value)


def _fast_object_id(value: ObjectId) -> bytes:
    return _OBJECTID_TAG + value.binary


_OBJECTID_TAG = bytes((TAG_OBJECTID,))
_FAST = {str: _fast_str, datetime: _fast_date, float: _fast_float, int: _fast_int,
         ObjectId: _fast_object_id}
FAST_ENCODERS = _FAST
"""Exact-type encoders for the common key types (hot paths skip the isinstance chain)."""


def encode_value(value: Any) -> bytes:
    """Encode one value so that byte order equals MongoDB's comparison order."""
    fast = _FAST.get(type(value))
    if fast is not None:
        return fast(value)
    if value is MISSING or value is None:
        return bytes((TAG_NULL,))
    if isinstance(value, bool):
        return bytes((TAG_BOOL, 1 if value else 0))
    if isinstance(value, int):  # includes Int64
        return _encode_big_int(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return bytes((TAG_NAN,))
        return bytes((TAG_NUMBER,)) + _ordered_double(value) + _ordered_int64(0)
    if isinstance(value, str):
        return bytes((TAG_STRING,)) + _string(value)
    if isinstance(value, datetime):
        return bytes((TAG_DATE,)) + _ordered_int64(_datetime_millis(value))
    if isinstance(value, ObjectId):
        return bytes((TAG_OBJECTID,)) + value.binary
    if isinstance(value, RawBSONDocument):
        return encode_value(dict(value.items()))
    if isinstance(value, Mapping):
        parts = [bytes((TAG_OBJECT,))]
        for key, item in value.items():
            parts.append(_string(str(key)))
            parts.append(encode_value(item))
        parts.append(END)
        return b"".join(parts)
    if isinstance(value, list | tuple):
        return bytes((TAG_ARRAY,)) + b"".join(encode_value(v) for v in value) + END
    if isinstance(value, Decimal128 | Decimal):
        number = float(value.to_decimal() if isinstance(value, Decimal128) else value)
        return encode_value(number)
    if isinstance(value, bytes | Binary):
        subtype = value.subtype if isinstance(value, Binary) else 0
        return bytes((TAG_BINARY,)) + struct.pack(">IB", len(value), subtype) + bytes(value)
    if isinstance(value, Timestamp):
        return bytes((TAG_TIMESTAMP,)) + struct.pack(">II", value.time, value.inc)
    if isinstance(value, Regex | re.Pattern):
        pattern = value.pattern if isinstance(value.pattern, str) else value.pattern.decode()
        return bytes((TAG_REGEX,)) + _string(pattern)
    if isinstance(value, MinKey):
        return bytes((TAG_MINKEY,))
    if isinstance(value, MaxKey):
        return bytes((TAG_MAXKEY,))
    if isinstance(value, Code):
        return bytes((TAG_STRING,)) + _string(str(value))
    return bytes((TAG_STRING,)) + _string(repr(value))


def get_path(doc: Mapping, path: str) -> Any:
    """Value at a dotted path (no array traversal), or MISSING."""
    if "." not in path:
        return doc.get(path, MISSING)
    current: Any = doc
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def is_multikey_value(doc: Mapping, path: str) -> bool:
    """True when an array sits anywhere along ``path`` (the index becomes multikey)."""
    current: Any = doc
    for part in path.split("."):
        if isinstance(current, list):
            return True
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return isinstance(current, list)


def encode_key(doc: Mapping, fields: list[str]) -> bytes:
    """Concatenated key of ``doc`` for an index on ``fields`` (ascending byte order)."""
    if len(fields) == 1:
        return encode_value(get_path(doc, fields[0]))
    return b"".join([encode_value(get_path(doc, f)) for f in fields])


def prefix_upper_bound(prefix: bytes) -> bytes:
    """Smallest byte string greater than every key that starts with ``prefix``."""
    return prefix + b"\xff"


def bracket_upper_bound(prefix: bytes, tag: int) -> bytes:
    """Upper bound (exclusive) of the type bracket ``tag`` after ``prefix``."""
    return prefix + bytes((tag + 1,))
