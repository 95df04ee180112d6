"""Execution-side checks on Freqtrade's REST data (pure): rejections, slippage, balance, limits.

Inputs are the JSON of Freqtrade's ``/trades``, ``/status``, ``/balance`` and
``/logs`` endpoints turned into frames by :func:`trades_frame` and
:func:`orders_frame`; outputs are :class:`Condition` objects per bot/pair. Not
the HTTP calls (:mod:`.freqtrade_api`) nor the signal/trade matching
(:mod:`.reconcile`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from signal_export.consumer.matching import parse_tag
from signal_export.monitoring.alerts import Condition, Rule, Unit

#: ccxt order states that mean "did not fill and will not".
FAILED_ORDER_STATES = frozenset({"canceled", "cancelled", "rejected", "expired"})
RATE_LIMIT_RE = re.compile(r"rate.?limit|DDoSProtection|too many requests|\b429\b|\b-1003\b",
                           re.IGNORECASE)

TRADE_COLUMNS = ("trade_id", "pair", "is_open", "open_time", "close_time", "open_rate",
                 "close_rate", "amount", "stake_amount", "enter_tag", "exit_reason",
                 "strategy_id", "signal_version")


def _ms_to_ts(values: pd.Series) -> pd.Series:
    return pd.to_datetime(pd.to_numeric(values, errors="coerce"), unit="ms", utc=True)


def trades_frame(trades: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Freqtrade trade dicts -> one row per trade, times as UTC, the signal parsed from enter_tag.

    ``strategy_id``/``signal_version`` come from ``enter_tag``
    (``ext:<strategy_id>:v<version>[:w<weight>]``); ``None`` for other tags.
    """
    rows = list(trades)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRADE_COLUMNS}).astype(
            {"open_time": "datetime64[ms, UTC]", "close_time": "datetime64[ms, UTC]",
             "open_rate": "float64", "close_rate": "float64"})
    for col in ("enter_tag", "exit_reason", "close_timestamp", "close_rate", "amount",
                "stake_amount", "is_open"):
        if col not in frame:
            frame[col] = None
    parsed = [parse_tag(t) for t in frame["enter_tag"]]
    out = pd.DataFrame({
        "trade_id": frame["trade_id"].astype("int64"),
        "pair": frame["pair"].astype(object),
        "is_open": frame["is_open"].fillna(False).astype(bool),
        "open_time": _ms_to_ts(frame["open_timestamp"]),
        "close_time": _ms_to_ts(frame["close_timestamp"]),
        "open_rate": pd.to_numeric(frame["open_rate"], errors="coerce"),
        "close_rate": pd.to_numeric(frame["close_rate"], errors="coerce"),
        "amount": pd.to_numeric(frame["amount"], errors="coerce"),
        "stake_amount": pd.to_numeric(frame["stake_amount"], errors="coerce"),
        "enter_tag": frame["enter_tag"], "exit_reason": frame["exit_reason"],
        "strategy_id": [p[0] if p else None for p in parsed],
        "signal_version": [p[1] if p else None for p in parsed],
    })
    return out.drop_duplicates("trade_id", keep="last").sort_values(
        ["pair", "open_time"], ignore_index=True)


