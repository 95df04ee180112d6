"""Crypto-specific factors: funding rate, basis (mark vs index) and order-book imbalance.

These need data beyond OHLCV, declared as requirements (``funding_rate``,
``mark_index``, ``orderbook``); :func:`research.factors.registry.compute_factors`
skips them with a clear message when the columns are absent. This module also
turns raw inputs into those per-bar columns: ccxt funding-rate history (with a
clear error when the exchange does not offer it, checked through
``exchange.has`` like ccxt itself), and depth snapshots into bid/ask depth
within a band around the mid. Alignment to bars never looks ahead: a bar gets
the latest value published strictly before its close.
Not for downloading OHLCV (that is ``research.data``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from research.factors.registry import Bars, FactorError, register_factor
from research.factors.windows import rolling, window_stat
from signal_export.contract import timeframe_delta, to_symbol


class DataNotSupportedError(FactorError):
    """The exchange (or data source) does not provide the data a factor needs."""


# --- factors --------------------------------------------------------------

def _funding_latest(bars: Bars, window: int) -> dict[str, np.ndarray]:
    fr = bars["funding_rate"]
    mean = window_stat(fr[:, -window:], "mean")
    return {"funding_rate": fr[:, -1], f"funding_mean_{window}": mean}


@register_factor(
    "funding", outputs=("funding_rate", "funding_mean_{window}"), requires=("funding_rate",),
    lookback=lambda p: p["window"], latest=_funding_latest, window=480,
)
def funding(bars: Bars, window: int) -> dict[str, np.ndarray]:
    """Perpetual funding rate in force at the bar and its mean over ``window`` bars."""
    fr = bars["funding_rate"]
    return {"funding_rate": fr, f"funding_mean_{window}": rolling(fr, window, "mean")}


def _basis(mark: np.ndarray, index: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(index > 0, (mark - index) / index * 1e4, np.nan)


@register_factor(
    "basis", outputs=("basis_bps",), requires=("mark_index",), lookback=1,
    latest=lambda b: {"basis_bps": _basis(b["mark_price"][:, -1], b["index_price"][:, -1])},
)
def basis(bars: Bars) -> dict[str, np.ndarray]:
    """Basis of the perpetual's mark price over the spot index, in basis points."""
    return {"basis_bps": _basis(bars["mark_price"], bars["index_price"])}


def _imbalance(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    total = bid + ask
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (bid - ask) / total, np.nan)


@register_factor(
    "orderbook_imbalance", outputs=("ob_imbalance",), requires=("orderbook",), lookback=1,
    latest=lambda b: {"ob_imbalance": _imbalance(b["bid_depth"][:, -1], b["ask_depth"][:, -1])},
)
def orderbook_imbalance(bars: Bars) -> dict[str, np.ndarray]:
    """(bid depth - ask depth) / (bid depth + ask depth) from the last depth snapshot in the bar."""
    return {"ob_imbalance": _imbalance(bars["bid_depth"], bars["ask_depth"])}


# --- inputs: funding history via ccxt ---------------------------------------

def fetch_funding_rate_history(exchange: Any, symbol: str, since: int | None = None,
                               limit: int | None = None) -> pd.DataFrame:
    """ccxt ``fetch_funding_rate_history`` -> tidy frame (datetime, symbol, funding_rate).

    Raises :class:`DataNotSupportedError` when ``exchange.has`` lacks it, before any request.
    """
    if not exchange.has.get("fetchFundingRateHistory"):
        raise DataNotSupportedError(
            f"exchange {exchange.id!r} does not support fetchFundingRateHistory: "
            f"funding factors for {symbol!r} cannot be computed from it"
        )
    records = exchange.fetch_funding_rate_history(symbol, since=since, limit=limit)
    return funding_records_to_frame(records, symbol)


def funding_records_to_frame(records: list[dict[str, Any]],
                             symbol: str | None = None) -> pd.DataFrame:
    """ccxt funding-rate-history records -> (datetime UTC, symbol, funding_rate) sorted by time."""
    rows = []
    for i, rec in enumerate(records):
        ts, rate = rec.get("timestamp"), rec.get("fundingRate")
        if ts is None or rate is None:
            raise FactorError(f"funding record {i} lacks 'timestamp' or 'fundingRate': {rec!r}")
        rows.append((ts, to_symbol(symbol or rec["symbol"]), float(rate)))
    frame = pd.DataFrame(rows, columns=["timestamp", "symbol", "funding_rate"])
    frame.insert(0, "datetime", pd.to_datetime(frame.pop("timestamp"), unit="ms", utc=True))
    return frame.sort_values(["symbol", "datetime"], ignore_index=True)


# --- inputs: depth snapshots -------------------------------------------------

def depth_from_snapshots(snapshots: pd.DataFrame, band_bps: float = 50.0) -> pd.DataFrame:
    """Order-book snapshots -> bid/ask depth (base units) within ``band_bps`` of the mid.

    ``snapshots`` has columns datetime, symbol, bids, asks; bids/asks are lists of
    ``[price, amount]`` as ccxt's ``fetch_order_book`` returns them.
    """
    for col in ("datetime", "symbol", "bids", "asks"):
        if col not in snapshots.columns:
            raise FactorError(f"depth snapshots have no {col!r} column")
    bid_depth, ask_depth = [], []
    for i, (bids, asks) in enumerate(zip(snapshots["bids"], snapshots["asks"], strict=True)):
        b = np.asarray(bids, dtype=float).reshape(-1, 2)
        a = np.asarray(asks, dtype=float).reshape(-1, 2)
        if not len(b) or not len(a):
            sym = snapshots["symbol"].iloc[i]
            raise FactorError(f"depth snapshot {i} ({sym!r}) has an empty side")
        mid = (b[:, 0].max() + a[:, 0].min()) / 2
        lo, hi = mid * (1 - band_bps / 1e4), mid * (1 + band_bps / 1e4)
        bid_depth.append(b[b[:, 0] >= lo, 1].sum())
        ask_depth.append(a[a[:, 0] <= hi, 1].sum())
    return pd.DataFrame({"datetime": snapshots["datetime"].to_numpy(),
                         "symbol": snapshots["symbol"].to_numpy(),
                         "bid_depth": bid_depth, "ask_depth": ask_depth})


def align_to_bars(bars: pd.DataFrame, events: pd.DataFrame, timeframe: str,
                  columns: list[str]) -> pd.DataFrame:
    """Attach to each bar the latest ``events`` values published strictly before the bar's close.

    No look-ahead: an event stamped exactly at the close belongs to the next bar.
    Bars before the first event get NaN (reported, never invented).
    """
    for col in ("datetime", "symbol", *columns):
        if col not in events.columns:
            raise FactorError(f"events frame has no {col!r} column")
    left = bars.assign(_close=bars["datetime"] + timeframe_delta(timeframe))
    left = left.sort_values("_close", kind="stable")
    right = events[["datetime", "symbol", *columns]].rename(columns={"datetime": "_event"})
    right = right.sort_values("_event", kind="stable")
    right["_event"] = right["_event"].astype(left["_close"].dtype)
    merged = pd.merge_asof(left, right, left_on="_close", right_on="_event", by="symbol",
                           allow_exact_matches=False, direction="backward")
    merged = merged.drop(columns=["_close", "_event"])
    return merged.sort_values(["symbol", "datetime"], ignore_index=True)
