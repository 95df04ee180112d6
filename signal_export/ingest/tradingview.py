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
  ``sell``/``exit``/``close``/``exit_long`` -> ``exit_long``; ``enter_short``/
  ``sell_short`` -> ``enter_short``; ``exit_short``/``close_short``/``cover`` ->
  ``exit_short`` (case-insensitive; a bare ``short`` is refused as ambiguous).
  Optional when ``weight`` or ``score`` is given. Instead of ``action``:
  ``market_position`` (``{{strategy.market_position}}``: long/short/flat, the side
  after the order) with optional ``prev_market_position`` (which side a flat closes).
* ``leverage``, ``stop_loss``/``take_profit`` (fractions of the entry price, the
  contract's form), or ``stop_loss_pct``/``take_profit_pct`` (percent), or
  ``stop_price``/``take_profit_price`` (absolute, converted with ``price``): see
  the mapping table in ``signal_export/ingest/README.md``. Shorts and leverage
  need a futures ticker (``BINANCE:BTCUSDT.P``).
* ``timeframe``: a contract timeframe (``1h``) or TradingView's ``{{interval}}``
  (``1``, ``60``, ``240``, ``D``, ``1D``, ``W``) -> ``1m``, ``1h``, ``4h``,
  ``1d``, ``1d``, ``1w``.
* ``time``: when the alert fired, ISO-8601 with an offset (``{{timenow}}`` gives
  ``2026-11-23T10:00:02Z``); absent -> the time the server received it. The bar
  is derived by the grace-window rule below.
* ``bar_time``: instead of ``time``, the open time of the bar the alert is about
  (TradingView's ``{{time}}``); it becomes ``ts`` as is. It must be a bar open of
  the timeframe and not after the receive time. Giving both is an error.
* ``weight``, ``score``, ``note`` (or ``comment``), ``valid_until``, ``version``,
  ``extra`` as in the contract; ``price`` (e.g. ``{{close}}``) -> ``extra.price``.

Tokens (``ticker``, ``exchange``, ``timeframe``, ``action``) are taken exactly:
surrounding whitespace, control characters or non-ASCII are errors naming the
field, never stripped (a value the producer did not mean must not be stored).
Case is folded (``binance:btcusdt`` -> ``BINANCE:BTCUSDT``, ``1d`` = ``1D``).

**Bar ``ts`` and the grace window.** A signal's ``ts`` is the open time of the
bar it belongs to (SPEC §2, §5a). With ``t`` = ``time`` (or the receive time),
``r`` = the receive time, ``b`` = the open of the bar containing ``t`` and
``g`` = the grace window (default 5 s)::

    bar_time given               ->  ts = bar_time    (must be on the grid, <= r)
    t - b <  g  and  r - t <  g  ->  ts = b - timeframe   (the bar that just closed)
    t - b <  g  and  r - t >= g  ->  rejected, naming ``time`` (looks like {{time}})
    t - b >= g                   ->  ts = b               (the bar in progress)

Example, 1h, g = 5 s: 11:00:03 received 11:00:04 -> 10:00 (an alert fired by
the 10:00 bar's close, delivered promptly); 11:00:05 -> 11:00; 10:40 -> 10:00.
The strategy evaluates row ``ts`` after that bar closes and fills at the next
open, so a signal is never used before it existed, except inside the grace
window: an alert at 11:00:03 acts on row 10:00, which backtesting fills at
11:00:00, up to ``g`` seconds before the alert. That is the only such case and
it is bounded by ``g``: keep it small (configurable, 0 turns it off and with
it the rejection rule).

Why the rejection: TradingView's ``{{time}}`` is the *open* time of the alert's
bar, so it always lies on a bar boundary, inside the grace window, and the rule
above would file the alert one bar too early (a silent one-bar lookahead in
backtests). A ``{{timenow}}`` inside the window arrives within seconds; a
``time`` that is on a boundary but already ``g`` or more old on arrival is
almost certainly ``{{time}}`` (or a replay), and is refused with a message
pointing to ``{{timenow}}`` or ``bar_time``. Safe templates: ``"time":
"{{timenow}}"``, or ``"bar_time": "{{time}}"``.

Not for: HTTP or storage; the result is a plain dict that the contract validates.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from signal_export.contract import (
    _EXCHANGE_RE,
    DEFAULT_EXCHANGE,
    DEFAULT_QUOTES,
    Action,
    ContractError,
    ensure_utc,
    entry_side,
    floor_to_bar,
    symbol_to_pair,
    timeframe_delta,
    timeframe_seconds,
)

DEFAULT_GRACE_SECONDS = 5.0

BUY_WORDS = frozenset({"buy", "long", "enter_long", "enter"})
SELL_WORDS = frozenset({"sell", "exit", "close", "exit_long", "flat", "close_long"})
#: Shorts need explicit words: a bare "short" is refused (enter a short, or be short?).
SHORT_WORDS = frozenset({"enter_short", "sell_short"})
COVER_WORDS = frozenset({"exit_short", "close_short", "cover", "buy_to_cover"})
_ACTION_WORDS: dict[str, Action] = {
    **dict.fromkeys(BUY_WORDS, Action.ENTER_LONG), **dict.fromkeys(SELL_WORDS, Action.EXIT_LONG),
    **dict.fromkeys(SHORT_WORDS, Action.ENTER_SHORT),
    **dict.fromkeys(COVER_WORDS, Action.EXIT_SHORT),
}
#: TradingView ``{{strategy.market_position}}`` values.
MARKET_POSITIONS = ("long", "short", "flat")
#: Alternative forms of the contract's stop_loss / take_profit (fractions of the entry price).
RISK_FORMS: dict[str, tuple[str, str, str]] = {
    # contract field: (fraction, percent, absolute price)
    "stop_loss": ("stop_loss", "stop_loss_pct", "stop_price"),
    "take_profit": ("take_profit", "take_profit_pct", "take_profit_price"),
}

# Full-match patterns (\A...\Z with fullmatch): ``$`` would let a trailing newline through.
_TV_MINUTES_RE = re.compile(r"\A[1-9][0-9]*\Z")
_TV_UNIT_RE = re.compile(r"\A(?P<n>[1-9][0-9]*)?(?P<unit>[DWdw])\Z")
#: A token field: visible ASCII only, so no whitespace, control or look-alike characters.
_TOKEN_RE = re.compile(r"\A[!-~]+\Z")
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
    time: str | None = Field(default=None, description="when the alert fired, ISO-8601 with "
                                                       "offset ({{timenow}}; not {{time}}, which "
                                                       "goes in bar_time); default: receive time")
    bar_time: str | None = Field(default=None, description="instead of time: open time of the "
                                                           "bar the alert is about, ISO-8601 "
                                                           "with offset ({{time}}); becomes ts")
    exchange: str | None = None
    market_position: str | None = Field(
        default=None, description="instead of action: {{strategy.market_position}} "
                                  "(long|short|flat), the side wanted after the alert")
    prev_market_position: str | None = Field(
        default=None, description="with market_position flat: {{strategy.prev_market_position}}"
                                  " says which side is closed (exit_long/exit_short)")
    leverage: float | None = None
    stop_loss: float | None = Field(default=None, description="fraction of the entry price")
    stop_loss_pct: float | None = Field(default=None, description="percent of the entry price")
    stop_price: float | None = Field(default=None, description="absolute stop; needs price")
    take_profit: float | None = Field(default=None, description="fraction of the entry price")
    take_profit_pct: float | None = Field(default=None, description="percent of the entry price")
    take_profit_price: float | None = Field(default=None, description="absolute target; needs "
                                                                      "price")
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


def tv_token(value: str, field: str) -> str:
    """``value`` itself if it is visible ASCII, else an error naming ``field``.

    Never strips: ``"60\\n"`` or ``" BTCUSDT"`` is a template bug the producer should see,
    not something to guess at.
    """
    if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
        raise ContractError(f"{field}: {value!r} must be non-empty visible ASCII, without "
                            "spaces or control characters (nothing is stripped)", field)
    return value


def tv_timeframe(interval: str) -> str:
    """TradingView ``{{interval}}`` (``60``, ``1D``, ``W``) or a contract timeframe -> contract."""
    text = tv_token(interval, "timeframe")
    if _TV_MINUTES_RE.fullmatch(text):
        minutes = int(text)
        tf = f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
    elif m := _TV_UNIT_RE.fullmatch(text):
        tf = f"{m['n'] or 1}{m['unit'].lower()}"
    else:
        tf = text
    timeframe_seconds(tf)  # the contract decides what is valid
    return tf


def tv_action(word: str) -> Action:
    """``buy`` -> enter_long, ``sell`` -> exit_long, ``enter_short``/``sell_short`` ->
    enter_short, ``exit_short``/``cover`` -> exit_short (and synonyms, case-insensitive)."""
    text = tv_token(word, "action").lower()
    if text in _ACTION_WORDS:
        return _ACTION_WORDS[text]
    hint = " (a bare 'short' is ambiguous: enter_short or exit_short)" if text == "short" else ""
    raise ContractError(f"action: {word!r} is not one of {sorted(_ACTION_WORDS)}{hint}",
                        "action")


def tv_market_position(position: str, previous: str | None) -> tuple[str | None, float | None]:
    """``{{strategy.market_position}}`` -> (action, weight): long -> enter_long, short ->
    enter_short, flat -> exit_long/exit_short after ``previous`` long/short, else weight 0."""
    text = tv_token(position, "market_position").lower()
    if text not in MARKET_POSITIONS:
        raise ContractError(f"market_position: {position!r} is not one of "
                            f"{list(MARKET_POSITIONS)}", "market_position")
    prev = None
    if previous is not None:
        prev = tv_token(previous, "prev_market_position").lower()
        if prev not in MARKET_POSITIONS:
            raise ContractError(f"prev_market_position: {previous!r} is not one of "
                                f"{list(MARKET_POSITIONS)}", "prev_market_position")
    if text == "long":
        return Action.ENTER_LONG.value, None
    if text == "short":
        return Action.ENTER_SHORT.value, None
    if prev == "long":
        return Action.EXIT_LONG.value, None
    if prev == "short":
        return Action.EXIT_SHORT.value, None
    return None, 0.0


def tv_risk(alert: TradingViewAlert, side: int) -> dict[str, float]:
    """``stop_loss``/``take_profit`` as the contract's fractions of the entry price, from one of
    three forms: a fraction, a percent (``_pct``), or an absolute price converted with the
    alert's ``price`` (the stop's *distance* is kept; the entry fills later, at the next open).
    """
    out: dict[str, float] = {}
    for field, names in RISK_FORMS.items():
        given = [(n, getattr(alert, n)) for n in names if getattr(alert, n) is not None]
        if not given:
            continue
        if len(given) > 1:
            raise ContractError(f"{given[1][0]}: give one of {', '.join(names)}, not "
                                f"{' and '.join(n for n, _ in given)}", given[1][0])
        name, value = given[0]
        if name == names[0]:
            out[field] = value
        elif name == names[1]:
            out[field] = value / 100.0
        else:
            if alert.price is None or not alert.price > 0:
                raise ContractError(f"{name}: an absolute price needs the alert's price "
                                    "(e.g. \"price\": {{close}}) to become a fraction", name)
            if side == 0:
                raise ContractError(f"{name}: an absolute price needs an entry side (action "
                                    "enter_long/enter_short or market_position long/short)",
                                    name)
            sign = -1 if field == "stop_loss" else 1
            frac = sign * side * (value - alert.price) / alert.price
            if not frac > 0:
                where = "below" if (sign * side) < 0 else "above"
                raise ContractError(f"{name}: {value} must lie {where} the price {alert.price} "
                                    f"for a {'long' if side > 0 else 'short'}", name)
            out[field] = frac
    return out


def tv_pair(ticker: str, exchange: str | None, default_exchange: str = DEFAULT_EXCHANGE,
            quotes: tuple[str, ...] = DEFAULT_QUOTES) -> tuple[str, str]:
    """``(symbol, pair)`` of a TradingView ticker; ``.P`` -> ``BASE/QUOTE:QUOTE``.

    ``exchange`` is checked whenever given (even when the ticker names its own), so a
    malformed value is never silently ignored.
    """
    text = tv_token(ticker, "ticker").upper()
    if exchange is not None:
        exchange = tv_token(exchange, "exchange").upper()
        if not _EXCHANGE_RE.fullmatch(exchange):
            raise ContractError(f"exchange: {exchange!r} must be letters, digits or '_'",
                                "exchange")
    if ":" not in text:
        text = f"{(exchange or default_exchange).upper()}:{text}"
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


def bar_ts_from_bar_time(text: str, timeframe: str, received_at: datetime) -> datetime:
    """``bar_time`` (TradingView's ``{{time}}``) -> ``ts``: it must be a bar open of
    ``timeframe`` that is not after ``received_at`` (a bar that has not opened yet is a
    clock or template bug)."""
    bar = parse_alert_time(text, "bar_time")
    bar_open = floor_to_bar(bar, timeframe).to_pydatetime(warn=False)
    if bar != bar_open:
        raise ContractError(
            f"bar_time: {bar.isoformat()} is not the open time of a {timeframe} bar (that bar "
            f"opened at {bar_open.isoformat()}); bar_time takes TradingView's {{{{time}}}}, "
            "the bar's open time; for when the alert fired send time: {{timenow}}",
            "bar_time")
    received = ensure_utc(received_at, "received_at").to_pydatetime(warn=False)
    if bar > received:
        raise ContractError(
            f"bar_time: {bar.isoformat()} is after the time the alert was received "
            f"({received.isoformat()}): that bar has not opened yet", "bar_time")
    return bar


def check_alert_time(fired: datetime, received_at: datetime, timeframe: str,
                     grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
    """Refuse a ``time`` that looks like TradingView's ``{{time}}`` (module docstring).

    Inside the grace window of a bar open (``t - b < g``) the grace rule files the alert on
    the previous bar; that is right for a ``{{timenow}}`` delivered within seconds, but a
    bar's open time sent as ``time`` arrives one bar (or part of one) later and would be
    filed a bar too early: a silent lookahead. So such a ``time`` that is already ``g``
    old on arrival (``r - t >= g``) is an error naming ``time``.
    """
    grace = timedelta(seconds=grace_seconds)
    t = ensure_utc(fired, "time").to_pydatetime(warn=False)
    received = ensure_utc(received_at, "received_at").to_pydatetime(warn=False)
    bar_open = floor_to_bar(t, timeframe).to_pydatetime(warn=False)
    if t - bar_open < grace and received - t >= grace:
        late = (received - t).total_seconds()
        late_text = f"{late:.1f} s" if late < 3600 else f"{late / 3600:.1f} h"
        raise ContractError(
            f"time: {t.isoformat()} is within the {grace_seconds:g} s grace window after the "
            f"{timeframe} bar open {bar_open.isoformat()} (so it would be filed on the previous "
            f"bar) but it was received {late_text} later: that is "
            "what TradingView's {{time}} (the bar's open time) looks like, and filing it would "
            "put the signal a bar early (lookahead). Send \"time\": \"{{timenow}}\" (when the "
            "alert fired), or the bar's open time as \"bar_time\": \"{{time}}\"", "time")


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
    if alert.bar_time is not None:
        if alert.time is not None:
            raise ContractError("bar_time: give either time ({{timenow}}, when the alert "
                                "fired) or bar_time ({{time}}, the bar's open time), not both",
                                "bar_time")
        ts = bar_ts_from_bar_time(alert.bar_time, timeframe, received_at)
    elif alert.time is not None:
        fired = parse_alert_time(alert.time)
        check_alert_time(fired, received_at, timeframe, grace_seconds)
        ts = bar_ts_for_alert(fired, timeframe, grace_seconds)
    else:  # no time given: the receive time is the alert time
        ts = bar_ts_for_alert(received_at, timeframe, grace_seconds)
    doc: dict[str, Any] = {
        "ts": ts.astimezone(UTC),
        "timeframe": timeframe, "symbol": symbol, "pair": pair,
        "strategy_id": alert.strategy_id,
    }
    if alert.action is not None and alert.market_position is not None:
        raise ContractError("market_position: give either action or market_position, not both",
                            "market_position")
    if alert.prev_market_position is not None and alert.market_position is None:
        raise ContractError("prev_market_position: only with market_position",
                            "prev_market_position")
    if alert.action is not None:
        doc["action"] = str(tv_action(alert.action))
    elif alert.market_position is not None:
        action, weight = tv_market_position(alert.market_position, alert.prev_market_position)
        if action is not None:
            doc["action"] = action
        if weight is not None and alert.weight is None:
            doc["weight"] = weight
    side = entry_side(doc.get("action"), doc.get("weight", alert.weight))
    doc.update(tv_risk(alert, side))
    if alert.leverage is not None:
        doc["leverage"] = alert.leverage
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
        extra.setdefault("alert_time", parse_alert_time(alert.time).isoformat())
    if extra:
        doc["extra"] = extra
    return doc


def _named(fn: Any, field: str) -> Any:
    try:
        return fn()
    except ContractError as exc:
        raise ContractError(str(exc), exc.field or field) from None
