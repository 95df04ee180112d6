"""Where signal-reconcile gets its frames: the bot's trades, locks and logs, the backtest's
trades (a result file, or a ``freqtrade backtesting`` run it starts), the signal versions.

Every reader returns the frames :mod:`.classify` expects; bad input is a
:class:`ReconcileInputError` naming the file/field. Bot sources, as a real
deployment has them: Freqtrade's sqlite database (``--bot-db``: trades and
``pairlocks``), its REST API (``--bot-api``: ``/trades``, ``/locks``,
``/show_config``, ``/logs``), or the trades the monitor wrote back to MongoDB
(``ft_trades``). Outages and refusals come from the bot's log (``--bot-log``,
Freqtrade's ``<date> <time>,<ms> - <logger> - <LEVEL> - <message>`` lines, read
as UTC) or the API's ``/logs``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from signal_export.errors import BridgeError
from signal_export.monitoring.execution import trades_frame

_NS = "datetime64[ns, UTC]"
#: The strategy's own log lines on losing / regaining the signal store
#: (signal_export/consumer/source.py, SignalSource._failed / _succeeded).
OUTAGE_START = re.compile(
    r"ExternalSignalStrategy: (?:signal store unreachable|signal read failed)")
OUTAGE_END = re.compile(r"ExternalSignalStrategy: signal store reachable again")
#: Freqtrade's refusals (freqtrade/freqtradebot.py, freqtrade/wallets.py), as (kind, pattern).
REFUSALS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("stake", re.compile(r"Adjusted stake amount for pair (?P<pair>\S+) is more than 30% bigger")),
    ("stake", re.compile(r"Minimum stake amount > available balance")),
    ("stake", re.compile(r"Unable to create trade for (?P<pair>\S+): .*(?:balance|stake)")),
    ("lock", re.compile(r"Pair (?P<pair>\S+) (?:\w+ )?is locked until")),
    ("lock", re.compile(r"Pair (?P<pair>\S+) is currently locked")),
    ("lock", re.compile(r"Global pairlock active")),
)
LOG_LINE = re.compile(r"^(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:,(?P<ms>\d{3}))? - "
                      r"(?P<name>\S+) - (?P<level>[A-Z]+) - (?P<msg>.*)$")


class ReconcileInputError(BridgeError, ValueError):
    """An input of signal-reconcile is missing or unusable."""


def _utc(values: Any) -> pd.Series:
    return pd.to_datetime(pd.Series(values), utc=True).astype(_NS)


def _ms(values: Iterable[Any]) -> list[int | None]:
    out = []
    for v in values:
        ts = pd.Timestamp(v) if v is not None and not (isinstance(v, float) and np.isnan(v)) \
            else None
        if ts is None or ts is pd.NaT:
            out.append(None)
        else:
            out.append(int((ts.tz_localize("UTC") if ts.tzinfo is None else ts).value // 10**6))
    return out


def normalise_trades(rows: pd.DataFrame) -> pd.DataFrame:
    """Columns trade_id, pair, is_open, open_date, close_date, open_rate, close_rate, amount,
    stake_amount, enter_tag, exit_reason, profit_abs (dates naive=UTC or aware) ->
    :func:`trades_frame` plus ``profit_abs`` (realised: NaN while open), times as UTC ns."""
    need = ("trade_id", "pair", "open_date", "open_rate")
    missing = [c for c in need if c not in rows]
    if missing:
        raise ReconcileInputError(f"trades: missing field(s) {', '.join(missing)}")
    dicts = pd.DataFrame({
        "trade_id": rows["trade_id"], "pair": rows["pair"],
        "is_open": rows.get("is_open", pd.Series(False, index=rows.index)).fillna(False),
        "open_timestamp": _ms(rows["open_date"]),
        "close_timestamp": _ms(rows.get("close_date", pd.Series(None, index=rows.index))),
        **{c: rows.get(c, pd.Series(None, index=rows.index)) for c in (
            "open_rate", "close_rate", "amount", "stake_amount", "enter_tag", "exit_reason")},
    }).to_dict("records")
    frame = trades_frame(dicts)
    profit = pd.to_numeric(rows.get("profit_abs", pd.Series(np.nan, index=rows.index)),
                           errors="coerce")
    by_id = pd.Series(profit.to_numpy(), index=rows["trade_id"].astype("int64").to_numpy())
    by_id = by_id[~by_id.index.duplicated(keep="last")]  # as trades_frame: the last one wins
    frame["profit_abs"] = by_id.reindex(frame["trade_id"].to_numpy()).to_numpy()
    # realised profit only: an open trade's profit_abs (the API's /status) is not realised
    frame.loc[frame["is_open"], "profit_abs"] = np.nan
    for col in ("open_time", "close_time"):
        frame[col] = _utc(frame[col]).to_numpy()
    return frame


def empty_trades() -> pd.DataFrame:
    return normalise_trades(pd.DataFrame(columns=["trade_id", "pair", "open_date",
                                                  "open_rate"]))


# --- the bot ------------------------------------------------------------------------------


def _sqlite_path(db: str) -> Path:
    path = Path(db[len("sqlite:///"):] if db.startswith("sqlite:///") else db)
    if "://" in str(path):
        raise ReconcileInputError(f"--bot-db {db}: only Freqtrade's sqlite database is read "
                                  "directly; for another database use --bot-api")
    if not path.is_file():
        raise ReconcileInputError(f"--bot-db {db}: no such file")
    return path


def bot_db(db: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trades and pair locks from Freqtrade's sqlite database (read-only)."""
    path = _sqlite_path(db)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        trades = pd.read_sql_query(
            "select id as trade_id, pair, is_open, open_date, close_date, open_rate, "
            "close_rate, amount, stake_amount, enter_tag, exit_reason, "
            "close_profit_abs as profit_abs from trades order by id", con)
        try:
            locks = pd.read_sql_query("select pair, side, reason, lock_time as start, "
                                      "lock_end_time as end from pairlocks", con)
        except (sqlite3.OperationalError, pd.errors.DatabaseError):
            locks = pd.DataFrame(columns=["pair", "side", "reason", "start", "end"])
    except (sqlite3.OperationalError, pd.errors.DatabaseError) as exc:
        raise ReconcileInputError(f"--bot-db {db}: not a Freqtrade trades database ({exc})"
                                  ) from None
    finally:
        con.close()
    trades["is_open"] = trades["is_open"].astype(bool)
    return normalise_trades(trades), _locks(locks)


