"""Market data for research: generate, import, store and read OHLCV candles.

- :mod:`~research.data.synthetic`: deterministic synthetic market (offline demo/tests).
- :mod:`~research.data.market_store`: idempotent upserts into ``crypto_market`` (1d) and
  ``crypto_market_1m`` (SPEC §2); :class:`~research.data.market_store.MarketStore` is the
  DB handle every function takes (a plain pymongo ``Database`` works too).
- :mod:`~research.data.ccxt_import`: paged, resumable, rate-limit aware ccxt download.
- :mod:`~research.data.file_import`: CSV/Parquet import with explicit timezone rules.
- :mod:`~research.data.readers`: ``get_crypto_market_data`` / ``get_crypto_min_data``, and
  ``get_crypto_bars`` for any timeframe the store accepts: 1m and 1d as stored, 5m, 15m,
  1h, 4h ... resampled from 1m on the contract's bar grid (docs/RESEARCH.md).
- :mod:`~research.data.freqtrade_candles`: write candles in Freqtrade's own format.

Submodules are imported explicitly (``from research.data.readers import ...``) so that
importing one does not pull in ccxt, pymongo or Freqtrade for the others.
"""
