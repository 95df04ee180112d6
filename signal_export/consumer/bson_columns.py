"""Flat BSON documents of a raw batch -> one typed numpy column per field, no dict per document.

``bson.decode_all`` builds a dict, a str per string and a datetime per date for
every document (~1 KB and a few microseconds each); a backtest reads millions.
This parser walks the element headers of all documents of a batch at once
(numpy gathers through unaligned views of the buffer: element k of every
document per step, so the Python loop is over fields, not documents), and
reads each wanted field into a column: doubles, int32/int64 and dates as
numbers, strings as codes into the batch's distinct values.

It only *reads*. Documents it cannot read exactly as pymongo would (a field
name it was not asked for, a nested document, an unsupported type, a repeated
name, a string longer than :data:`MAX_STRING` bytes or not UTF-8, a date
outside Python's datetime range, a truncated document) are marked not
``plain``; the caller decodes those few with ``bson`` and treats them as usual.
Validation of the values is the caller's business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

#: Longest string (bytes) read into codes; longer ones make the document not plain.
MAX_STRING = 256
_PAD = 16 + MAX_STRING  # zero bytes appended so every gather stays inside the buffer
_STEPS = 64  # elements per document at most (the reader asks for ~10)

DOUBLE, STRING, OBJECT_ID, BOOL, DATE, NULL, INT32, INT64 = 0x01, 0x02, 0x07, 0x08, 0x09, 0x0A, \
    0x10, 0x12
#: fixed value sizes by BSON type; -1: an int32 length prefix (see _EXTRA); -2: not read
#: (regular expression, DBPointer: the document is left to ``bson``)
_SIZE = np.full(256, -2, dtype=np.int64)
_SIZE[[DOUBLE, OBJECT_ID, BOOL, DATE, NULL, INT32, 0x11, INT64, 0x13, 0x06, 0x7F, 0xFF]] = [
    8, 12, 1, 8, 0, 4, 8, 8, 16, 0, 0, 0]
#: value size = int32 prefix + this: strings, JavaScript code, symbols count their prefix
#: apart; documents, arrays and code with scope include it; binary adds its subtype byte
_EXTRA = np.zeros(256, dtype=np.int64)
for _t, _extra in ((STRING, 4), (0x0D, 4), (0x0E, 4), (0x03, 0), (0x04, 0), (0x0F, 0),
                   (0x05, 5)):
    _SIZE[_t], _EXTRA[_t] = -1, _extra
_MS_MIN = (datetime.min - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
_MS_MAX = (datetime.max - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
_LEN = struct.Struct("<i").unpack_from


@dataclass
class BatchColumns:
    """One raw batch, column-wise. Rows are documents in batch order."""

    offsets: np.ndarray  # int64 start of each document in the batch
    lengths: np.ndarray  # int64 byte length of each document
    plain: np.ndarray  # bool: every element read exactly (see the module doc)
    kind: dict[str, np.ndarray] = field(default_factory=dict)  # BSON type byte, 0 = absent
    number: dict[str, np.ndarray] = field(default_factory=dict)  # float64 / int64 values
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # int32 into ``strings``
    strings: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets)


def _at(buf: bytes, dtype: str) -> np.ndarray:
    """A value of ``dtype`` starting at every byte of ``buf`` (unaligned, no copy)."""
    size = np.dtype(dtype).itemsize
    return np.ndarray(shape=(len(buf) - size + 1,), dtype=dtype, buffer=buf, strides=(1,))


def document_offsets(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each document; a batch is documents back to back."""
    starts: list[int] = []
    pos, end = 0, len(raw)
    while pos < end:  # one int read per document: the next start depends on this length
        starts.append(pos)
        size = _LEN(raw, pos)[0]
        if size < 5:
            raise ValueError(f"corrupt BSON batch: document of {size} bytes at byte {pos}")
        pos += size
    if pos != end:
        raise ValueError(f"corrupt BSON batch: last document ends at {pos}, batch at {end}")
    offsets = np.array(starts, dtype=np.int64)
    return offsets, np.diff(np.append(offsets, end))