def _locks(locks: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"pair": locks["pair"].astype(object).to_numpy(),
                         "start": _utc(locks["start"]).to_numpy(),
                         "end": _utc(locks["end"]).to_numpy(),
                         "reason": locks["reason"].astype(object).to_numpy()})


def bot_api(api: Any) -> tuple[pd.DataFrame, pd.DataFrame, int | None, dict[str, Any]]:
    """Trades, locks, max_open_trades and the ``/logs`` reply from a :class:`FreqtradeApi`.

    Freqtrade's ``/trades`` lists closed trades only; the open ones come from ``/status``.
    """
    raw = [*api.trades(), *api.open_trades()]
    trades = trades_from_dicts(raw)
    rows = api.locks()
    locks = pd.DataFrame({
        "pair": [r.get("pair") for r in rows],
        "start": [pd.Timestamp(r.get("lock_timestamp"), unit="ms", tz="UTC") for r in rows],
        "end": [pd.Timestamp(r.get("lock_end_timestamp"), unit="ms", tz="UTC") for r in rows],
        "reason": [r.get("reason") for r in rows]})
    mot = api.show_config().get("max_open_trades")
    logs = api.logs(limit=10_000)
    return trades, _locks(locks), (int(mot) if isinstance(mot, int | float) and mot >= 0
                                   else None), logs


