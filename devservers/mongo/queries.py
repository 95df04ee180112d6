"""Read-side semantics of the local MongoDB dev server: match, sort, project.

Pure functions over decoded documents. Matching delegates to mongomock's
``filter_applies`` (well tested MongoDB query semantics); sorting and
projection follow mongod's rules for the cases the project uses (dotted paths,
mixed directions, arrays sorted by their min/max element, inclusion or
exclusion projections with ``_id`` handling). Not an index planner: which rows
to look at is decided in :mod:`storage`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mongomock_ng.filtering import filter_applies

from devservers.mongo import keys, safety
from devservers.mongo.errors import MongoError

# mongomock evaluates $where with Python eval: make that unreachable in this process (the
# commands refuse server-side code before it gets here; this is the second line of defence).
safety.disable_mongomock_eval()


def matches(query: Mapping, doc: Mapping) -> bool:
    """True when ``doc`` satisfies the MongoDB filter ``query``."""
    if not query:
        return True
    try:
        return filter_applies(query, doc)
    except MongoError:
        raise
    except NotImplementedError as exc:
        raise MongoError(2, "BadValue", f"unsupported query operator: {exc}") from None
    except Exception as exc:  # mongomock raises OperationFailure etc. for bad filters
        code = getattr(exc, "code", None) or 2
        raise MongoError(int(code), "BadValue", str(exc)) from None


def parse_sort(sort: Any) -> list[tuple[str, int]]:
    """Sort spec (document) -> [(field, 1|-1)], rejecting bad directions like mongod."""
    if not sort:
        return []
    out = []
    for field, direction in dict(sort).items():
        if isinstance(direction, Mapping):  # {$meta: ...}: not supported, keep order stable
            continue
        if direction not in (1, -1, 1.0, -1.0):
            raise MongoError(15974, "Location15974", "Illegal key in $sort specification: "
                             f"{field}: {direction}")
        out.append((field, int(direction)))
    return out


def _sort_value(doc: Mapping, field: str, direction: int) -> bytes:
    value = keys.get_path(doc, field)
    if value is keys.MISSING and "." in field:
        value = _array_path_values(doc, field)
    if isinstance(value, list):
        if not value:
            return keys.encode_value([])
        encoded = [keys.encode_value(v) for v in value]
        return min(encoded) if direction == 1 else max(encoded)
    return keys.encode_value(value)


def _array_path_values(doc: Any, field: str) -> Any:
    current: list[Any] = [doc]
    for part in field.split("."):
        nxt: list[Any] = []
        for item in current:
            items = item if isinstance(item, list) else [item]
            for sub in items:
                if isinstance(sub, Mapping) and part in sub:
                    nxt.append(sub[part])
        current = nxt
    if not current:
        return keys.MISSING
    return current if len(current) > 1 else current[0]


def sort_docs(docs: list, sort: list[tuple[str, int]], decode=None) -> list:
    """Stable multi-key sort in MongoDB order (type brackets, then value)."""
    if not sort:
        return docs
    items = list(docs)
    for field, direction in reversed(sort):
        items.sort(
            key=lambda d, f=field, di=direction: _sort_value(decode(d) if decode else d, f, di),
            reverse=direction == -1,
        )
    return items


def projector(projection: Mapping | None) -> Callable[[Mapping], dict]:
    """A function applying ``projection`` to one document, checked once for a whole result.

    Projections on top-level fields only (the common case) become one dict comprehension
    per document; anything else (dotted paths) goes through :func:`project`.
    """
    if not projection:
        return dict
    spec = dict(projection)
    include_id = bool(spec.pop("_id", True))
    if any(isinstance(v, Mapping) for v in spec.values()) or any("." in k for k in spec):
        return lambda doc: project(doc, projection)
    inclusion = {k for k, v in spec.items() if v not in (0, False)}
    exclusion = {k for k, v in spec.items() if v in (0, False)}
    if inclusion and exclusion:
        return lambda doc: project(doc, projection)
    if inclusion:
        keep = frozenset(inclusion | ({"_id"} if include_id else set()))
        if include_id:
            def include(doc: Mapping) -> dict:
                out = {k: v for k, v in doc.items() if k in keep}
                if "_id" in out and next(iter(out)) != "_id":
                    out = {"_id": out.pop("_id"), **out}
                return out
            return include
        return lambda doc: {k: v for k, v in doc.items() if k in keep}
    drop = frozenset(exclusion | (set() if include_id else {"_id"}))
    return lambda doc: {k: v for k, v in doc.items() if k not in drop}


def project(doc: Mapping, projection: Mapping | None) -> dict:
    """Apply an inclusion or exclusion projection (dotted paths allowed)."""
    if not projection:
        return dict(doc)
    spec = dict(projection)
    include_id = bool(spec.pop("_id", True))
    flags = {k: v for k, v in spec.items() if not isinstance(v, Mapping)}
    if any(isinstance(v, Mapping) for v in spec.values()):
        raise MongoError(2, "BadValue", "projection operators ($slice, $elemMatch) are not "
                         "supported by the local dev server")
    inclusion = {k for k, v in flags.items() if v not in (0, False)}
    exclusion = {k for k, v in flags.items() if v in (0, False)}
    if inclusion and exclusion:
        field = sorted(exclusion)[0]
        raise MongoError(31254, "Location31254", f"Cannot do exclusion on field {field} in "
                         "inclusion projection")
    if inclusion:
        out: dict = {}
        if include_id and "_id" in doc:
            out["_id"] = doc["_id"]
        for key, value in doc.items():
            if key == "_id":
                continue
            sub = _included(key, value, inclusion)
            if sub is not keys.MISSING:
                out[key] = sub
        return out
    out = {}
    for key, value in doc.items():
        if key == "_id" and not include_id:
            continue
        sub = _excluded(key, value, exclusion)
        if sub is not keys.MISSING:
            out[key] = sub
    return out


def _included(key: str, value: Any, paths: set[str]) -> Any:
    if key in paths:
        return value
    nested = {p[len(key) + 1:] for p in paths if p.startswith(key + ".")}
    if not nested:
        return keys.MISSING
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            sub = _included(k, v, nested)
            if sub is not keys.MISSING:
                out[k] = sub
        return out
    if isinstance(value, list):
        return [_included("", v, {"." + p for p in nested}) if isinstance(v, Mapping) else v
                for v in value if isinstance(v, Mapping)]
    return keys.MISSING


def _excluded(key: str, value: Any, paths: set[str]) -> Any:
    if key in paths:
        return keys.MISSING
    nested = {p[len(key) + 1:] for p in paths if p.startswith(key + ".")}
    if not nested or not isinstance(value, Mapping):
        return value
    out = {}
    for k, v in value.items():
        sub = _excluded(k, v, nested)
        if sub is not keys.MISSING:
            out[k] = sub
    return out


def distinct_values(docs: Iterable[Mapping], field: str) -> list:
    """Distinct values of ``field`` (array elements flattened), in MongoDB order."""
    seen: dict[bytes, Any] = {}
    for doc in docs:
        value = keys.get_path(doc, field)
        if value is keys.MISSING and "." in field:
            value = _array_path_values(doc, field)
        if value is keys.MISSING:
            continue
        for v in value if isinstance(value, list) else [value]:
            seen.setdefault(keys.encode_value(v), v)
    return [seen[k] for k in sorted(seen)]