def _name_end(u8: np.ndarray, start: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Position of the NUL ending each name (rare: only names not asked for); past the
    document's end when there is none."""
    out = np.array(ends, dtype=np.int64)
    for i, (a, b) in enumerate(zip(start.tolist(), ends.tolist(), strict=True)):
        nul = u8[a:b].tobytes().find(b"\0")
        if nul >= 0:
            out[i] = a + nul
    return out


def _name_keys(names: list[str]) -> list[tuple[np.uint64, np.uint64, np.uint64, np.uint64]]:
    """(word0, mask0, word1, mask1) of each name + NUL, as little-endian uint64 pairs."""
    out = []
    for name in names:
        b = name.encode() + b"\0"
        if len(b) > 16:
            raise ValueError(f"field name {name!r} longer than 15 bytes")
        padded = b.ljust(16, b"\0")
        mask = (b"\xff" * len(b)).ljust(16, b"\0")
        w = np.frombuffer(padded, dtype="<u8")
        m = np.frombuffer(mask, dtype="<u8")
        out.append((w[0], m[0], w[1], m[1]))
    return out


def parse_batch(raw: bytes, fields: tuple[str, ...]) -> BatchColumns:
    """``fields`` of every document of ``raw`` (``_id`` is skipped whatever it holds).

    Per field: ``kind`` (BSON type byte, 0 absent), ``number`` (doubles as float64;
    dates, int32 and int64 as int64 - dates in ms since the epoch), ``codes`` and
    ``strings`` (string values). Values of other types stay unread (the kind says so).
    """
    offsets, lengths = document_offsets(raw)
    n = len(offsets)
    buf = raw + b"\0" * _PAD
    u8 = np.frombuffer(buf, dtype=np.uint8)
    u64, i32, i64 = _at(buf, "<u8"), _at(buf, "<i4"), _at(buf, "<i8")
    names = ("_id", *fields)
    keys = _name_keys(list(names))
    kind = np.zeros((len(names), n), dtype=np.uint8)
    vpos = np.zeros((len(names), n), dtype=np.int64)
    plain = np.ones(n, dtype=bool)
    name_len = np.array([len(s.encode()) + 1 for s in names], dtype=np.int64)
    ends = offsets + lengths
    rows = np.arange(n)
    pos = offsets + 4
    for _ in range(_STEPS):
        t = u8[pos]
        done = t == 0
        plain[rows[done]] &= pos[done] + 1 == ends[rows[done]]
        keep = ~done
        rows, pos, t = rows[keep], pos[keep], t[keep]
        if not rows.size:
            break
        w0, w1 = u64[pos + 1], u64[pos + 9]
        fid = np.full(rows.size, -1, dtype=np.int64)
        for j, (a, ma, b, mb) in enumerate(keys):
            fid[((w0 & ma) == a) & ((w1 & mb) == b)] = j
        vs = pos + 1 + name_len[np.maximum(fid, 0)]
        size = _SIZE[t]
        var = size == -1
        size[var] = i32[vs[var]].astype(np.int64) + _EXTRA[t[var]]
        bad = (size < 0) | (vs + size > ends[rows])
        bad[fid >= 0] |= kind[fid[fid >= 0], rows[fid >= 0]] != 0  # repeated name
        bad |= var & (size < 5)
        unknown = fid < 0  # a field not asked for: skipped (its name ends at the first NUL)
        if unknown.any():
            vs[unknown] = _name_end(u8, pos[unknown] + 1, ends[rows[unknown]]) + 1
            size[unknown] = _SIZE[t[unknown]]
            var_u = unknown & var
            size[var_u] = i32[vs[var_u]].astype(np.int64) + _EXTRA[t[var_u]]
            bad[unknown] = (size[unknown] < 0) | (vs[unknown] + size[unknown] > ends[
                rows[unknown]]) | (var_u[unknown] & (size[unknown] < 5))
        plain[rows[bad]] = False
        ok = ~bad
        rows, pos, t, fid, vs, size = rows[ok], pos[ok], t[ok], fid[ok], vs[ok], size[ok]
        known = fid >= 0
        kind[fid[known], rows[known]] = t[known]
        vpos[fid[known], rows[known]] = vs[known]
        pos = vs + size
    else:
        plain[rows] = False  # more elements than any document of ours has
    out = BatchColumns(offsets, lengths, plain)
    for j, name in enumerate(fields, start=1):
        k, p = kind[j], vpos[j]
        out.kind[name] = k
        number = np.zeros(n, dtype=np.int64)
        for bson_type, view in ((DATE, i64), (INT64, i64), (INT32, i32)):
            sel = k == bson_type
            number[sel] = view[p[sel]]
        dates = k == DATE
        plain &= ~dates | ((number >= _MS_MIN) & (number <= _MS_MAX))
        out.number[name] = number
        doubles = k == DOUBLE
        if doubles.any():
            d = np.zeros(n, dtype=np.float64)
            d[doubles] = _at(buf, "<f8")[p[doubles]]
            out.number[name + ":double"] = d
        _strings(out, name, buf, i32, p, k == STRING, plain)
    return out


def _strings(out: BatchColumns, name: str, buf: bytes, i32: np.ndarray, vpos: np.ndarray,
             sel: np.ndarray, plain: np.ndarray) -> None:
    """Codes of the string values of ``name``: distinct byte strings found by sorting
    fixed-width keys (length + bytes, zero-padded), each decoded once."""
    codes = np.full(len(sel), -1, dtype=np.int32)
    out.codes[name], out.strings[name] = codes, []
    rows = np.flatnonzero(sel)
    if not rows.size:
        return
    start = vpos[rows] + 4
    length = i32[vpos[rows]].astype(np.int64) - 1  # without the trailing NUL
    long_ = (length > MAX_STRING) | (np.frombuffer(buf, dtype=np.uint8)[start + length] != 0)
    plain[rows[long_]] = False
    rows, start, length = rows[~long_], start[~long_], length[~long_]
    if not rows.size:
        return
    words = int(-(-int(length.max()) // 8)) or 1
    u64 = _at(buf, "<u8")
    key = np.zeros((rows.size, words + 1), dtype=np.uint64)
    key[:, 0] = length.astype(np.uint64)
    for w in range(words):
        left = np.clip(length - 8 * w, 0, 8)
        mask = np.where(left >= 8, np.uint64(0xFFFFFFFFFFFFFFFF),
                        (np.uint64(1) << (left * 8).astype(np.uint64)) - np.uint64(1))
        key[:, w + 1] = u64[start + 8 * w] & mask
    uniq, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    values: list[str] = []
    good = np.ones(len(uniq), dtype=bool)
    for u, i in enumerate(first.tolist()):
        s = int(start[i])
        try:
            values.append(buf[s:s + int(length[i])].decode("utf-8"))
        except UnicodeDecodeError:
            values.append("")
            good[u] = False
    inverse = inverse.reshape(-1)
    plain[rows[~good[inverse]]] = False
    codes[rows] = inverse.astype(np.int32)
    out.strings[name] = values