def orders_frame(trades: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Every order of every trade: pair, trade_id, side, status, time (UTC), price, filled."""
    rows = []
    for t in trades:
        for o in t.get("orders") or ():
            rows.append({"trade_id": t.get("trade_id"), "pair": o.get("pair") or t.get("pair"),
                         "side": o.get("ft_order_side"), "status": str(o.get("status") or ""),
                         "time": o.get("order_timestamp"), "price": o.get("safe_price")
                         or o.get("price"), "filled": o.get("filled")})
    frame = pd.DataFrame(rows, columns=["trade_id", "pair", "side", "status", "time", "price",
                                        "filled"])
    frame["time"] = _ms_to_ts(frame["time"])
    return frame.sort_values(["pair", "time"], ignore_index=True)


def consecutive_failed_orders(orders: pd.DataFrame) -> pd.Series:
    """Per pair: how many of its newest orders in a row were cancelled/rejected/expired."""
    if orders.empty:
        return pd.Series(dtype="int64")
    failed = orders["status"].str.lower().isin(FAILED_ORDER_STATES)
    # a run of failures at the end: count failures after the last non-failure
    ok_seen = (~failed)[::-1].groupby(orders["pair"][::-1]).cummax()
    return (failed & ~ok_seen[::-1]).groupby(orders["pair"]).sum().astype("int64")


def rejection_conditions(orders: pd.DataFrame, now: datetime, threshold: int,
                         bot: str) -> list[Condition]:
    counts = consecutive_failed_orders(orders)
    return [Condition(Rule.CONSECUTIVE_REJECTIONS, bool(n >= threshold), now, float(n),
                      float(threshold),
                      f"{n} consecutive orders cancelled/rejected on bot {bot}",
                      pair=pair, subject=bot)
            for pair, n in counts.items()]


def slippage_bps(fill: np.ndarray, reference: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Adverse slippage in basis points: buys above / sells below the reference are positive."""
    sign = np.where(side == "exit", -1.0, 1.0)
    return sign * (fill - reference) / reference * 10_000.0


def slippage_conditions(fills: pd.DataFrame, now: datetime, threshold_bps: float
                        ) -> list[Condition]:
    """Newest fill per strategy/pair/side vs its signal's reference price.

    ``fills``: columns strategy_id, pair, side (enter/exit), happened_at,
    fill_price, ref_price (rows without a reference are skipped).
    """
    usable = fills.dropna(subset=["fill_price", "ref_price"])
    if usable.empty:
        return []
    usable = usable.assign(slippage_bps=slippage_bps(
        usable["fill_price"].to_numpy(float), usable["ref_price"].to_numpy(float),
        usable["side"].to_numpy(object)))
    newest = usable.sort_values("happened_at").groupby(["strategy_id", "pair", "side"]).tail(1)
    return [Condition(Rule.SLIPPAGE, bool(r.slippage_bps > threshold_bps), now,
                      float(r.slippage_bps), threshold_bps,
                      f"{r.side} fill {r.fill_price:.8g} vs signal reference {r.ref_price:.8g}: "
                      f"{r.slippage_bps:.1f} bps at {r.happened_at.isoformat()}",
                      strategy_id=r.strategy_id, pair=r.pair, subject=str(r.side),
                      unit=Unit.BPS)
            for r in newest.itertuples(index=False)]


def stake_balance(balance: Mapping[str, Any], currency: str) -> float | None:
    """Free balance of ``currency`` from Freqtrade's ``/balance`` reply (``None``: not listed)."""
    for cur in balance.get("currencies") or ():
        if cur.get("currency") == currency:
            return float(cur.get("free") or 0.0)
    return None


def balance_condition(free: float | None, currency: str, minimum: float, now: datetime,
                      bot: str) -> Condition:
    """LOW_BALANCE: free stake-currency balance (``None``: not in the balance = 0) < minimum."""
    value = 0.0 if free is None else free
    return Condition(Rule.LOW_BALANCE, value < minimum, now, value, minimum,
                     f"free {currency} balance {value:.8g} on bot {bot}"
                     + (" (currency not in balance)" if free is None else ""), subject=bot)


def rate_limit_lines(logs: Mapping[str, Any], since: datetime | None = None
                     ) -> list[tuple[datetime, str]]:
    """Rate-limit errors in Freqtrade's ``/logs`` reply (entries ``[time, ts, name, level,
    message]``, ts in s or ms) newer than ``since``."""
    out = []
    for entry in logs.get("logs") or ():
        if len(entry) < 5:
            continue
        raw = float(entry[1])
        when = datetime.fromtimestamp(raw / 1000 if raw > 1e11 else raw, UTC)
        if since is not None and when <= since:
            continue
        if str(entry[3]).upper() in ("WARNING", "ERROR", "CRITICAL") and RATE_LIMIT_RE.search(
                str(entry[4])):
            out.append((when, str(entry[4])))
    return out


def rate_limit_condition(lines: Sequence[tuple[datetime, str]], now: datetime, threshold: int,
                         bot: str) -> Condition:
    n = len(lines)
    last = lines[-1][1][:200] if lines else ""
    return Condition(Rule.RATE_LIMIT, n >= threshold, now, float(n), float(threshold),
                     f"{n} exchange rate-limit errors in bot {bot}'s log"
                     + (f"; last: {last}" if last else ""), subject=bot)
