"""Hand-built factor frames for the signal tests (imported by basename)."""

from __future__ import annotations

import pandas as pd

T0 = pd.Timestamp("2024-01-01", tz="UTC")
BTC, ETH, SOL, XRP = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT", "BINANCE:XRPUSDT"


def frame(columns_by_symbol: dict[str, dict[str, list[float]]], freq: str = "1h") -> pd.DataFrame:
    """{symbol: {column: values}} -> tidy frame with datetime from T0 on the ``freq`` grid."""
    parts = []
    for symbol, cols in columns_by_symbol.items():
        n = len(next(iter(cols.values())))
        parts.append(pd.DataFrame({"datetime": pd.date_range(T0, periods=n, freq=freq),
                                   "symbol": symbol, **cols}))
    return pd.concat(parts, ignore_index=True)


def at(i: int, freq: str = "1h") -> pd.Timestamp:
    return T0 + i * pd.Timedelta(freq)


def assert_contract_valid(signals: pd.DataFrame) -> None:
    """Every row passes the contract's own batch validator (signal_export.validate)."""
    from signal_export.validate import validate_frame

    batch = validate_frame(signals, now=pd.Timestamp("2100-01-01", tz="UTC"))
    assert not batch.errors, [str(e) for e in batch.errors[:3]]
    assert len(batch.documents) == len(signals)
