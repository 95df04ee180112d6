"""TradingView-style alert bodies -> contract signal documents, with the bar ``ts`` derived.

An alert message (TradingView "Webhook URL" + a JSON message) looks like::

    {"ticker": "{{exchange}}:{{ticker}}", "action": "{{strategy.order.action}}",
     "time": "{{timenow}}", "strategy_id": "tv_trend_1h", "timeframe": "{{interval}}",
     "weight": 0.5}

Mapping (every other key is an error naming it; put anything else under ``extra``):

* ``ticker`` -> ``symbol``: ``BINANCE:BTCUSDT`` as is; a bare ``BTCUSDT`` gets
  ``exchange`` (or the server's default exchange) in front; TradingView's
  perpetual suffix ``.P`` (``BINANCE:BTCUSDT.P``) becomes the linear futures
  pair ``BTC/USDT:USDT``. The split into base/quote is the contract's.
* ``action``: ``buy``/``long``/``enter_long`` -> ``enter_long``;
  ``sell``/``exit``/``close``/``exit_long`` -> ``exit_long`` (case-insensitive).
  Optional when ``weight`` or ``score`` is given.
* ``timeframe``: a contract timeframe (``1h``) or TradingView's ``{{interval}}``
  (``1``, ``60``, ``240``, ``D``, ``1D``, ``W``) -> ``1m``, ``1h``, ``4h``,
  ``1d``, ``1d``, ``1w``.
* ``time``: when the alert fired, ISO-8601 with an offset (``{{timenow}}`` gives
  ``2026-11-23T10:00:02Z``); absent -> the time the server received it.
* ``weight``, ``score``, ``note`` (or ``comment``), ``valid_until``, ``version``,
  ``extra`` as in the contract; ``price`` (e.g. ``{{close}}``) -> ``extra.price``.

**Bar ``ts`` and the grace window.** A signal's ``ts`` is the open time of the
bar it belongs to (SPEC §2, §5a). With ``b`` = the open of the bar containing
the alert time ``t`` and ``g`` = the grace window (default 5 s)::

    t - b <  g  ->  ts = b - timeframe   (the bar that just closed)
    t - b >= g  ->  ts = b               (the bar in progress)

Example, 1h, g = 5 s: 11:00:03 -> 10:00 (an alert fired by the 10:00 bar's
close and delivered 3 s late); 11:00:05 -> 11:00; 10:40 -> 10:00. The
strategy evaluates row ``ts`` after that bar closes and fills at the next
open, so a signal is never used before it existed, except inside the grace
window: an alert at 11:00:03 acts on row 10:00, which backtesting fills at
11:00:00, up to ``g`` seconds before the alert. That is the only such case and
it is bounded by ``g``: keep it small (configurable, 0 turns it off).
Use ``{{timenow}}``, not ``{{time}}`` (the bar's open time, which would fall
inside the grace window and be read as the previous bar).

Not for: HTTP or storage; the result is a plain dict that the contract validates.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from signal_export.contract import (
    DEFAULT_EXCHANGE,
    DEFAULT_QUOTES,
    Action,
    ContractError,
    ensure_utc,
    floor_to_bar,
    symbol_to_pair,
    timeframe_delta,
    timeframe_seconds,
)

DEFAULT_GRACE_SECONDS = 5.0

BUY_WORDS = frozenset({"buy", "long", "enter_long", "enter"})
SELL_WORDS = frozenset({"sell", "exit", "close", "exit_long", "flat"})

_TV_MINUTES_RE = re.compile(r"^[1-9][0-9]*$")
_TV_UNIT_RE = re.compile(r"^(?P<n>[1-9][0-9]*)?(?P<unit>[DW])$", re.IGNORECASE)
_TV_PERP_SUFFIX = ".P"


class TradingViewAlert(BaseModel):
    """The documented TradingView alert body (see the module docstring for the mapping)."""

    model_config = ConfigDict(extra="forbid")

    ticker: str = Field(description="EXCHANGE:BASEQUOTE, or BASEQUOTE with `exchange`; "
                                    "a `.P` suffix means the linear perpetual")
    strategy_id: str
    timeframe: str = Field(description="contract timeframe (1h) or TradingView interval (60, 1D)")
    action: str | None = Field(default=None, description="buy|sell (also long/exit/enter_long/"
                                                         "exit_long)")
    time: str | None = Field(default=None, description="alert time, ISO-8601 with offset "
                                                       "({{timenow}}); default: receive time")
    exchange: str | None = None
    weight: float | None = None
    score: float | None = None
    price: float | None = None
    note: str | None = None
    comment: str | None = None
    valid_until: str | None = None
    version: int | None = None
    extra: dict[str, Any] | None = None


def is_tradingview_body(item: Any) -> bool:
    """An item is read as a TradingView alert when it has a ``ticker`` key."""
    return isinstance(item, dict) and "ticker" in item


def tv_timeframe(interval: str) -> str:
    """TradingView ``{{interval}}`` (``60``, ``1D``, ``W``) or a contract timeframe -> contract."""
    text = interval.strip()
    if _TV_MINUTES_RE.match(text):
        minutes = int(text)
        tf = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
    elif m := _TV_UNIT_RE.match(text):
        tf = f"{m['n'] or 1}{m['unit'].lower()}"
    else:
        tf = text
    timeframe_seconds(tf)  # the contract decides what is valid
    return tf


def tv_action(word: str) -> Action:
    """``buy`` -> enter_long, ``sell`` -> exit_long (and synonyms, case-insensitive)."""
    text = word.strip().lower()
    if text in BUY_WORDS:
        return Action.ENTER_LONG
    if text in SELL_WORDS:
        return Action.EXIT_LONG
    raise ContractError(f"action: {word!r} is not one of {sorted(BUY_WORDS | SELL_WORDS)}",
                        "action")


def tv_pair(ticker: str, exchange: str | None, default_exchange: str = DEFAULT_EXCHANGE,
            quotes: tuple[str, ...] = DEFAULT_QUOTES) -> tuple[str, str]:
    """``(symbol, pair)`` of a TradingView ticker; ``.P`` -> ``BASE/QUOTE:QUOTE``."""
    text = ticker.strip().upper()
    if ":" not in text:
        text = f"{(exchange or default_exchange).strip().upper()}:{text}"
    perp = text.endswith(_TV_PERP_SUFFIX)
    spot_symbol = text[: -len(_TV_PERP_SUFFIX)] if perp else text
    try:
        pair = symbol_to_pair(spot_symbol, quotes)
    except ContractError as exc:
        raise ContractError(f"ticker: {exc}", "ticker") from None
    if not perp:
        return spot_symbol, pair
    quote = pair.split("/", 1)[1]
    return f"{spot_symbol}.{quote}", f"{pair}:{quote}"


def parse_alert_time(text: str, field: str = "time") -> datetime:
    """ISO-8601 with an offset -> UTC datetime; naive or unparsable is an error naming ``field``."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ContractError(f"{field}: {text!r} is not an ISO-8601 time", field) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ContractError(f"{field}: {text!r} has no UTC offset (add Z or +00:00)", field)
    return ensure_utc(value, field).to_pydatetime(warn=False)


