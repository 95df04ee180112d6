"""The bad-input corpus: each entry is one defect, the field its error must name, and what
the strategy's read path must do when someone writes the same defect into MongoDB directly.

Signal documents (:data:`BAD_SIGNALS`) are built around one good document
(:func:`good_signal`) with one thing broken. ``reader`` is the outcome when the
document bypasses the exporter and sits in ``crypto_signals``:

* ``malformed``: read, counted as malformed, warned once, never acted on;
* ``not_read``: excluded by the read query itself (wrong pair/timeframe/ts type),
  so never acted on and never counted;
* ``pending``: a future ``ts``: read, counted ``pending``, not acted on;
* ``acted``: the read path acts on it by design (off-grid ``ts`` applies to the
  next row, SPEC §5a; a naive datetime is stored by BSON as UTC; fields the
  reader does not project, e.g. an oversized ``note``);
* ``None``: cannot be written as-is (not BSON-encodable, or refused by the unique
  index) so only the export path applies.

Market candles (:data:`BAD_CANDLES`), files (:data:`BAD_FILES`) and configs
(:data:`BAD_ENV_SETTINGS`, :data:`BAD_EXT_SIGNALS`) each carry the text the
error must contain. Not a test module: the tests import these lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

#: Simulated "now" of the export side and the bar the bad documents are for.
T = datetime(2026, 1, 5, 8, tzinfo=UTC)
NOW = T + timedelta(hours=2)
H = timedelta(hours=1)
BAD_PAIR = "SOL/USDT"
STRATEGY = "rel"


def good_signal(ts: datetime = T, pair: str = BAD_PAIR, **fields: Any) -> dict[str, Any]:
    doc = {"ts": ts, "timeframe": "1h", "pair": pair, "strategy_id": STRATEGY,
           "action": "enter_long", "version": 1}
    doc.update(fields)
    return doc


def _without(*names: str, **fields: Any) -> dict[str, Any]:
    doc = good_signal(**fields)
    for name in names:
        doc.pop(name)
    return doc


@dataclass(frozen=True)
class BadSignal:
    name: str
    doc: Any
    field: str
    reader: str | None


BAD_SIGNALS: tuple[BadSignal, ...] = (
    # missing required fields
    BadSignal("missing ts", _without("ts"), "ts", "not_read"),
    BadSignal("missing timeframe", _without("timeframe"), "timeframe", "not_read"),
    BadSignal("missing strategy_id", _without("strategy_id"), "strategy_id", "not_read"),
    BadSignal("missing pair and symbol", _without("pair"), "symbol", "not_read"),
    BadSignal("missing action, score and weight", _without("action"), "action", "malformed"),
    # wrong types
    BadSignal("ts as epoch number", good_signal(ts=1767600000), "ts", "not_read"),
    BadSignal("ts as ISO string without offset", good_signal(ts="2026-01-05T08:00:00"), "ts",
              "not_read"),
    BadSignal("ts as an impossible date", good_signal(ts="2026-13-05T08:00:00Z"), "ts",
              "not_read"),
    BadSignal("ts explicitly null", good_signal(ts=None), "ts", "not_read"),
    BadSignal("ts as numpy datetime64", good_signal(ts=np.datetime64("2026-01-05T08:00")), "ts",
              None),
    BadSignal("timeframe as a number", good_signal(timeframe=60), "timeframe", "not_read"),
    BadSignal("timeframe not dividing a day", good_signal(timeframe="7m"), "timeframe",
              "not_read"),
    BadSignal("timeframe unknown unit", good_signal(timeframe="1x"), "timeframe", "not_read"),
    BadSignal("strategy_id as a number", good_signal(strategy_id=7), "strategy_id", "not_read"),
    BadSignal("strategy_id empty", good_signal(strategy_id=""), "strategy_id", "not_read"),
    BadSignal("strategy_id with a space", good_signal(strategy_id="my model"), "strategy_id",
              "not_read"),
    BadSignal("strategy_id of 65 chars", good_signal(strategy_id="s" * 65), "strategy_id",
              "not_read"),
    BadSignal("score as text", good_signal(action=None, score="high"), "score", "malformed"),
    BadSignal("score as bool", good_signal(action=None, score=True), "score", "malformed"),
    BadSignal("version zero", good_signal(version=0), "version", "malformed"),
    BadSignal("version as text", good_signal(version="v2"), "version", "malformed"),
    BadSignal("version fractional", good_signal(version=1.5), "version", "malformed"),
    BadSignal("version as bool", good_signal(version=True), "version", "malformed"),
    # naive and other-timezone datetimes
    BadSignal("ts naive datetime", good_signal(ts=T.replace(tzinfo=None)), "ts", "acted"),
    BadSignal("ts 08:00 in +05:30 is 02:30 UTC, off the grid",
              good_signal(ts=datetime(2026, 1, 5, 8, tzinfo=timezone(timedelta(hours=5.5)))),
              "ts", "acted"),
    BadSignal("valid_until naive", good_signal(valid_until=(T + 3 * H).replace(tzinfo=None)),
              "valid_until", "acted"),
    BadSignal("valid_until as text", good_signal(valid_until="tomorrow"), "valid_until",
              "malformed"),
    # NaN / inf
    BadSignal("score NaN", good_signal(action=None, score=float("nan")), "score", "malformed"),
    BadSignal("score +inf", good_signal(action=None, score=float("inf")), "score", "malformed"),
    BadSignal("score -inf", good_signal(action=None, score=float("-inf")), "score", "malformed"),
    BadSignal("weight NaN", good_signal(action=None, weight=float("nan")), "weight", "malformed"),
    BadSignal("weight inf", good_signal(action=None, weight=float("inf")), "weight", "malformed"),
    BadSignal("extra value NaN", good_signal(extra={"stop_loss": float("nan")}),
              "extra.stop_loss", "acted"),
    # time rules
    BadSignal("off-grid ts", good_signal(ts=T - timedelta(minutes=20)), "ts", "acted"),
    BadSignal("future ts beyond one bar", good_signal(ts=NOW + 2 * H), "ts", "pending"),
    BadSignal("valid_until equal to ts", good_signal(valid_until=T), "valid_until", "malformed"),
    BadSignal("valid_until before ts", good_signal(valid_until=T - H), "valid_until",
              "malformed"),
    # actions and weights
    BadSignal("unknown action", good_signal(action="buy"), "action", "malformed"),
    BadSignal("action in capitals", good_signal(action="ENTER_LONG"), "action", "malformed"),
    BadSignal("action as a number", good_signal(action=1), "action", "malformed"),
    BadSignal("exit_long with weight > 0", good_signal(action="exit_long", weight=0.7), "weight",
              "malformed"),
    BadSignal("enter_long with weight 0", good_signal(action="enter_long", weight=0.0), "weight",
              "malformed"),
    BadSignal("weight above 1", good_signal(action=None, weight=1.5), "weight", "malformed"),
    BadSignal("weight below -1", good_signal(action=None, weight=-1.1), "weight", "malformed"),
    # shorts on a spot pair: a spot bot cannot short (the short's flip would close a long)
    BadSignal("enter_short on a spot pair", good_signal(action="enter_short"), "action",
              "malformed"),
    BadSignal("exit_short on a spot pair", good_signal(action="exit_short"), "action",
              "malformed"),
    BadSignal("negative weight on a spot pair", good_signal(action=None, weight=-0.5),
              "weight", "malformed"),
    # pairs and symbols
    BadSignal("pair without slash", good_signal(pair="SOLUSDT"), "pair", "not_read"),
    BadSignal("pair with unknown quote", good_signal(pair="SOL/XYZ"), "pair", "not_read"),
    BadSignal("pair in lower case", good_signal(pair="sol/usdt"), "pair", "not_read"),
    BadSignal("ambiguous pair", good_signal(pair="BTCB/USD"), "pair", "not_read"),
    BadSignal("symbol without exchange", _without("pair", symbol="SOLUSDT"), "symbol",
              "not_read"),
    BadSignal("symbol with unknown quote", _without("pair", symbol="BINANCE:SOLXYZ"), "symbol",
              "not_read"),
    BadSignal("symbol and pair disagree", good_signal(symbol="BINANCE:ETHUSDT"), "pair", "acted"),
    # sizes and shapes
    BadSignal("note of 1001 chars", good_signal(note="n" * 1001), "note", "acted"),
    BadSignal("source of 201 chars", good_signal(source="s" * 201), "source", "acted"),
    BadSignal("unknown top-level field", good_signal(stop_loss=61000.0), "stop_loss", "acted"),
    BadSignal("extra with a nested dict", good_signal(extra={"levels": {"sl": 1.0}}),
              "extra.levels", "acted"),
    BadSignal("extra key with a dollar", good_signal(extra={"$set": 1}), "extra", None),
    BadSignal("extra with 33 keys", good_signal(extra={f"k{i}": i for i in range(33)}), "extra",
              "acted"),
    BadSignal("not a mapping", "enter BTC now", "document", None),
)


# --- market candles ---------------------------------------------------------------------


def good_candles(n: int = 5, symbol: str = "BTC/USDT") -> pd.DataFrame:
    dates = pd.date_range("2026-01-05", periods=n, freq="1min", tz="UTC")
    opens = 100.0 + np.arange(n, dtype=float)
    return pd.DataFrame({"datetime": dates, "symbol": symbol, "open": opens, "high": opens + 1,
                         "low": opens - 1, "close": opens + 0.5, "volume": np.full(n, 10.0)})


def _set(column: str, row: int, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        if isinstance(value, str):
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame
    return edit


def _all_prices(row: int, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, ["open", "high", "low", "close"]] = value
        return frame
    return edit


def _duplicate_row(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[2]]], ignore_index=True)


def _drop(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.drop(columns=[column])


def _naive(frame: pd.DataFrame) -> pd.DataFrame:
    frame["datetime"] = frame["datetime"].dt.tz_localize(None)
    return frame


@dataclass(frozen=True)
class BadCandles:
    name: str
    edit: Callable[[pd.DataFrame], pd.DataFrame]
    must_mention: tuple[str, ...]


BAD_CANDLES: tuple[BadCandles, ...] = (
    BadCandles("negative prices", _all_prices(3, -5.0), ("row 3",)),
    BadCandles("zero prices", _all_prices(3, 0.0), ("row 3",)),
    BadCandles("high below low", lambda f: _set("high", 3, 90.0)(f), ("high/low", "row 3")),
    BadCandles("NaN close", _set("close", 3, float("nan")), ("close", "row 3")),
    BadCandles("infinite volume", _set("volume", 3, float("inf")), ("volume", "row 3")),
    BadCandles("negative volume", _set("volume", 3, -1.0), ("volume", "row 3")),
    BadCandles("close as text", _set("close", 3, "abc"), ("close",)),
    BadCandles("off-grid datetime", _set("datetime", 3,
                                         pd.Timestamp("2026-01-05 00:03:30", tz="UTC")),
               ("datetime", "row 3")),
    BadCandles("duplicate bar", _duplicate_row, ("datetime", "duplicated", "row 6")),
    BadCandles("naive datetimes", _naive, ("datetime", "tz-aware")),
    BadCandles("missing volume column", _drop("volume"), ("volume",)),
    BadCandles("unknown symbol format", _set("symbol", 3, "BTCUSDT"), ("BTCUSDT",)),
)


# --- CSV / Parquet files ------------------------------------------------------------------

_HEADER = "datetime,symbol,open,high,low,close,volume\n"
_ROW = "{t},BTC/USDT,100,101,99,100.5,10\n"


@dataclass(frozen=True)
class BadFile:
    name: str
    suffix: str
    content: str | pd.DataFrame
    must_mention: tuple[str, ...]
    timeframe: str = "1m"


def _csv(*times: str, header: str = _HEADER, row: str = _ROW) -> str:
    return header + "".join(row.format(t=t) for t in times)


BAD_FILES: tuple[BadFile, ...] = (
    BadFile("csv missing close column", ".csv",
            _csv("2026-01-05T00:00:00Z", header="datetime,symbol,open,high,low,volume\n",
                 row="{t},BTC/USDT,100,101,99,10\n"), ("missing column", "close")),
    BadFile("csv without a time column", ".csv",
            _csv("x", header="when,symbol,open,high,low,close,volume\n"), ("no time column",)),
    BadFile("csv mixed timezones", ".csv",
            _csv("2026-01-05T00:00:00+00:00", "2026-01-05T03:01:00+02:00"),
            ("time column", "Mixed timezones")),
    BadFile("csv naive and aware mixed", ".csv",
            _csv("2026-01-05T00:00:00+00:00", "2026-01-05T00:01:00"), ("time column",)),
    BadFile("csv naive timestamps", ".csv", _csv("2026-01-05T00:00:00", "2026-01-05T00:01:00"),
            ("naive",)),
    BadFile("csv bad date string", ".csv", _csv("2026-13-05T00:00:00Z"),
            ("time column", "2026-13-05")),
    BadFile("1d csv with an impossible YYYYMMDD", ".csv",
            _csv("20260105", "20261305"), ("time column",), "1d"),
    BadFile("csv close as text", ".csv",
            _csv("2026-01-05T00:00:00Z", row="{t},BTC/USDT,100,101,99,abc,10\n"), ("close",)),
    BadFile("parquet close as text", ".parquet", pd.DataFrame({
        "datetime": pd.date_range("2026-01-05", periods=2, freq="1min", tz="UTC"),
        "symbol": "BTC/USDT", "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
        "close": ["1.0", "n/a"], "volume": [1.0, 1.0]}), ("close",)),
    BadFile("parquet missing volume", ".parquet", pd.DataFrame({
        "datetime": pd.date_range("2026-01-05", periods=2, freq="1min", tz="UTC"),
        "symbol": "BTC/USDT", "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
        "close": [1.0, 1.0]}), ("missing column", "volume")),
)


# --- configs --------------------------------------------------------------------------------

#: ``.env`` lines for :func:`signal_export.settings.load_settings` -> text the error names.
BAD_ENV_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("batch size not a number", "EXT_SIG_BATCH_SIZE=ten", "EXT_SIG_BATCH_SIZE"),
    ("batch size zero", "EXT_SIG_BATCH_SIZE=0", "EXT_SIG_BATCH_SIZE"),
    ("ttl negative", "EXT_SIG_TTL_SECONDS=-60", "EXT_SIG_TTL_SECONDS"),
    ("ttl fractional", "EXT_SIG_TTL_SECONDS=1.5", "EXT_SIG_TTL_SECONDS"),
    ("quote with a dash", "EXT_SIG_QUOTES=USDT,US-D", "US-D"),
)

#: ``ext_signals`` blocks (Freqtrade config, timeframe 1h) -> text the error names.
BAD_EXT_SIGNALS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("missing strategy_ids", {}, "ext_signals.strategy_ids"),
    ("empty mongo_uri", {"strategy_ids": ["a"], "mongo_uri": ""}, "ext_signals.mongo_uri"),
    ("mongo_uri of another scheme", {"strategy_ids": ["a"], "mongo_uri": "http://x:1"},
     "ext_signals.mongo_uri"),
    ("unknown key", {"strategy_ids": ["a"], "tolerence_bars": 2}, "ext_signals.tolerence_bars"),
    ("tolerance zero", {"strategy_ids": ["a"], "tolerance_bars": 0}, "ext_signals.tolerance_bars"),
    ("tolerance as text", {"strategy_ids": ["a"], "tolerance_bars": "two"},
     "ext_signals.tolerance_bars"),
    ("max delay negative", {"strategy_ids": ["a"], "max_delay_bars": -1},
     "ext_signals.max_delay_bars"),
    ("stake fraction above 1", {"strategy_ids": ["a"], "max_stake_fraction": 1.5},
     "ext_signals.max_stake_fraction"),
    ("exit score above enter score", {"strategy_ids": ["a"], "enter_score": 0.3,
                                      "exit_score": 0.5}, "exit_score"),
    ("duplicate strategy id", {"strategy_ids": ["a", "a"]}, "ext_signals.strategy_ids"),
    ("timeframe differs from the strategy", {"strategy_ids": ["a"], "timeframe": "5m"},
     "ext_signals.timeframe"),
    ("timeout below the floor", {"strategy_ids": ["a"], "socket_timeout_ms": 1},
     "ext_signals.socket_timeout_ms"),
    ("unknown missing-signal policy", {"strategy_ids": ["a"], "missing_signal_policy": "panic"},
     "ext_signals.missing_signal_policy"),
    ("protection without method", {"strategy_ids": ["a"], "protections": [{"x": 1}]},
     "ext_signals.protections"),
)
