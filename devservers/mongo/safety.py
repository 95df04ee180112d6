"""Refusal of server-side code (JavaScript) by the local MongoDB dev server.

The dev server answers as a genuine ``mongod`` 7.0 started with
``security.javascriptEnabled: false`` (``--noscripting``): no operator that
runs code on the server is ever executed. One recursive walker,
:func:`check_command`, looks at every filter, pipeline and update condition of
a command before the engine sees any of it (it is applied to every
``CommandHandler.cmd_*`` method), so ``$where``, ``$function``,
``$accumulator`` and mongod's internal JS operators are refused wherever they
are nested: ``$and``/``$or``/``$nor``/``$not``, ``$elemMatch``, ``$expr``,
update/delete/findAndModify/count/distinct filters, ``$pull`` conditions,
``arrayFilters``, aggregation ``$match``, ``$group`` accumulators, ``$lookup``
and ``$unionWith`` sub-pipelines, ``$facet``, index partial filters, validators.

Error shapes (mongod 7.0 with JavaScript disabled):

- ``$where`` in a query command (find, count, distinct, update, delete,
  findAndModify, listCollections, ...): code 6108304 ``Location6108304``,
  ``no globalScriptEngine in $where parsing``;
- ``$where`` in an aggregation pipeline (mongod never allows it there):
  code 2 ``BadValue``, ``$where is not allowed in this context``;
- ``$function``, ``$accumulator``, ``$_internalJsEmit``, ``$_internalJsReduce``:
  code 31264 ``Location31264``, ``Cannot run server-side javascript without the
  javascript engine enabled`` (mongod fails when it would evaluate them; here
  the command is refused before anything runs).

A write command holding such an operator in any statement is refused as a
whole, before its first statement runs (mongod reports it per statement in
``writeErrors``); nothing is changed.

Second line of defence: mongomock's matcher implements ``$where`` with Python
``eval``; :func:`disable_mongomock_eval` replaces the ``eval`` its module sees
with a function that refuses, so no code path can reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devservers.mongo.errors import MongoError

WHERE = "$where"
#: Expression/accumulator operators that run JavaScript on mongod.
JS_OPERATORS = frozenset({"$function", "$accumulator", "$_internalJsEmit", "$_internalJsReduce"})
SERVER_SIDE_CODE = JS_OPERATORS | {WHERE}

#: Command fields that carry documents to store, not expressions (never evaluated).
_DATA_FIELDS = frozenset({"documents"})


def where_refused(context: str = "query") -> MongoError:
    """The error mongod (JavaScript disabled) answers for ``$where`` in ``context``."""
    if context == "aggregate":
        return MongoError(2, "BadValue", "$where is not allowed in this context")
    return MongoError(6108304, "Location6108304", "no globalScriptEngine in $where parsing")


def js_refused() -> MongoError:
    """The error mongod (JavaScript disabled) answers for ``$function``/``$accumulator``."""
    return MongoError(31264, "Location31264", "Cannot run server-side javascript without the "
                      "javascript engine enabled")


def check(spec: Any, context: str = "query") -> None:
    """Raise a mongod-shaped error if ``spec`` holds a server-side code operator at any depth.

    ``spec`` is a filter, a pipeline (list of stages), an expression or any nesting of
    documents and arrays; only keys are inspected (``"$where"`` as a string value is a
    field path or data, not code). Iterative, so no nesting depth overflows it.
    """
    stack = [spec]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict or isinstance(node, Mapping):
            if not SERVER_SIDE_CODE.isdisjoint(node.keys()):
                key = WHERE if WHERE in node else next(k for k in node if k in SERVER_SIDE_CODE)
                raise where_refused(context) if key == WHERE else js_refused()
            children = node.values()
        elif type(node) is list or type(node) is tuple:
            children = node
        else:
            continue
        for value in children:
            kind = type(value)
            if kind is dict or kind is list or kind is tuple or (
                    kind is not str and isinstance(value, Mapping)):
                push(value)


def _check_update(update: Any, context: str) -> None:
    """An update document: replacement and ``$set``-style values are data; conditions
    (``$pull``) and pipeline-style updates are expressions."""
    if isinstance(update, Mapping):
        if "$pull" in update:
            check(update["$pull"], context)
    elif isinstance(update, list | tuple):
        check(update, "aggregate")


_PLAIN_STATEMENT = frozenset({"q", "u", "upsert", "multi"})


def check_command(name: str, cmd: Mapping) -> None:
    """Refuse ``cmd`` (command ``name``, any case) if any filter, pipeline or update
    condition in it holds server-side code. Called before the command touches storage."""
    context = "aggregate" if name.lower() == "aggregate" else "query"
    for key, value in cmd.items():
        if key in SERVER_SIDE_CODE:
            check({key: value}, context)
        if key in _DATA_FIELDS or not isinstance(value, Mapping | list | tuple):
            continue
        if key == "updates" and isinstance(value, list | tuple):  # update statements
            for stmt in value:
                if not isinstance(stmt, Mapping):
                    continue
                check(stmt.get("q"), context)
                _check_update(stmt.get("u"), context)
                if not _PLAIN_STATEMENT.issuperset(stmt.keys()):  # arrayFilters, hint, ...
                    check({k: v for k, v in stmt.items() if k not in _PLAIN_STATEMENT}, context)
        elif key == "update":  # findAndModify's update document
            _check_update(value, context)
        else:
            check(value, context)


def _refuse_eval(*_args: Any, **_kwargs: Any) -> Any:
    raise where_refused()


def disable_mongomock_eval() -> None:
    """Make mongomock's ``$where`` (Python ``eval``) unreachable in this process.

    ``mongomock_ng.filtering`` calls the name ``eval``; a module global of that name
    shadows the builtin, so every ``$where`` that might slip past :func:`check` fails
    with mongod's error instead of running code.
    """
    from mongomock_ng import filtering

    filtering.eval = _refuse_eval  # type: ignore[attr-defined]