def bar_ts_for_alert(alert_time: datetime, timeframe: str,
                     grace_seconds: float = DEFAULT_GRACE_SECONDS) -> datetime:
    """The bar an alert belongs to: the one that just closed inside the grace window, else
    the one in progress (module docstring)."""
    if grace_seconds < 0:
        raise ValueError(f"grace_seconds must be >= 0, got {grace_seconds}")
    bar_open = floor_to_bar(alert_time, timeframe).to_pydatetime(warn=False)
    if ensure_utc(alert_time).to_pydatetime(warn=False) - bar_open < timedelta(
            seconds=grace_seconds):
        return bar_open - timeframe_delta(timeframe)
    return bar_open


def alert_to_document(alert: TradingViewAlert, *, received_at: datetime,
                      grace_seconds: float = DEFAULT_GRACE_SECONDS,
                      default_exchange: str = DEFAULT_EXCHANGE,
                      quotes: tuple[str, ...] = DEFAULT_QUOTES) -> dict[str, Any]:
    """A contract-shaped dict (on-grid ``ts``) for the contract to validate."""
    timeframe = _named(lambda: tv_timeframe(alert.timeframe), "timeframe")
    symbol, pair = tv_pair(alert.ticker, alert.exchange, default_exchange, quotes)
    fired = parse_alert_time(alert.time) if alert.time is not None else received_at
    doc: dict[str, Any] = {
        "ts": bar_ts_for_alert(fired, timeframe, grace_seconds).astimezone(UTC),
        "timeframe": timeframe, "symbol": symbol, "pair": pair,
        "strategy_id": alert.strategy_id,
    }
    if alert.action is not None:
        doc["action"] = str(tv_action(alert.action))
    for name in ("weight", "score", "version", "valid_until"):
        value = getattr(alert, name)
        if value is not None:
            doc[name] = value
    if alert.note is not None and alert.comment is not None:
        raise ContractError("comment: give either note or comment, not both", "comment")
    note = alert.note if alert.note is not None else alert.comment
    if note is not None:
        doc["note"] = note
    extra = dict(alert.extra or {})
    if alert.price is not None:
        if "price" in extra:
            raise ContractError("price: given both as price and as extra.price", "price")
        extra["price"] = alert.price
    if alert.time is not None:
        extra.setdefault("alert_time", fired.isoformat())
    if extra:
        doc["extra"] = extra
    return doc


def _named(fn: Any, field: str) -> Any:
    try:
        return fn()
    except ContractError as exc:
        raise ContractError(str(exc), exc.field or field) from None
