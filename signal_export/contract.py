"""The signal contract: the one module both sides of the bridge import.

It owns everything the research exporter and ``ExternalSignalStrategy`` must
agree on: collection and field names, the symbol mapping
``EXCHANGE:BASEQUOTE`` <-> ``BASE/QUOTE`` (futures: ``EXCHANGE:BASEQUOTE.SETTLE``
<-> ``BASE/QUOTE:SETTLE``), timeframe parsing and bar-grid alignment (bars are
labelled by their UTC *open* time, like Freqtrade's ``date`` column; weeks open
on Monday 00:00 UTC like Binance and ccxt), and the pydantic model
:class:`SignalDocument` that validates one ``crypto_signals`` document.

Rules of a signal document (each broken rule is a :class:`ContractError` or a
pydantic error naming the field):

* ``ts``: tz-aware (naive is an error, never assumed UTC), stored as UTC, on
  the timeframe's bar grid (``align="ceil"`` moves it up to the next bar open,
  the candle the strategy acts on anyway; never earlier), at most one
  bar after "now" (a signal from the future is a clock or code bug).
* ``timeframe``: ``<n>m|h|d|w`` (minutes and hours must divide a day).
* ``symbol``/``pair``: at least one; the other is derived; both given must
  agree. A pair whose symbol would read back as another pair
  (``BTCB/USD`` -> ``BINANCE:BTCBUSD`` -> ``BTC/BUSD``) is rejected as ambiguous,
  so every accepted mapping round-trips.
* ``strategy_id``: 1-64 chars of ``[A-Za-z0-9_.:-]``, starting alphanumeric.
* At least one of ``action``, ``score``, ``weight``. ``action`` is one of
  ``enter_long``, ``exit_long``, ``enter_short``, ``exit_short``. ``score`` is any
  finite float; ``weight`` a finite float in [-1, 1], signed: ``+w`` long, ``-w``
  short, ``0`` flat. With an ``action`` the weight must agree: ``enter_long``
  needs ``weight > 0``, ``enter_short`` ``weight < 0``, ``exit_long``/``exit_short``
  ``weight == 0``. ``score`` is informational next to an ``action`` and never conflicts.
* Optional per-entry risk fields (futures; see docs/LONG_SHORT.md), only on an
  entry (``enter_long``/``enter_short``, or no action and ``weight != 0``):
  ``leverage`` in [1, 125]; ``stop_loss`` and ``take_profit`` as *fractions of the
  entry price* (``stop_loss=0.05``: exit after a 5 % adverse price move, whatever
  the leverage), ``0 < stop_loss`` and ``stop_loss * leverage < 1`` (the stop
  must come before the margin is gone), ``take_profit > 0`` and, for a short,
  ``< 1`` (a price cannot fall below zero).
* Shorts (``enter_short``/``exit_short``, ``weight < 0``) and ``leverage != 1``
  need a futures pair (``BTC/USDT:USDT``, symbol ``BINANCE:BTCUSDT.USDT``): a
  spot bot cannot act on them. Long-only spot documents are unchanged.
* Optional ``valid_until`` (tz-aware, > ts), ``note`` (<= 1000 chars),
  ``source`` (<= 200 chars), ``version`` (int >= 1, default 1) and ``extra``: a
  flat dict (<= 32 keys, names without ``$``/``.``) of scalars for anything else,
  e.g. ``{"model": "lgbm-7", "horizon_bars": 4}``. Other fields are errors.

It is not the place for I/O: nothing here talks to MongoDB or an exchange.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from signal_export.errors import BridgeError

# --- collections and keys -------------------------------------------------

SIGNALS_COLLECTION = "crypto_signals"
MARKET_1D_COLLECTION = "crypto_market"
MARKET_1M_COLLECTION = "crypto_market_1m"
EXPORT_RUNS_COLLECTION = "export_runs"

#: The unique key of a signal document; also the query index.
SIGNAL_KEY: tuple[str, ...] = ("strategy_id", "pair", "timeframe", "ts")

#: Content fields of a signal document (everything the producer sets besides the key).
SIGNAL_CONTENT_FIELDS: tuple[str, ...] = (
    "symbol", "action", "score", "weight", "valid_until", "note", "source", "version", "extra",
    "leverage", "stop_loss", "take_profit",
)
#: All producer fields, in a stable order.
SIGNAL_FIELDS: tuple[str, ...] = SIGNAL_KEY + SIGNAL_CONTENT_FIELDS

#: Bookkeeping fields the exporter adds (never set by producers).
CONTENT_HASH_FIELD = "content_hash"
CREATED_AT_FIELD = "created_at"
UPDATED_AT_FIELD = "updated_at"
RUN_ID_FIELD = "run_id"
CREATED_RUN_ID_FIELD = "created_run_id"
#: When the store accepted this version (server clock; see signal_export/point_in_time.py).
AVAILABLE_AT_FIELD = "available_at"

#: Fields a stored document carries besides the producer fields.
STORED_ONLY_FIELDS: tuple[str, ...] = (
    "_id", CONTENT_HASH_FIELD, CREATED_AT_FIELD, UPDATED_AT_FIELD, RUN_ID_FIELD,
    CREATED_RUN_ID_FIELD, AVAILABLE_AT_FIELD,
)

OHLCV_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

NOTE_MAX_LEN = 1000
SOURCE_MAX_LEN = 200
STRATEGY_ID_MAX_LEN = 64
EXTRA_MAX_KEYS = 32
STRATEGY_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")

#: What to do with a ``ts`` off the timeframe's bar grid: ``reject`` it, or ``ceil`` it to the
#: next bar open - the candle the strategy would act on anyway (never an earlier one).
Align = Literal["reject", "ceil"]
ALIGN_CHOICES: tuple[str, ...] = ("reject", "ceil")


class Action(StrEnum):
    ENTER_LONG = "enter_long"
    EXIT_LONG = "exit_long"
    ENTER_SHORT = "enter_short"
    EXIT_SHORT = "exit_short"


#: The actions of the original long-only contract (what a spot bot acts on).
LONG_ACTIONS: frozenset[str] = frozenset({Action.ENTER_LONG.value, Action.EXIT_LONG.value})
#: Actions that open a position, with their side (+1 long, -1 short).
ENTRY_SIDE: dict[str, int] = {Action.ENTER_LONG.value: 1, Action.ENTER_SHORT.value: -1}
#: Actions that close a position (the wanted weight is 0).
EXIT_ACTIONS: frozenset[str] = frozenset({Action.EXIT_LONG.value, Action.EXIT_SHORT.value})

#: Per-entry risk fields (optional; only on an entry, see :func:`check_risk_fields`).
RISK_FIELDS: tuple[str, ...] = ("leverage", "stop_loss", "take_profit")
#: Binance USD-M's highest leverage tier; Freqtrade caps further by the pair's tiers.
LEVERAGE_MAX = 125.0


class ContractError(BridgeError, ValueError):
    """A value that breaks the signal contract; the message names the field.

    ``field`` (optional) is the field name, for callers that report errors as data.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- symbol mapping -------------------------------------------------------

