"""Request bodies for the ingest tests: the smallest valid contract-shaped signal."""

from __future__ import annotations

from typing import Any


def signal(**fields: Any) -> dict[str, Any]:
    """A valid 1h enter signal of strategy ``alpha``; ``field=...`` overrides, ``None`` drops."""
    body: dict[str, Any] = {"ts": "2026-11-20T10:00:00Z", "timeframe": "1h", "pair": "BTC/USDT",
                            "strategy_id": "alpha", "action": "enter_long", "weight": 0.5}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def batch(n: int, **fields: Any) -> list[dict[str, Any]]:
    """``n`` valid signals on consecutive hours."""
    return [signal(ts=f"2026-11-19T{h:02d}:00:00Z", **fields) for h in range(n)]
