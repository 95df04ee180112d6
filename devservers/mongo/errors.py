"""Errors of the local MongoDB dev server, shaped like mongod's command errors.

A :class:`MongoError` becomes ``{ok: 0, errmsg, code, codeName}`` in the reply,
exactly the fields pymongo turns into ``OperationFailure``. Write errors inside
a batch (duplicate keys) are :class:`DuplicateKeyError`, reported per document
in ``writeErrors`` instead of failing the whole command.
"""

from __future__ import annotations

from typing import Any


class MongoError(Exception):
    """A command failure with mongod's numeric code and code name."""

    def __init__(self, code: int, code_name: str, errmsg: str) -> None:
        super().__init__(errmsg)
        self.code = code
        self.code_name = code_name
        self.errmsg = errmsg

    def to_reply(self) -> dict[str, Any]:
        return {"ok": 0.0, "errmsg": self.errmsg, "code": self.code, "codeName": self.code_name}

    def to_write_error(self, index: int) -> dict[str, Any]:
        return {"index": index, "code": self.code, "errmsg": self.errmsg}


class DuplicateKeyError(MongoError):
    """E11000: a unique index already holds this key."""

    def __init__(self, ns: str, index_name: str, key_pattern: dict, key_value: dict) -> None:
        shown = ", ".join(f"{k}: {_shell_repr(v)}" for k, v in key_value.items())
        super().__init__(
            11000,
            "DuplicateKey",
            f"E11000 duplicate key error collection: {ns} index: {index_name} dup key: "
            f"{{ {shown} }}",
        )
        self.key_pattern = key_pattern
        self.key_value = key_value

    def to_write_error(self, index: int) -> dict[str, Any]:
        return {
            "index": index,
            "code": 11000,
            "errmsg": self.errmsg,
            "keyPattern": self.key_pattern,
            "keyValue": self.key_value,
        }


def _shell_repr(value: Any) -> str:
    """Render a key value roughly as the mongo shell does in E11000 messages."""
    from datetime import datetime

    from bson import ObjectId

    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, ObjectId):
        return f"ObjectId('{value}')"
    if isinstance(value, datetime):
        return f"new Date({int(value.timestamp() * 1000) if value.tzinfo else _naive_ms(value)})"
    return repr(value)


def _naive_ms(value: Any) -> int:
    from datetime import datetime

    delta = value - datetime(1970, 1, 1)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