#: Quote currencies known to the mapping. Longest match wins, so ``FDUSD``
#: beats ``USD`` and ``BINANCE:ETHBTC`` splits as ETH/BTC.
DEFAULT_QUOTES: tuple[str, ...] = (
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "TRY",
    "BRL", "JPY", "BTC", "ETH", "BNB",
)
DEFAULT_EXCHANGE = "BINANCE"

_SYMBOL_RE = re.compile(
    r"\A(?P<exchange>[A-Z0-9_]+):(?P<body>[A-Z0-9]+)(?:\.(?P<settle>[A-Z0-9]+))?\Z"
)
_PAIR_RE = re.compile(r"\A(?P<base>[A-Z0-9]+)/(?P<quote>[A-Z0-9]+)(?::(?P<settle>[A-Z0-9]+))?\Z")
_EXCHANGE_RE = re.compile(r"\A[A-Z0-9_]+\Z")


@lru_cache(maxsize=64)
def _quotes_by_length(quotes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(quotes), key=len, reverse=True))


def parse_quotes(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"USDT, btc"`` -> ``("USDT", "BTC")``; ``None``/empty -> :data:`DEFAULT_QUOTES`."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    quotes = tuple(q.strip().upper() for q in items if q and q.strip())
    for q in quotes:
        if not q.isalnum():
            raise ContractError(f"quote currency {q!r} must be alphanumeric")
    return quotes or DEFAULT_QUOTES


def symbol_to_pair(symbol: str, quotes: Iterable[str] = DEFAULT_QUOTES) -> str:
    """``BINANCE:BTCUSDT`` -> ``BTC/USDT``; ``BINANCE:BTCUSDT.USDT`` -> ``BTC/USDT:USDT``."""
    if not isinstance(symbol, str):
        raise ContractError(f"symbol {symbol!r} is not a string", "symbol")
    return _symbol_to_pair(symbol, tuple(quotes))


@lru_cache(maxsize=4096)
def _symbol_to_pair(symbol: str, quotes: tuple[str, ...]) -> str:
    m = _SYMBOL_RE.match(symbol)
    if not m:
        raise ContractError(
            f"symbol {symbol!r} is not of the form EXCHANGE:BASEQUOTE or EXCHANGE:BASEQUOTE.SETTLE"
        )
    body = m["body"]
    for quote in _quotes_by_length(tuple(quotes)):
        if body.endswith(quote) and len(body) > len(quote):
            pair = f"{body[: -len(quote)]}/{quote}"
            return f"{pair}:{m['settle']}" if m["settle"] else pair
    raise ContractError(
        f"symbol {symbol!r}: no known quote currency in {body!r} (known: {', '.join(quotes)})"
    )


def pair_to_symbol(
    pair: str, exchange: str = DEFAULT_EXCHANGE, quotes: Iterable[str] = DEFAULT_QUOTES
) -> str:
    """``BTC/USDT`` -> ``BINANCE:BTCUSDT``; ``BTC/USDT:USDT`` -> ``BINANCE:BTCUSDT.USDT``.

    Rejects pairs whose symbol would map back to a different pair (longest
    quote match), so ``symbol_to_pair(pair_to_symbol(p)) == p`` always holds.
    """
    if not isinstance(pair, str):
        raise ContractError(f"pair {pair!r} is not a string", "pair")
    if not isinstance(exchange, str):
        raise ContractError(f"exchange {exchange!r} is not a string", "exchange")
    return _pair_to_symbol(pair, exchange, tuple(quotes))


@lru_cache(maxsize=4096)
def _pair_to_symbol(pair: str, exchange: str, quotes: tuple[str, ...]) -> str:
    m = _PAIR_RE.match(pair)
    if not m:
        raise ContractError(f"pair {pair!r} is not of the form BASE/QUOTE or BASE/QUOTE:SETTLE")
    if m["quote"] not in quotes:
        raise ContractError(
            f"pair {pair!r}: unknown quote currency {m['quote']!r} (known: {', '.join(quotes)})"
        )
    # ASCII first: str.upper() maps look-alikes ("bınance" -> "BINANCE") onto the pattern
    if not exchange.isascii() or not _EXCHANGE_RE.fullmatch(exchange.upper()):
        raise ContractError(f"exchange {exchange!r} must be ASCII letters, digits or '_'",
                            "exchange")
    symbol = f"{exchange.upper()}:{m['base']}{m['quote']}"
    if m["settle"]:
        symbol = f"{symbol}.{m['settle']}"
    back = _symbol_to_pair(symbol, quotes)
    if back != pair:
        raise ContractError(
            f"pair {pair!r} is ambiguous: its symbol {symbol!r} reads back as {back!r} "
            "(longest known quote wins)"
        )
    return symbol


def to_pair(symbol_or_pair: str, quotes: tuple[str, ...] = DEFAULT_QUOTES) -> str:
    """Accept either form and return the Freqtrade pair."""
    if isinstance(symbol_or_pair, str) and "/" in symbol_or_pair:
        pair_to_symbol(symbol_or_pair, quotes=tuple(quotes))  # validates
        return symbol_or_pair
    return symbol_to_pair(symbol_or_pair, tuple(quotes))


def to_symbol(
    symbol_or_pair: str, exchange: str = DEFAULT_EXCHANGE, quotes: tuple[str, ...] = DEFAULT_QUOTES
) -> str:
    """Accept either form and return the research symbol."""
    if isinstance(symbol_or_pair, str) and "/" in symbol_or_pair:
        return pair_to_symbol(symbol_or_pair, exchange, tuple(quotes))
    symbol_to_pair(symbol_or_pair, tuple(quotes))  # validates
    return symbol_or_pair


def perpetual_symbol(symbol: str, quotes: Iterable[str] = DEFAULT_QUOTES) -> str:
    """TradingView's perpetual ``BINANCE:BTCUSDT.P`` -> ``BINANCE:BTCUSDT.USDT`` (linear: settles
    in the quote, Freqtrade's ``BTC/USDT:USDT``); any other symbol is returned as it is."""
    if not (isinstance(symbol, str) and symbol.endswith(".P")):
        return symbol
    spot = symbol[:-2]
    quote = symbol_to_pair(spot, tuple(quotes)).rsplit("/", 1)[1]
    return f"{spot}.{quote}"


def _as_field(field: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, its ContractError naming ``field`` unless it names one already (with both
    symbol and pair given, a bad symbol must not be reported as the pair)."""
    try:
        return fn(*args)
    except ContractError as exc:
        if exc.field:
            raise
        raise ContractError(str(exc), field) from None


def resolve_symbol_pair(
    symbol: str | None,
    pair: str | None,
    exchange: str = DEFAULT_EXCHANGE,
    quotes: tuple[str, ...] = DEFAULT_QUOTES,
) -> tuple[str, str]:
    """Fill in the missing one of ``symbol``/``pair`` and check that both agree."""
    quotes = tuple(quotes)
    if symbol is None and pair is None:
        raise ContractError("symbol/pair: one of them is required")
    if symbol is not None and not (isinstance(symbol, str) and ":" in symbol and "/" not in symbol):
        raise ContractError(f"symbol {symbol!r} is not of the form EXCHANGE:BASEQUOTE", "symbol")
    if pair is None:
        return symbol, _as_field("symbol", symbol_to_pair, symbol, quotes)
    if symbol is None:
        return _as_field("pair", pair_to_symbol, pair, exchange, quotes), pair
    _as_field("pair", pair_to_symbol, pair, exchange, quotes)  # validates the pair on its own
    derived = _as_field("symbol", symbol_to_pair, symbol, quotes)
    if derived != pair:
        raise ContractError(f"symbol {symbol!r} maps to {derived!r}, not to pair {pair!r}")
    return symbol, pair


# --- time alignment -------------------------------------------------------

_TF_RE = re.compile(r"\A(?P<n>[1-9][0-9]*)(?P<unit>[mhdw])\Z")
_TF_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
#: Weeks open on Monday 00:00 UTC (Binance, ccxt, Freqtrade); 1970-01-05 was a Monday.
_WEEK_ANCHOR_S = 4 * 86400


def timeframe_seconds(timeframe: str) -> int:
    """``'1m'`` -> 60, ``'4h'`` -> 14400, ``'1d'`` -> 86400, ``'1w'`` -> 604800."""
    if not isinstance(timeframe, str):
        raise ContractError(f"timeframe {timeframe!r} is not a string", "timeframe")
    return _timeframe_seconds(timeframe)


@lru_cache(maxsize=256)
def _timeframe_seconds(timeframe: str) -> int:
    m = _TF_RE.match(timeframe)
    if not m:
        raise ContractError(
            f"timeframe {timeframe!r} is not of the form <n><m|h|d|w>, e.g. 1m, 1h, 1d, 1w"
        )
    seconds = int(m["n"]) * _TF_UNIT_SECONDS[m["unit"]]
    if m["unit"] in "mh" and 86400 % seconds:
        raise ContractError(f"timeframe {timeframe!r} does not divide a day evenly")
    return seconds


def timeframe_delta(timeframe: str) -> timedelta:
    return timedelta(seconds=timeframe_seconds(timeframe))


def _grid_anchor_s(timeframe: str) -> int:
    return _WEEK_ANCHOR_S if timeframe.endswith("w") else 0


def ensure_utc(value: datetime | pd.Timestamp, field: str = "ts") -> pd.Timestamp:
    """Return a tz-aware UTC Timestamp; naive datetimes are an error, never assumed UTC."""
    if not isinstance(value, datetime) or value is pd.NaT:
        raise ContractError(f"{field}: expected a datetime, got {type(value).__name__}", field)
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ContractError(
            f"{field}: naive datetime {value!s} (timestamps must be tz-aware UTC)", field
        )
    return ts.tz_convert(UTC)


def floor_to_bar(value: datetime | pd.Timestamp, timeframe: str) -> pd.Timestamp:
    """The open time of the bar that contains ``value`` (1d at 00:00 UTC, 1w on Monday)."""
    ts = ensure_utc(value)
    step = timeframe_seconds(timeframe)
    anchor = _grid_anchor_s(timeframe)
    ns = ts.value
    epoch_s = ns // 1_000_000_000
    floored = epoch_s - (epoch_s - anchor) % step
    return pd.Timestamp(floored * 1_000_000_000, tz=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_datetime(value: datetime, timeframe: str) -> datetime:
    """Fast :func:`floor_to_bar` for a tz-aware ``datetime`` (microsecond precision)."""
    if value.tzinfo is None:
        raise ContractError(f"ts: naive datetime {value!s} (timestamps must be tz-aware UTC)", "ts")
    delta = value - _EPOCH
    total_us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    step_us = timeframe_seconds(timeframe) * 1_000_000
    anchor_us = _grid_anchor_s(timeframe) * 1_000_000
    return _EPOCH + timedelta(microseconds=total_us - (total_us - anchor_us) % step_us)


def is_on_grid(value: datetime | pd.Timestamp, timeframe: str) -> bool:
    ts = ensure_utc(value)
    return ts == floor_to_bar(ts, timeframe)


def ceil_epoch_ms_to_bar(values: np.ndarray, timeframe: str) -> np.ndarray:
    """Epoch ms -> open (ms) of the first bar at or after each: the bar a signal belongs to."""
    step = timeframe_seconds(timeframe) * 1000
    rem = np.mod(values - _grid_anchor_s(timeframe) * 1000, step)
    return values + np.where(rem > 0, step - rem, 0)


def floor_series_to_bar(values: pd.Series, timeframe: str) -> pd.Series:
    """Vectorised :func:`floor_to_bar` for a tz-aware series (keeps its index and unit)."""
    if getattr(values.dt, "tz", None) is None:
        raise ContractError("timestamps must be tz-aware UTC (got a naive series)")
    utc = values.dt.tz_convert(UTC)
    step_ns = timeframe_seconds(timeframe) * 1_000_000_000
    anchor_ns = _grid_anchor_s(timeframe) * 1_000_000_000
    ns = utc.astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    floored = ns - np.mod(ns - anchor_ns, step_ns)
    out = pd.Series(pd.to_datetime(floored, utc=True), index=values.index, name=values.name)
    if values.isna().any():
        out[values.isna()] = pd.NaT
    return out.astype(utc.dtype)


# --- the document model ---------------------------------------------------

_ISO_OFFSET_RE = re.compile(r"(Z|[+-]\d{2}(:?\d{2})?)$", re.IGNORECASE)


def _parse_aware(value: Any, field: str) -> datetime:
    """datetime / pandas Timestamp / ISO-8601 string with offset -> UTC ``datetime``."""
    if isinstance(value, str):
        text = value.strip()
        if not _ISO_OFFSET_RE.search(text):
            raise ContractError(
                f"{field}: {value!r} has no UTC offset (naive times are rejected; add Z or +00:00)"
            )
        try:
            value = pd.Timestamp(text)
        except (ValueError, TypeError) as exc:
            raise ContractError(f"{field}: {value!r} is not an ISO-8601 time", field) from exc
    if isinstance(value, datetime) and not isinstance(value, pd.Timestamp):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ContractError(
                f"{field}: naive datetime {value!s} (timestamps must be tz-aware UTC)", field
            )
        return value.astimezone(UTC)
    if isinstance(value, pd.Timestamp) and value is not pd.NaT:
        if value.tzinfo is None:
            raise ContractError(
                f"{field}: naive datetime {value!s} (timestamps must be tz-aware UTC)", field
            )
        return value.tz_convert(UTC).to_pydatetime(warn=False)
    if isinstance(value, np.datetime64):
        raise ContractError(f"{field}: numpy datetime64 carries no timezone (naive)", field)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ContractError(
            f"{field}: numbers are not accepted as times (use tz-aware datetimes)", field
        )
    ts = ensure_utc(value, field)
    return ts.to_pydatetime(warn=False)


def _finite_float(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ContractError(f"{field}: expected a number, got a bool", field)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError as exc:
            raise ContractError(f"{field}: {value!r} is not a number", field) from exc
    if not isinstance(value, (int, float, np.integer, np.floating)):
        raise ContractError(f"{field}: expected a number, got {type(value).__name__}", field)
    out = float(value)
    if not math.isfinite(out):
        raise ContractError(f"{field}: {out} is not finite (NaN/inf are rejected)", field)
    return out


def check_action_weight(action: str | None, weight: float | None) -> None:
    """The signed-weight convention against the action (``+w`` long, ``-w`` short, 0 flat)."""
    if action is None or weight is None:
        return
    side = ENTRY_SIDE.get(action)
    if side == 1 and weight <= 0:
        raise ContractError(
            f"weight: {weight} conflicts with action enter_long (needs weight > 0)", "weight")
    if side == -1 and weight >= 0:
        raise ContractError(
            f"weight: {weight} conflicts with action enter_short (needs weight < 0)", "weight")
    if action in EXIT_ACTIONS and weight != 0:
        raise ContractError(f"weight: {weight} {'>' if weight > 0 else '<'} 0 conflicts with "
                            f"action {action} (an exit wants weight 0)", "weight")


def entry_side(action: str | None, weight: float | None) -> int:
    """+1 / -1 if the signal opens a long / short position, 0 if it does not (or cannot tell)."""
    if action is not None:
        return ENTRY_SIDE.get(action, 0)
    if weight is None or weight == 0:
        return 0
    return 1 if weight > 0 else -1


def check_risk_fields(action: str | None, weight: float | None, leverage: float | None,
                      stop_loss: float | None, take_profit: float | None) -> None:
    """``leverage``/``stop_loss``/``take_profit`` against each other and the entry they belong to.

    Stops and targets are fractions of the entry price (the producer cannot know the fill),
    so they are checked against the leverage and the side, not against a price.
    """
    given = [name for name, value in zip(RISK_FIELDS, (leverage, stop_loss, take_profit),
                                         strict=True) if value is not None]
    if not given:
        return
    side = entry_side(action, weight)
    if side == 0:
        what = f"action {action}" if action is not None else "a signal without an entry"
        raise ContractError(
            f"{given[0]}: only allowed on an entry (enter_long/enter_short, or weight != 0), "
            f"not on {what}", given[0])
    if leverage is not None and not 1.0 <= leverage <= LEVERAGE_MAX:
        raise ContractError(f"leverage: {leverage} is outside [1, {LEVERAGE_MAX:g}]", "leverage")
    lev = 1.0 if leverage is None else leverage
    if stop_loss is not None:
        if stop_loss <= 0:
            raise ContractError(f"stop_loss: {stop_loss} must be > 0 (a fraction of the entry "
                                "price, e.g. 0.05 for a 5 % adverse move)", "stop_loss")
        if stop_loss * lev >= 1:
            raise ContractError(
                f"stop_loss: {stop_loss} x leverage {lev:g} >= 1 (the stop would lie beyond "
                f"the liquidation of the margin; use a stop below {1 / lev:.6g})", "stop_loss")
    if take_profit is not None:
        if take_profit <= 0:
            raise ContractError(f"take_profit: {take_profit} must be > 0 (a fraction of the "
                                "entry price, e.g. 0.1 for a 10 % favourable move)", "take_profit")
        if side == -1 and take_profit >= 1:
            raise ContractError(f"take_profit: {take_profit} >= 1 on a short (the price "
                                "cannot fall below zero)", "take_profit")


def is_futures_pair(pair: str) -> bool:
    """``BTC/USDT:USDT`` (a futures contract settled in USDT) vs spot ``BTC/USDT``."""
    return ":" in pair


def check_market(pair: str, action: str | None, weight: float | None,
                 leverage: float | None) -> None:
    """Shorts and leverage need a futures pair: no Freqtrade spot bot can act on them."""
    if is_futures_pair(pair):
        return
    hint = f"use the futures pair {pair}:{pair.rsplit('/', 1)[-1]}"
    if action in (Action.ENTER_SHORT.value, Action.EXIT_SHORT.value):
        raise ContractError(f"action: {action} on spot pair {pair!r} ({hint})", "action")
    if weight is not None and weight < 0:
        raise ContractError(f"weight: {weight} is outside [0, 1] for spot pair {pair!r} "
                            f"(a negative weight is a short; {hint})", "weight")
    if leverage is not None and leverage != 1:
        raise ContractError(f"leverage: {leverage} on spot pair {pair!r} ({hint})", "leverage")


def _now_from(info: ValidationInfo) -> datetime:
    ctx = info.context or {}
    now = ctx.get("now")
    return _parse_aware(now, "now") if now is not None else datetime.now(UTC)


class SignalDocument(BaseModel):
    """One ``crypto_signals`` document, validated (see the module docstring for the rules).

    Validation context (``model_validate(data, context={...})``): ``align``
    (``"reject"`` default, or ``"ceil"``), ``now`` (tz-aware; for the
    future bound), ``exchange`` and ``quotes`` (symbol mapping).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    ts: datetime
    timeframe: str
    symbol: str | None = None
    pair: str | None = None
    strategy_id: str = Field(min_length=1, max_length=STRATEGY_ID_MAX_LEN)
    action: Action | None = None
    score: float | None = None
    weight: float | None = None
    valid_until: datetime | None = None
    note: str | None = Field(default=None, max_length=NOTE_MAX_LEN)
    source: str | None = Field(default=None, max_length=SOURCE_MAX_LEN)
    version: int = Field(default=1, ge=1)
    extra: dict[str, Any] | None = None
    leverage: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None

    @field_validator("ts", "valid_until", mode="before")
    @classmethod
    def _aware_utc(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        return _parse_aware(value, info.field_name)

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        timeframe_seconds(value)
        return value

    @field_validator("strategy_id")
    @classmethod
    def _strategy_id(cls, value: str) -> str:
        if not STRATEGY_ID_RE.match(value):
            raise ContractError(
                f"strategy_id {value!r} must be 1-64 chars of [A-Za-z0-9_.:-], "
                "starting with a letter or digit"
            )
        return value

    @field_validator("score", "weight", *RISK_FIELDS, mode="before")
    @classmethod
    def _finite(cls, value: Any, info: ValidationInfo) -> Any:
        out = _finite_float(value, info.field_name)
        if info.field_name == "weight" and out is not None and not -1.0 <= out <= 1.0:
            raise ContractError(f"weight: {out} is outside [0, 1] (spot) and [-1, 1] (futures: "
                                "+w long, -w short, 0 flat)", "weight")
        return out

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ContractError("version: expected an integer, got a bool", "version")
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        if isinstance(value, np.integer):
            return int(value)
        return value

    @field_validator("extra")
    @classmethod
    def _extra(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if len(value) > EXTRA_MAX_KEYS:
            raise ContractError(f"extra: {len(value)} keys, at most {EXTRA_MAX_KEYS}", "extra")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not key or "$" in key or "." in key or len(key) > 64:
                raise ContractError(
                    f"extra: key {key!r} must be 1-64 chars without '$' or '.'", "extra"
                )
            if isinstance(item, (bool, str, int)) or item is None:
                if isinstance(item, str) and len(item) > NOTE_MAX_LEN:
                    raise ContractError(
                        f"extra.{key}: string longer than {NOTE_MAX_LEN}", f"extra.{key}"
                    )
                out[key] = item
            elif isinstance(item, (float, np.floating, np.integer)):
                out[key] = _finite_float(item, f"extra.{key}")
            elif isinstance(item, datetime):
                out[key] = _parse_aware(item, f"extra.{key}")
            else:
                raise ContractError(
                    f"extra.{key}: only scalars (str, number, bool, null, datetime) are allowed",
                    f"extra.{key}",
                )
        return out

    @model_validator(mode="after")
    def _cross_field(self, info: ValidationInfo) -> SignalDocument:
        ctx = info.context or {}
        quotes = tuple(ctx.get("quotes") or DEFAULT_QUOTES)
        exchange = ctx.get("exchange") or DEFAULT_EXCHANGE
        try:
            symbol, pair = resolve_symbol_pair(self.symbol, self.pair, exchange, quotes)
        except ContractError as exc:
            field = exc.field or ("pair" if self.pair else "symbol")
            raise ContractError(str(exc), field) from None
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "pair", pair)

        align = check_align(ctx.get("align", "reject"))
        floored = floor_datetime(self.ts, self.timeframe)
        if floored != self.ts:
            if align == "reject":
                raise ContractError(
                    f"ts: {self.ts.isoformat()} is not on the {self.timeframe} bar grid "
                    f"(export with align='ceil' to move it to the next bar open, "
                    f"{(floored + timeframe_delta(self.timeframe)).isoformat()}, the candle "
                    "the strategy acts on)",
                    "ts",
                )
            object.__setattr__(self, "ts", floored + timeframe_delta(self.timeframe))
        step = timeframe_delta(self.timeframe)
        now = _now_from(info)
        if self.ts > now + step:
            raise ContractError(
                f"ts: {self.ts.isoformat()} is more than one {self.timeframe} bar after now "
                f"({now.isoformat()})",
                "ts",
            )
        if self.valid_until is not None and self.valid_until <= self.ts:
            raise ContractError(
                f"valid_until: {self.valid_until.isoformat()} must be after ts "
                f"{self.ts.isoformat()}",
                "valid_until",
            )
        if self.action is None and self.score is None and self.weight is None:
            raise ContractError("action/score/weight: at least one of them is required", "action")
        action = None if self.action is None else self.action.value
        check_market(pair, action, self.weight, self.leverage)
        check_action_weight(action, self.weight)
        check_risk_fields(action, self.weight, self.leverage, self.stop_loss, self.take_profit)
        return self

    def key(self) -> tuple[str, str, str, datetime]:
        """The unique key ``(strategy_id, pair, timeframe, ts)``."""
        return (self.strategy_id, self.pair, self.timeframe, self.ts)  # type: ignore[return-value]

    def to_mongo(self) -> dict[str, Any]:
        """The stored form: producer fields only, ``None`` fields left out, enums as strings."""
        doc = self.model_dump(exclude_none=True)
        if "action" in doc:
            doc["action"] = str(doc["action"])
        return doc

    def to_record(self) -> dict[str, Any]:
        """Every field of :data:`SIGNAL_FIELDS` in order (``None`` when unset), enums as strings.

        The normalised form batch validation and the exporter work with.
        """
        return {
            "ts": self.ts, "timeframe": self.timeframe, "symbol": self.symbol, "pair": self.pair,
            "strategy_id": self.strategy_id,
            "action": None if self.action is None else str(self.action),
            "score": self.score, "weight": self.weight, "valid_until": self.valid_until,
            "note": self.note, "source": self.source, "version": self.version,
            "extra": None if self.extra is None else dict(self.extra),
            "leverage": self.leverage, "stop_loss": self.stop_loss,
            "take_profit": self.take_profit,
        }


def document_from_stored(
    stored: dict[str, Any],
    *,
    now: datetime | None = None,
    exchange: str = DEFAULT_EXCHANGE,
    quotes: tuple[str, ...] = DEFAULT_QUOTES,
) -> SignalDocument:
    """Re-validate a document read from ``crypto_signals`` (readers should not trust storage).

    Drops the exporter's bookkeeping fields and ``null`` values, then applies
    the same rules as at export; raises ``pydantic.ValidationError`` naming the
    field when a stored document breaks the contract.
    """
    data = {k: v for k, v in stored.items() if k not in STORED_ONLY_FIELDS and v is not None}
    ctx = validation_context(align="reject", now=now, exchange=exchange, quotes=quotes)
    return SignalDocument.model_validate(data, context=ctx)


def check_align(align: Any) -> Align:
    """``align`` itself, or a ContractError that says what the choices are (and why not floor)."""
    if align == "floor":
        raise ContractError("align='floor' was removed: it moved a signal onto a candle that "
                            "opened before the signal existed; use align='ceil' (next bar "
                            "open, the candle the strategy acts on)", "ts")
    if align not in ALIGN_CHOICES:
        raise ContractError(f"align must be one of {list(ALIGN_CHOICES)}, not {align!r}", "ts")
    return align


def validation_context(
    *,
    align: Align = "reject",
    now: datetime | None = None,
    exchange: str = DEFAULT_EXCHANGE,
    quotes: tuple[str, ...] = DEFAULT_QUOTES,
) -> dict[str, Any]:
    """The context dict :class:`SignalDocument` reads (one place to spell its keys)."""
    return {"align": align, "now": now, "exchange": exchange, "quotes": tuple(quotes)}


# --- frames ---------------------------------------------------------------


def signal_frame_columns() -> dict[str, str]:
    """Column name -> pandas dtype for a signal DataFrame generators can build.

    ``extra`` is an object column of dicts (or use ``extra.<name>`` columns,
    which the exporter folds into ``extra``). NaN/None in a cell means "not set".
    """
    return {
        "ts": "datetime64[ns, UTC]",
        "timeframe": "object",
        "symbol": "object",
        "pair": "object",
        "strategy_id": "object",
        "action": "object",
        "score": "float64",
        "weight": "float64",
        "valid_until": "datetime64[ns, UTC]",
        "note": "object",
        "source": "object",
        "version": "Int64",
        "extra": "object",
        "leverage": "float64",
        "stop_loss": "float64",
        "take_profit": "float64",
    }


def empty_signal_frame() -> pd.DataFrame:
    """An empty frame with :func:`signal_frame_columns` dtypes."""
    return pd.DataFrame(
        {name: pd.Series(dtype=dtype) for name, dtype in signal_frame_columns().items()}
    )
