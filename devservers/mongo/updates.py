"""MongoDB update-operator semantics for the local dev server.

Applies ``$set``, ``$unset``, ``$inc``, ``$mul``, ``$min``, ``$max``,
``$setOnInsert``, ``$rename``, ``$currentDate``, ``$push``, ``$addToSet``,
``$pull`` and ``$pop`` (dotted paths included) to plain dict documents, builds
the seed document of an upsert from its filter, and raises
:class:`~devservers.mongo.errors.MongoError` with mongod's codes on bad input.
Whether a write really changed a document is decided by comparing BSON bytes,
as mongod does for ``nModified``. Not a query engine: filters are matched
elsewhere.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bson import Decimal128, Int64, Timestamp

from devservers.mongo.errors import MongoError

_OPERATORS = {
    "$set", "$unset", "$inc", "$mul", "$min", "$max", "$setOnInsert", "$rename",
    "$currentDate", "$push", "$addToSet", "$pull", "$pop",
}
_MISSING = object()


def is_operator_update(update: Mapping) -> bool:
    """True for ``{'$set': ...}``-style updates, False for replacement documents."""
    return bool(update) and next(iter(update)).startswith("$")


def validate_update(update: Any) -> None:
    """Reject malformed operator updates the way mongod does."""
    if isinstance(update, list):
        raise MongoError(9, "FailedToParse", "pipeline-style updates are not supported by "
                         "the local dev server")
    if not isinstance(update, Mapping):
        raise MongoError(14, "TypeMismatch", "Update argument must be an object")
    if not is_operator_update(update):
        for key in update:
            if key.startswith("$"):
                raise MongoError(52, "DollarPrefixedFieldName",
                                 f"The dollar ($) prefixed field '{key}' in '{key}' is not "
                                 "allowed in the context of an update's replacement document.")
        return
    if len(update) == 1:
        spec = update.get("$set")
        if type(spec) is dict and _flat_spec(spec):
            return
    if len(update) > 1 and "$rename" not in update and all(
            op in _OPERATORS and type(spec) is dict and "." not in "".join(spec)
            for op, spec in update.items()):
        taken: set[str] = set()  # top-level paths only: a conflict is the same path twice
        for spec in update.values():
            for p in spec:
                if p in taken:
                    raise MongoError(40, "ConflictingUpdateOperators",
                                     f"Updating the path '{p}' would create a conflict at "
                                     f"'{p}'")
                taken.add(p)
        return
    #: every path seen so far, by order; and each proper prefix of a seen path -> the first
    #: seen path under it. A path conflicts with an equal one, one of its prefixes, or one
    #: under it; the earliest seen is reported, as a pairwise scan would (linear, not
    #: quadratic: an insert-only upsert $setOnInsert's every field of a document).
    seen: dict[str, int] = {}
    under: dict[str, str] = {}
    single = len(update) == 1
    for op, spec in update.items():
        if op not in _OPERATORS:
            raise MongoError(9, "FailedToParse", f"Unknown modifier: {op}. Expected a valid "
                             "update modifier or pipeline-style update specified as an array")
        if not isinstance(spec, Mapping):
            raise MongoError(9, "FailedToParse", f"Modifiers operate on fields but we found "
                             f"type {type(spec).__name__} instead. For example: "
                             "{$mod: {<field>: ...}} not {$set: ...}")
        if single and op != "$rename" and not any("." in p for p in spec):
            continue
        for path in spec:
            paths = [path, spec[path]] if op == "$rename" else [path]
            for p in paths:
                if not isinstance(p, str):
                    continue
                prefixes = _prefixes(p)
                hits = [q for q in (p, *prefixes) if q in seen]
                if p in under:
                    hits.append(under[p])
                if hits:
                    other = min(hits, key=seen.__getitem__)
                    raise MongoError(40, "ConflictingUpdateOperators",
                                     f"Updating the path '{p}' would create a conflict at "
                                     f"'{other}'")
                seen[p] = len(seen)
                for q in prefixes:
                    under.setdefault(q, p)


def _prefixes(path: str) -> list[str]:
    """``a.b.c`` -> ``['a', 'a.b']``."""
    if "." not in path:
        return []
    parts = path.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def _parent(doc: dict, path: str, create: bool) -> tuple[Any, str]:
    parts = path.split(".")
    current: Any = doc
    for part in parts[:-1]:
        if isinstance(current, list) and part.isdigit():
            index = int(part)
            while create and len(current) <= index:
                current.append(None)
            if index >= len(current):
                return None, parts[-1]
            if current[index] is None and create:
                current[index] = {}
            current = current[index]
        elif isinstance(current, dict):
            if part not in current:
                if not create:
                    return None, parts[-1]
                current[part] = {}
            current = current[part]
        else:
            if create:
                raise MongoError(28, "PathNotViable", f"Cannot create field '{part}' in "
                                 f"element {{{part}: {current!r}}}")
            return None, parts[-1]
    return current, parts[-1]


def _get(doc: dict, path: str) -> Any:
    parent, leaf = _parent(doc, path, create=False)
    if isinstance(parent, dict):
        return parent.get(leaf, _MISSING)
    if isinstance(parent, list) and leaf.isdigit() and int(leaf) < len(parent):
        return parent[int(leaf)]
    return _MISSING


def _set(doc: dict, path: str, value: Any) -> None:
    parent, leaf = _parent(doc, path, create=True)
    if isinstance(parent, list) and leaf.isdigit():
        index = int(leaf)
        while len(parent) <= index:
            parent.append(None)
        parent[index] = value
    elif isinstance(parent, dict):
        parent[leaf] = value
    else:
        raise MongoError(28, "PathNotViable", f"Cannot create field '{leaf}' in element "
                         f"{parent!r}")


def _unset(doc: dict, path: str) -> None:
    parent, leaf = _parent(doc, path, create=False)
    if isinstance(parent, dict):
        parent.pop(leaf, None)
    elif isinstance(parent, list) and leaf.isdigit() and int(leaf) < len(parent):
        parent[int(leaf)] = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Int64 | Decimal128) and not isinstance(value, bool)


def _arith(op: str, doc: dict, path: str, operand: Any) -> None:
    name = "$inc" if op == "$inc" else "$mul"
    if not _is_number(operand):
        raise MongoError(14, "TypeMismatch", f"Cannot {name[1:]}rement with non-numeric "
                         f"argument: {{{path}: {operand!r}}}" if op == "$inc" else
                         f"Cannot multiply with non-numeric argument: {{{path}: {operand!r}}}")
    current = _get(doc, path)
    if current is _MISSING:
        _set(doc, path, operand if op == "$inc" else type(operand)(0))
        return
    if not _is_number(current):
        raise MongoError(14, "TypeMismatch", f"Cannot apply {name} to a value of non-numeric "
                         f"type. {{_id: {doc.get('_id')!r}}} has the field '{path.split('.')[-1]}'"
                         f" of non-numeric type {type(current).__name__}")
    _set(doc, path, current + operand if op == "$inc" else current * operand)


def _compare_for_minmax(a: Any, b: Any) -> int:
    from devservers.mongo.keys import encode_value

    ka, kb = encode_value(a), encode_value(b)
    return (ka > kb) - (ka < kb)


def _push(doc: dict, path: str, spec: Any, add_to_set: bool) -> None:
    current = _get(doc, path)
    if current is _MISSING:
        current = []
        _set(doc, path, current)
    if not isinstance(current, list):
        op = "$addToSet" if add_to_set else "$push"
        raise MongoError(2, "BadValue", f"The field '{path}' must be an array but is of type "
                         f"{type(current).__name__} in document {{_id: {doc.get('_id')!r}}}"
                         if op == "$push" else f"Cannot apply $addToSet to non-array field. "
                         f"Field named '{path}' has non-array type {type(current).__name__}")
    values = spec["$each"] if isinstance(spec, Mapping) and "$each" in spec else [spec]
    for value in values:
        if add_to_set and value in current:
            continue
        current.append(_copy(value))
    if isinstance(spec, Mapping) and "$slice" in spec and not add_to_set:
        n = int(spec["$slice"])
        current[:] = current[-n:] if n < 0 else current[:n]


def _pull(doc: dict, path: str, condition: Any) -> None:
    current = _get(doc, path)
    if not isinstance(current, list):
        return
    from mongomock_ng.filtering import filter_applies

    def matches(item: Any) -> bool:
        if isinstance(condition, Mapping) and condition and all(
            str(k).startswith("$") for k in condition
        ):
            return filter_applies({"x": condition}, {"x": item})
        if isinstance(condition, Mapping) and isinstance(item, Mapping):
            return filter_applies(condition, item)
        return item == condition

    current[:] = [item for item in current if not matches(item)]


def _flat_spec(spec: Mapping) -> bool:
    """Top-level field names only (no dots, no _id): plain dict assignment is exact."""
    return "_id" not in spec and "." not in "".join(spec)


_SCALARS = frozenset({str, int, float, bool, type(None), datetime, Int64})


def _copy(value: Any) -> Any:
    """Copy only what can be shared mutably (sub-documents, arrays)."""
    return value if type(value) in _SCALARS else copy.deepcopy(value)


def is_noop_set(doc: Mapping, update: Mapping) -> bool:
    """True when ``update`` only ``$set``s top-level scalars to the values ``doc`` already has.

    Lets the idempotent re-export path skip re-encoding; anything else returns False and is
    decided by comparing BSON bytes.
    """
    for op, spec in update.items():
        if op == "$setOnInsert":
            continue
        if op != "$set" or type(spec) is not dict or not _flat_spec(spec):
            return False
        for path, value in spec.items():
            t = type(value)
            if t not in _SCALARS or (t is float and value != value):
                return False
            current = doc.get(path, _MISSING)
            if type(current) is not t or current != value:
                return False
    return True


def apply_update(doc: dict, update: Mapping, *, is_insert: bool, in_place: bool = False) -> dict:
    """``doc`` with ``update`` applied (replacement or operators).

    ``in_place=True`` lets the caller hand over a document it owns (freshly decoded), saving
    a deep copy on the hot upsert path.
    """
    if not is_operator_update(update):
        new_doc: dict = {"_id": doc["_id"]} if "_id" in doc else {}
        for key, value in update.items():
            if key == "_id":
                continue
            new_doc[key] = value
        if "_id" in update and "_id" in doc and update["_id"] != doc["_id"]:
            raise MongoError(66, "ImmutableField", "After applying the update, the (immutable) "
                             "field '_id' was found to have been altered to "
                             f"_id: {update['_id']!r}")
        if "_id" in update and "_id" not in doc:
            new_doc = {"_id": update["_id"], **new_doc}
        return new_doc
    new_doc = doc if in_place else copy.deepcopy(doc)
    old_id = doc.get("_id", _MISSING)
    for op, spec in update.items():
        if (op == "$set" or (op == "$setOnInsert" and is_insert)) and _flat_spec(spec):
            for path, value in spec.items():
                new_doc[path] = _copy(value)
            continue
        for path, value in spec.items():
            if path == "_id" or path.startswith("_id."):
                if op in ("$set", "$setOnInsert") and old_id is not _MISSING and value == old_id:
                    continue
                if op == "$setOnInsert" and not is_insert:
                    continue
                if not (is_insert and op in ("$set", "$setOnInsert") and old_id is _MISSING):
                    raise MongoError(66, "ImmutableField", f"Performing an update on the path "
                                     f"'{path}' would modify the immutable field '_id'")
            if op == "$set":
                _set(new_doc, path, _copy(value))
            elif op == "$setOnInsert":
                if is_insert:
                    _set(new_doc, path, _copy(value))
            elif op == "$unset":
                _unset(new_doc, path)
            elif op in ("$inc", "$mul"):
                _arith(op, new_doc, path, value)
            elif op in ("$min", "$max"):
                current = _get(new_doc, path)
                if current is _MISSING:
                    _set(new_doc, path, _copy(value))
                else:
                    order = _compare_for_minmax(value, current)
                    if (op == "$min" and order < 0) or (op == "$max" and order > 0):
                        _set(new_doc, path, _copy(value))
            elif op == "$rename":
                current = _get(new_doc, path)
                if current is not _MISSING:
                    _unset(new_doc, path)
                    _set(new_doc, value, current)
            elif op == "$currentDate":
                now = datetime.now(UTC).replace(tzinfo=None)
                wants_ts = isinstance(value, Mapping) and value.get("$type") == "timestamp"
                _set(new_doc, path, Timestamp(int(now.timestamp()), 1) if wants_ts else now)
            elif op in ("$push", "$addToSet"):
                _push(new_doc, path, value, add_to_set=op == "$addToSet")
            elif op == "$pull":
                _pull(new_doc, path, value)
            elif op == "$pop":
                current = _get(new_doc, path)
                if isinstance(current, list) and current:
                    current.pop(0 if value == -1 else -1)
    if old_id is not _MISSING and new_doc.get("_id", _MISSING) != old_id:
        raise MongoError(66, "ImmutableField", "Performing an update on the path '_id' would "
                         "modify the immutable field '_id'")
    return new_doc


def upsert_seed(query: Mapping) -> dict:
    """The document an upsert starts from: the filter's equality fields."""
    for k, v in query.items():
        if k[:1] == "$" or "." in k or type(v) not in _SCALARS:
            break
    else:
        return dict(query)
    seed: dict = {}

    def take(q: Mapping) -> None:
        for key, value in q.items():
            if key == "$and" and isinstance(value, list):
                for sub in value:
                    take(sub)
            elif key.startswith("$"):
                continue
            elif isinstance(value, Mapping) and value and next(iter(value)).startswith("$"):
                if "$eq" in value:
                    _set(seed, key, _copy(value["$eq"]))
                elif "$in" in value and isinstance(value["$in"], list) and len(value["$in"]) == 1:
                    _set(seed, key, _copy(value["$in"][0]))
            else:
                _set(seed, key, _copy(value))

    take(query)
    return seed
