"""The signal contract: the one module both sides of the bridge import.

It owns everything the research exporter and ``ExternalSignalStrategy`` must
agree on: collection and field names, the symbol mapping
``EXCHANGE:BASEQUOTE`` <-> ``BASE/QUOTE``, timeframe parsing and bar-grid
alignment (bars are labelled by their UTC *open* time, like Freqtrade's
``date`` column), and the validation of ``crypto_signals`` documents.

It is not the place for I/O: nothing here talks to MongoDB or an exchange.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import pandas as pd

# --- collections and keys -------------------------------------------------

SIGNALS_COLLECTION = "crypto_signals"
MARKET_1D_COLLECTION = "crypto_market"
MARKET_1M_COLLECTION = "crypto_market_1m"
EXPORT_RUNS_COLLECTION = "export_runs"

#: The unique key of a signal document; also the query index.
SIGNAL_KEY: tuple[str, ...] = ("strategy_id", "pair", "timeframe", "ts")

OHLCV_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


class Action(StrEnum):
    ENTER_LONG = "enter_long"
    EXIT_LONG = "exit_long"


# --- symbol mapping -------------------------------------------------------

#: Quote currencies known to the mapping. Longest match wins, so ``FDUSD``
#: beats ``USD`` and ``BINANCE:ETHBTC`` splits as ETH/BTC.
DEFAULT_QUOTES: tuple[str, ...] = (
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "TRY",
    "BRL", "JPY", "BTC", "ETH", "BNB",
)
DEFAULT_EXCHANGE = "BINANCE"

_SYMBOL_RE = re.compile(r"^(?P<exchange>[A-Z0-9_]+):(?P<body>[A-Z0-9]+)(?:\.(?P<settle>[A-Z0-9]+))?$")
_PAIR_RE = re.compile(r"^(?P<base>[A-Z0-9]+)/(?P<quote>[A-Z0-9]+)(?::(?P<settle>[A-Z0-9]+))?$")


class ContractError(ValueError):
    """A value that breaks the signal contract; the message names the field."""


def symbol_to_pair(symbol: str, quotes: tuple[str, ...] = DEFAULT_QUOTES) -> str:
    """``BINANCE:BTCUSDT`` -> ``BTC/USDT``; ``BINANCE:BTCUSDT.USDT`` -> ``BTC/USDT:USDT``."""
    m = _SYMBOL_RE.match(symbol) if isinstance(symbol, str) else None
    if not m:
        raise ContractError(f"symbol {symbol!r} is not of the form EXCHANGE:BASEQUOTE")
    body = m["body"]
    for quote in sorted(quotes, key=len, reverse=True):
        if body.endswith(quote) and len(body) > len(quote):
            pair = f"{body[: -len(quote)]}/{quote}"
            return f"{pair}:{m['settle']}" if m["settle"] else pair
    raise ContractError(f"symbol {symbol!r}: no known quote currency in {body!r} (known: {', '.join(quotes)})")


def pair_to_symbol(pair: str, exchange: str = DEFAULT_EXCHANGE, quotes: tuple[str, ...] = DEFAULT_QUOTES) -> str:
    """``BTC/USDT`` -> ``BINANCE:BTCUSDT``; ``BTC/USDT:USDT`` -> ``BINANCE:BTCUSDT.USDT``."""
    m = _PAIR_RE.match(pair) if isinstance(pair, str) else None
    if not m:
        raise ContractError(f"pair {pair!r} is not of the form BASE/QUOTE or BASE/QUOTE:SETTLE")
    if m["quote"] not in quotes:
        raise ContractError(f"pair {pair!r}: unknown quote currency {m['quote']!r} (known: {', '.join(quotes)})")
    symbol = f"{exchange.upper()}:{m['base']}{m['quote']}"
    return f"{symbol}.{m['settle']}" if m["settle"] else symbol


def to_pair(symbol_or_pair: str, quotes: tuple[str, ...] = DEFAULT_QUOTES) -> str:
    """Accept either form and return the Freqtrade pair."""
    if isinstance(symbol_or_pair, str) and "/" in symbol_or_pair:
        pair_to_symbol(symbol_or_pair, quotes=quotes)  # validates
        return symbol_or_pair
    return symbol_to_pair(symbol_or_pair, quotes)


def to_symbol(symbol_or_pair: str, exchange: str = DEFAULT_EXCHANGE,
              quotes: tuple[str, ...] = DEFAULT_QUOTES) -> str:
    """Accept either form and return the research symbol."""
    if isinstance(symbol_or_pair, str) and "/" in symbol_or_pair:
        return pair_to_symbol(symbol_or_pair, exchange, quotes)
    symbol_to_pair(symbol_or_pair, quotes)  # validates
    return symbol_or_pair


# --- time alignment -------------------------------------------------------

_TF_RE = re.compile(r"^(?P<n>[1-9][0-9]*)(?P<unit>[mhdw])$")
_TF_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def timeframe_seconds(timeframe: str) -> int:
    """``'1m'`` -> 60, ``'4h'`` -> 14400, ``'1d'`` -> 86400."""
    m = _TF_RE.match(timeframe) if isinstance(timeframe, str) else None
    if not m:
        raise ContractError(f"timeframe {timeframe!r} is not of the form <n><m|h|d|w>, e.g. 1m, 1h, 1d")
    seconds = int(m["n"]) * _TF_UNIT_SECONDS[m["unit"]]
    if m["unit"] in "mh" and 86400 % seconds:
        raise ContractError(f"timeframe {timeframe!r} does not divide a day evenly")
    return seconds


def timeframe_delta(timeframe: str) -> timedelta:
    return timedelta(seconds=timeframe_seconds(timeframe))


def ensure_utc(value: datetime | pd.Timestamp, field: str = "ts") -> pd.Timestamp:
    """Return a tz-aware UTC Timestamp; naive datetimes are an error, never assumed UTC."""
    if not isinstance(value, datetime):
        raise ContractError(f"{field}: expected a datetime, got {type(value).__name__}")
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ContractError(f"{field}: naive datetime {value!s} (timestamps must be tz-aware UTC)")
    return ts.tz_convert(UTC)


def floor_to_bar(value: datetime | pd.Timestamp, timeframe: str) -> pd.Timestamp:
    """The open time of the bar that contains ``value`` (1d bars open at 00:00 UTC)."""
    ts = ensure_utc(value)
    step = timeframe_seconds(timeframe)
    epoch_s = ts.value // 1_000_000_000
    return pd.Timestamp((epoch_s - epoch_s % step) * 1_000_000_000, tz=UTC)


def is_on_grid(value: datetime | pd.Timestamp, timeframe: str) -> bool:
    ts = ensure_utc(value)
    return ts == floor_to_bar(ts, timeframe)


def floor_series_to_bar(values: pd.Series, timeframe: str) -> pd.Series:
    """Vectorised :func:`floor_to_bar` for a tz-aware series."""
    if getattr(values.dt, "tz", None) is None:
        raise ContractError("timestamps must be tz-aware UTC (got a naive series)")
    return values.dt.tz_convert(UTC).dt.floor(pd.Timedelta(seconds=timeframe_seconds(timeframe)))
