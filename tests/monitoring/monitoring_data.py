"""Constructed signals, Freqtrade trade dicts and a fake clock for the monitoring tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def signal_rows(rows: list[tuple[str, str, datetime, str]], **extra: Any) -> pd.DataFrame:
    """(strategy_id, pair, ts, action) tuples -> a signal frame."""
    return pd.DataFrame([{"strategy_id": s, "pair": p, "timeframe": "1m", "ts": ts, "action": a,
                          **extra} for s, p, ts, a in rows])


def ft_trade(trade_id: int, pair: str, open_at: datetime, *, close_at: datetime | None = None,
             tag: str | None = "ext:alpha:v1", open_rate: float = 100.0,
             close_rate: float | None = None, orders: list[dict] | None = None,
             exit_reason: str | None = None) -> dict[str, Any]:
    """A trade dict shaped like Freqtrade's ``/api/v1/trades`` / ``/status`` items."""
    return {
        "trade_id": trade_id, "pair": pair, "is_open": close_at is None,
        "open_timestamp": ms(open_at), "open_date": open_at.strftime("%Y-%m-%d %H:%M:%S"),
        "close_timestamp": ms(close_at) if close_at else None,
        "close_date": close_at.strftime("%Y-%m-%d %H:%M:%S") if close_at else None,
        "open_rate": open_rate, "close_rate": close_rate, "amount": 1.0, "stake_amount": 100.0,
        "enter_tag": tag, "exit_reason": exit_reason or (tag if close_at else None),
        "profit_ratio": 0.0 if close_at else None, "strategy": "ExternalSignalStrategy",
        "orders": orders or [],
    }


def ft_order(pair: str, at: datetime, status: str, side: str = "buy") -> dict[str, Any]:
    return {"pair": pair, "order_id": f"o{ms(at)}{status}", "status": status,
            "ft_order_side": side, "order_timestamp": ms(at), "price": 100.0, "filled": 0.0}