def trades_from_dicts(raw: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Freqtrade REST trade dicts (``open_timestamp`` ms, ``profit_abs``) -> trade frame."""
    if not raw:
        return empty_trades()
    frame = pd.DataFrame(list(raw))
    frame["open_date"] = pd.to_datetime(frame["open_timestamp"], unit="ms", utc=True)
    frame["close_date"] = pd.to_datetime(frame.get("close_timestamp"), unit="ms", utc=True)
    return normalise_trades(frame)


def bot_writeback(db: Any, bot: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The bot's trades the monitor wrote back (``ft_trades``) that opened in [start, end]."""
    from signal_export.monitoring.writeback import TRADES_COLLECTION

    docs = list(db[TRADES_COLLECTION].find(
        {"bot": bot, "open_date": {"$gte": start, "$lte": end}}, {"_id": 0, "orders": 0}))
    if not docs:
        return empty_trades()
    return normalise_trades(pd.DataFrame(docs))


# --- logs ---------------------------------------------------------------------------------


def log_entries_from_file(path: Path) -> pd.DataFrame:
    """Freqtrade log lines -> time (UTC), level, message (continuation lines skipped)."""
    if not path.is_file():
        raise ReconcileInputError(f"--bot-log {path}: no such file")
    rows = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = LOG_LINE.match(line.rstrip("\n"))
            if m:
                rows.append((f"{m['time']}.{m['ms'] or '000'}", m["level"], m["msg"]))
    frame = pd.DataFrame(rows, columns=["time", "level", "message"])
    frame["time"] = _utc(pd.to_datetime(frame["time"])).to_numpy()
    return frame


def log_entries_from_api(reply: Mapping[str, Any]) -> pd.DataFrame:
    """Freqtrade's ``/logs`` reply (entries ``[time, ts, name, level, message]``) -> frame."""
    rows = []
    for entry in reply.get("logs") or ():
        if len(entry) >= 5:
            raw = float(entry[1])
            rows.append((pd.Timestamp(raw / 1000 if raw > 1e11 else raw, unit="s", tz="UTC"),
                         str(entry[3]), str(entry[4])))
    frame = pd.DataFrame(rows, columns=["time", "level", "message"])
    frame["time"] = _utc(frame["time"]).to_numpy()
    return frame


def outages(entries: pd.DataFrame) -> pd.DataFrame:
    """Store-outage windows [start, end) from the strategy's log lines (end NaT: not over)."""
    if entries.empty:
        return pd.DataFrame({"start": pd.Series(dtype=_NS), "end": pd.Series(dtype=_NS)})
    entries = entries.assign(time=_utc(entries["time"]).to_numpy()).sort_values(
        "time", kind="stable")
    start = entries["message"].str.contains(OUTAGE_START)
    end = entries["message"].str.contains(OUTAGE_END)
    marks = entries[start | end].assign(is_start=start[start | end])
    # a window opens at a start line and closes at the next end line
    new = marks["is_start"] & ~marks["is_start"].shift(fill_value=False)
    starts = marks[new]["time"].dt.tz_convert(None).to_numpy("datetime64[ns]")
    end_times = marks[~marks["is_start"]]["time"].dt.tz_convert(None).to_numpy(
        "datetime64[ns]")
    idx = np.searchsorted(end_times, starts, side="right")
    ends = np.full(len(starts), np.datetime64("NaT", "ns"))
    ok = idx < len(end_times)
    ends[ok] = end_times[idx[ok]]
    return pd.DataFrame({"start": _utc(starts).to_numpy(), "end": _utc(ends).to_numpy()})


def refusals(entries: pd.DataFrame) -> pd.DataFrame:
    """Freqtrade's refusal lines: time, pair (None: not pair-specific), kind, message.

    One vectorised pass per pattern over all lines (logs run to millions of lines)."""
    msgs = entries["message"].astype(str).reset_index(drop=True)
    kind = pd.Series(None, index=msgs.index, dtype=object)
    pair = pd.Series(None, index=msgs.index, dtype=object)
    for name, pattern in REFUSALS:
        todo = kind.isna()
        if not todo.any():
            break
        got = msgs[todo].str.extract(pattern.pattern if pattern.groups else
                                     f"(?P<_hit>{pattern.pattern})")
        hit = got.notna().any(axis=1) if pattern.groups else got["_hit"].notna()
        hit = hit[hit].index
        kind[hit] = name
        if "pair" in got:
            pair[hit] = got.loc[hit, "pair"]
    keep = kind.notna().to_numpy()
    frame = pd.DataFrame({"time": _utc(entries["time"]).to_numpy()[keep],
                          "pair": pair[keep].to_numpy(), "kind": kind[keep].to_numpy(),
                          "message": msgs[keep].str.slice(0, 300).to_numpy()})
    frame["pair"] = frame["pair"].astype(object).where(frame["pair"].notna(), None)
    return frame


# --- the backtest -------------------------------------------------------------------------


def backtest_results(path: Path) -> pd.DataFrame:
    """Trades of a Freqtrade backtest result (zip, json or the results folder) as a frame."""
    from freqtrade.data.btanalysis import load_backtest_data

    if not path.exists():
        raise ReconcileInputError(f"--backtest-results {path}: no such file or folder")
    try:
        data = load_backtest_data(path)
    except (ValueError, KeyError, json.JSONDecodeError, OSError) as exc:
        raise ReconcileInputError(f"--backtest-results {path}: not a Freqtrade backtest "
                                  f"result ({exc})") from None
    if data.empty:
        return empty_trades()
    data = data.reset_index(drop=True)
    data["trade_id"] = np.arange(1, len(data) + 1)
    if "is_open" not in data:
        data["is_open"] = False
    return normalise_trades(data)


def timerange(start: datetime, end: datetime) -> str:
    """Freqtrade's ``--timerange`` in epoch seconds (exact to the second)."""
    return f"{int(start.timestamp())}-{int(end.timestamp())}"


def run_backtest(config: Path, start: datetime, end: datetime, *, signal_view: str,
                 extra_args: Sequence[str] = (), workdir: Path | None = None,
                 freqtrade: str | None = None, timeout_s: float = 1800,
                 env: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, str]:
    """``freqtrade backtesting`` over [start, end] with a copy of ``config`` whose
    ``ext_signals.signal_view`` is ``signal_view`` (``latest`` leaves the config as it is),
    trades exported to a folder of its own; returns the trades and the log."""
    try:
        cfg = json.loads(config.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReconcileInputError(f"--config {config}: {exc}") from None
    if signal_view != "latest":
        cfg.setdefault("ext_signals", {})["signal_view"] = signal_view
    work = Path(workdir or tempfile.mkdtemp(prefix="signal-reconcile-"))
    work.mkdir(parents=True, exist_ok=True)
    results = work / "backtest_results"
    results.mkdir(exist_ok=True)
    copy = work / "config.reconcile.json"
    copy.write_text(json.dumps(cfg, indent=2))
    exe = freqtrade or str(Path(sys.executable).with_name("freqtrade"))
    cmd = [exe, "backtesting", "-c", str(copy), "--timerange", timerange(start, end),
           "--export", "trades", "--backtest-directory", str(results), "--cache", "none",
           *extra_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                          env=None if env is None else dict(env))
    log = proc.stdout + proc.stderr
    (work / "freqtrade-backtesting.log").write_text(log)
    if proc.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-5:])
        raise ReconcileInputError(f"freqtrade backtesting failed (exit {proc.returncode}; "
                                  f"log: {work / 'freqtrade-backtesting.log'}):\n{tail}")
    return backtest_results(results), log


def max_open_trades(config: Path | None) -> int | None:
    if config is None:
        return None
    try:
        value = json.loads(config.read_text()).get("max_open_trades")
    except (OSError, json.JSONDecodeError) as exc:
        raise ReconcileInputError(f"--config {config}: {exc}") from None
    return int(value) if isinstance(value, int | float) and value >= 0 else None


def now_utc() -> datetime:
    return datetime.now(UTC)
