"""Writing candles in Freqtrade's own data format, for ``freqtrade backtesting``.

Uses Freqtrade's data handler (``get_datahandler(datadir, 'feather')``) so the
files are exactly what Freqtrade reads (``<datadir>/BTC_USDT-1d.feather``), and
research and Freqtrade backtests see the same candles. Not a reader.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from signal_export.contract import OHLCV_FIELDS, ContractError, to_pair


def write_freqtrade_candles(
    frame: pd.DataFrame, datadir: str | Path, timeframe: str, *, data_format: str = "feather"
) -> list[Path]:
    """Store each symbol's candles (``datetime`` or ``date``, ``symbol``, OHLCV) for Freqtrade.

    ``datadir`` is the exchange data folder, e.g. ``user_data/data/binance``.
    Returns the files written.
    """
    from freqtrade.data.history import get_datahandler
    from freqtrade.enums import CandleType

    time_col = "datetime" if "datetime" in frame.columns else "date"
    missing = [c for c in (time_col, "symbol", *OHLCV_FIELDS) if c not in frame.columns]
    if missing:
        raise ContractError(f"candles for Freqtrade: missing column(s) {missing}")
    if not isinstance(frame[time_col].dtype, pd.DatetimeTZDtype):
        raise ContractError(f"candles for Freqtrade: {time_col!r} must be tz-aware UTC")
    datadir = Path(datadir)
    datadir.mkdir(parents=True, exist_ok=True)
    handler = get_datahandler(datadir, data_format)
    written = []
    for symbol, group in frame.groupby("symbol", sort=True):
        pair = to_pair(str(symbol))
        data = pd.DataFrame({
            "date": group[time_col].dt.tz_convert("UTC").astype("datetime64[ms, UTC]"),
            **{c: group[c].astype("float64") for c in OHLCV_FIELDS},
        }).sort_values("date").reset_index(drop=True)
        handler.ohlcv_store(pair, timeframe, data, CandleType.SPOT)
        written.append(handler._pair_data_filename(datadir, pair, timeframe, CandleType.SPOT))
    return written
