"""A small, safe expression language for rules over factor columns.

``"rsi_14 < 30 and close > sma_200"`` is parsed with Python's ``ast`` and
evaluated by walking a whitelist of nodes - column names, numbers, arithmetic,
comparisons (chains allowed), ``and``/``or``/``not`` (also ``&``/``|``/``~``),
``abs(x)`` and ``prev(x, n)`` (the value n bars earlier for the same symbol).
Nothing is passed to ``eval``: attribute access, subscripts, other calls and
any name that is not a column raise :class:`RuleError` naming the culprit.
Comparisons with NaN are false, so a rule never fires during warm-up.
Not a general query engine.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd

from signal_export.errors import BridgeError


class RuleError(BridgeError, ValueError):
    """A rule that cannot be parsed or evaluated; the message names the rule and the part."""


_BINOPS: dict[type, Callable] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


@lru_cache(maxsize=256)
def parse_rule(rule: str) -> ast.Expression:
    """Parse and check ``rule`` against the whitelist (cached)."""
    if not isinstance(rule, str) or not rule.strip():
        raise RuleError(f"rule must be a non-empty string, got {rule!r}")
    try:
        tree = ast.parse(rule.strip(), mode="eval")
    except SyntaxError as exc:
        raise RuleError(f"rule {rule!r}: syntax error at column {exc.offset}") from None
    for node in ast.walk(tree):
        allowed = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
                   ast.UAdd, ast.Invert, ast.BinOp, ast.BitAnd, ast.BitOr, ast.Compare, ast.Name,
                   ast.Load, ast.Constant, ast.Call, *_BINOPS, *_CMPOPS)
        if not isinstance(node, allowed):
            raise RuleError(f"rule {rule!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | bool):
            raise RuleError(
                f"rule {rule!r}: only numeric constants are allowed, got {node.value!r}")
        if isinstance(node, ast.Call):
            fname = node.func.id if isinstance(node.func, ast.Name) else None
            if fname not in ("abs", "prev") or node.keywords:
                raise RuleError(f"rule {rule!r}: only abs(x) and prev(x, n) calls are allowed")
    return tree


def rule_columns(rule: str) -> set[str]:
    """The column names ``rule`` reads."""
    tree = parse_rule(rule)
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree)
            if isinstance(n, ast.Name) and id(n) not in calls and n.id not in ("True", "False")}


def evaluate_rule(rule: str, frame: pd.DataFrame, group: str | None = "symbol") -> np.ndarray:
    """Evaluate ``rule`` over ``frame`` -> boolean array (one per row).

    ``prev`` shifts within ``group`` (rows must be time-ordered within each group).
    """
    tree = parse_rule(rule)
    missing = sorted(rule_columns(rule) - set(frame.columns))
    if missing:
        raise RuleError(f"rule {rule!r}: unknown column(s) {missing} "
                        f"(available: {sorted(map(str, frame.columns))})")
    groups = frame[group].to_numpy() if group and group in frame.columns else None
    result = _Evaluator(rule, frame, groups).visit(tree.body)
    result = np.asarray(result)
    if result.dtype != bool:
        raise RuleError(f"rule {rule!r} does not produce true/false values (use a comparison)")
    return np.broadcast_to(result, (len(frame),)).copy()


class _Evaluator:
    def __init__(self, rule: str, frame: pd.DataFrame, groups: np.ndarray | None) -> None:
        self.rule, self.frame, self.groups = rule, frame, groups

    def visit(self, node: ast.AST):
        return getattr(self, f"visit_{type(node).__name__}")(node)

    def visit_Constant(self, node: ast.Constant):
        return node.value

    def visit_Name(self, node: ast.Name):
        if node.id in ("True", "False"):
            return node.id == "True"
        return self.frame[node.id].to_numpy(dtype=np.float64)

    def visit_BoolOp(self, node: ast.BoolOp):
        op = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        values = [self._bool(v) for v in node.values]
        out = values[0]
        for v in values[1:]:
            out = op(out, v)
        return out

    def visit_UnaryOp(self, node: ast.UnaryOp):
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not | ast.Invert):
            return np.logical_not(self._bool(node.operand, value))
        return -value if isinstance(node.op, ast.USub) else +value

    def visit_BinOp(self, node: ast.BinOp):
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.BitAnd | ast.BitOr):
            op = np.logical_and if isinstance(node.op, ast.BitAnd) else np.logical_or
            return op(self._bool(node.left, left), self._bool(node.right, right))
        with np.errstate(divide="ignore", invalid="ignore"):
            return _BINOPS[type(node.op)](np.asarray(left, dtype=np.float64), right)

    def visit_Compare(self, node: ast.Compare):
        left = self.visit(node.left)
        out = None
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comp)
            with np.errstate(invalid="ignore"):
                part = _CMPOPS[type(op)](np.asarray(left, dtype=np.float64), right)
            out = part if out is None else np.logical_and(out, part)
            left = right
        return out

    def visit_Call(self, node: ast.Call):
        name = node.func.id  # type: ignore[attr-defined]
        if name == "abs":
            if len(node.args) != 1:
                raise RuleError(f"rule {self.rule!r}: abs() takes one argument")
            return np.abs(self.visit(node.args[0]))
        if not 1 <= len(node.args) <= 2:
            raise RuleError(f"rule {self.rule!r}: prev() takes (x) or (x, n)")
        periods = 1
        if len(node.args) == 2:
            arg = node.args[1]
            whole = isinstance(arg, ast.Constant) and isinstance(arg.value, int)
            if not (whole and arg.value >= 1):
                raise RuleError(f"rule {self.rule!r}: prev(x, n) needs a whole number n >= 1")
            periods = arg.value
        values = pd.Series(np.broadcast_to(np.asarray(self.visit(node.args[0]), dtype=np.float64),
                                           (len(self.frame),)))
        if self.groups is None:
            return values.shift(periods).to_numpy()
        return values.groupby(self.groups, sort=False).shift(periods).to_numpy()

    def _bool(self, node: ast.AST, value=None) -> np.ndarray:
        value = self.visit(node) if value is None else value
        arr = np.asarray(value)
        if arr.dtype != bool:
            raise RuleError(
                f"rule {self.rule!r}: {ast.unparse(node)!r} is not a true/false condition")
        return arr
