"""JSON and YAML readers that refuse duplicate member names / mapping keys.

The standard readers keep the *last* of two equal names (``{"weight": 0.1, "weight": 1}``
is ``{"weight": 1}``), so what a producer or an operator meant is silently lost:
``json.loads`` for request bodies, ``yaml.safe_load`` for a token file to which a second
``producers:`` block was appended (which drops every producer of the first). Both are
refused here, naming the member:

* :func:`loads_json` raises :class:`DuplicateMemberError` (a ``ValueError``);
* :func:`load_yaml` raises ``yaml.YAMLError`` (a ``ConstructorError`` giving the key and
  the lines of both occurrences). YAML merge keys (``<<``) still work: an explicit key
  overriding a merged one is not a duplicate.

Not for: validating what was read (the contract, the token file rules).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from signal_export.errors import BridgeError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateMemberError(BridgeError, ValueError):
    """A JSON object names one member twice; ``name`` is that member."""

    def __init__(self, name: str) -> None:
        super().__init__(f"duplicate member name {name!r} in a JSON object "
                         "(each name may appear once)")
        self.name = name


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise DuplicateMemberError(name)
            seen.add(name)
    return obj


def loads_json(text: str | bytes | bytearray) -> Any:
    """``json.loads`` that raises :class:`DuplicateMemberError` on a repeated member name."""
    return json.loads(text, object_pairs_hook=_unique_members)


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice."""


def _construct_unique_mapping(loader: StrictSafeLoader, node: yaml.MappingNode,
                              deep: bool = False) -> dict[Any, Any]:
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                earlier = first.get(key)
            except TypeError:  # unhashable key: SafeConstructor reports it below
                continue
            if earlier is not None:
                raise ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first at line {earlier.line + 1}); "
                    "each key may appear once", key_node.start_mark)
            first[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_unique_mapping)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that raises ``yaml.YAMLError`` on a repeated mapping key."""
    return yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 (a SafeLoader subclass)
