"""The reconciliation as a person and a monitor read it: a terminal table, JSON (schema in
docs/RECONCILE.md), an HTML page with the two equity curves and the P&L difference by
cause, and Prometheus gauges (``signal_bridge_reconcile_*``).

Figures follow the research report's style (matplotlib's Agg canvas, PNG embedded as
base64, no pyplot state). Not the classification (:mod:`.classify`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Gauge

from signal_export.errors import BridgeError
from signal_export.reconcile.classify import CAUSES, SAME

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class ReconcileOutputError(BridgeError, RuntimeError):
    """The report cannot be written as asked (e.g. the page's figures need an extra)."""


def _matplotlib() -> Any:
    """matplotlib for the HTML page's figures: the ``reconcile`` extra (the table, JSON and
    gauges need nothing beyond the core install)."""
    try:
        import matplotlib.dates
        import matplotlib.figure
        from matplotlib.backends import backend_agg
    except ImportError:
        raise ReconcileOutputError(
            "signal-reconcile --out draws its figures with matplotlib: "
            "pip install 'freqtrade-signal-bridge[reconcile]'") from None
    return matplotlib.figure.Figure, backend_agg.FigureCanvasAgg, matplotlib.dates

SCHEMA_VERSION = 1
METRIC_PREFIX = "signal_bridge_reconcile_"


@dataclass
class Reconciliation:
    """Everything one run found; :func:`to_json` is its published form."""

    start: datetime
    end: datetime
    timeframe: str
    signal_view: str
    sources: dict[str, str]
    settings: dict[str, Any]
    rows: pd.DataFrame
    attribution: pd.DataFrame
    signals: pd.DataFrame
    producers: pd.DataFrame
    outages: pd.DataFrame
    bot: pd.DataFrame
    backtest: pd.DataFrame
    slippage: dict[str, float | None] = field(default_factory=dict)

    @property
    def differences(self) -> pd.DataFrame:
        return self.rows[~self.rows["cause"].isin(SAME)]


def _iso(value: Any) -> str | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    return None if ts is pd.NaT else ts.isoformat()


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _int(value: Any) -> int | None:
    f = _num(value)
    return None if f is None else int(f)


def equity(trades: pd.DataFrame) -> pd.Series:
    """Cumulative realised profit (stake currency) at each closed trade's close time."""
    closed = trades[trades["close_time"].notna()].sort_values("close_time")
    profit = pd.to_numeric(closed["profit_abs"], errors="coerce").fillna(0.0)
    return pd.Series(profit.cumsum().to_numpy(), index=pd.DatetimeIndex(closed["close_time"]))


def _total(trades: pd.DataFrame) -> float:
    return float(pd.to_numeric(trades["profit_abs"], errors="coerce").fillna(0.0).sum())


def to_json(rec: Reconciliation) -> dict[str, Any]:
    """The report as JSON-ready data (documented in docs/RECONCILE.md, ``schema_version`` 1)."""
    rows = []
    for r in rec.rows.to_dict("records"):
        rows.append({
            "cause": r["cause"], "detail": r["detail"], "outcome": r["outcome"],
            "strategy_id": r["strategy_id"], "pair": r["pair"],
            "expected_at": _iso(r["expected_at"]),
            "bot": {"trade_id": _int(r["bot_trade_id"]), "open_time": _iso(r["bot_open_time"]),
                    "close_time": _iso(r["bot_close_time"]),
                    "open_rate": _num(r["bot_open_rate"]),
                    "close_rate": _num(r["bot_close_rate"]), "profit": _num(r["bot_profit"])},
            "backtest": {"trade_id": _int(r["backtest_trade_id"]),
                         "open_time": _iso(r["backtest_open_time"]),
                         "close_time": _iso(r["backtest_close_time"]),
                         "open_rate": _num(r["backtest_open_rate"]),
                         "close_rate": _num(r["backtest_close_rate"]),
                         "profit": _num(r["backtest_profit"])},
            "entry_slippage_bps": _num(r["entry_slippage_bps"]),
            "exit_slippage_bps": _num(r["exit_slippage_bps"]),
            "pnl_difference": _num(r["pnl_difference"]) or 0.0,
            "signal": {"ts": _iso(r["signal_ts"]), "version": _int(r["signal_version"]),
                       "known_at": _iso(r["signal_known_at"]),
                       "late_by_s": _num(r["late_by_s"])}})
    bot_total, bt_total = _total(rec.bot), _total(rec.backtest)
    return {
        "schema_version": SCHEMA_VERSION,
        "period": {"from": _iso(rec.start), "to": _iso(rec.end), "timeframe": rec.timeframe},
        "signal_view": rec.signal_view,
        "sources": dict(rec.sources),
        "settings": dict(rec.settings),
        "summary": {
            "bot_trades": len(rec.bot), "backtest_trades": len(rec.backtest),
            "matched": int(rec.rows["cause"].isin(["match", "slippage"]).sum()),
            "differences": len(rec.differences),
            "bot_profit": bot_total, "backtest_profit": bt_total,
            "pnl_difference": bot_total - bt_total,
            "entry_slippage_bps_mean": rec.slippage.get("entry_bps_mean"),
            "exit_slippage_bps_mean": rec.slippage.get("exit_bps_mean"),
            "slippage_pnl": rec.slippage.get("pnl") or 0.0},
        "attribution": [{"cause": r.cause, "count": int(r.count),
                         "pnl_difference": float(r.pnl_difference)}
                        for r in rec.attribution.itertuples(index=False)],
        "trades": rows,
        "signals": [{"strategy_id": r["strategy_id"], "pair": r["pair"], "ts": _iso(r["ts"]),
                     "action": r["action"] if isinstance(r["action"], str) else None,
                     "version": _int(r["version"]), "known_at": _iso(r["known_at"]),
                     "deadline": _iso(r["deadline"]), "late": bool(r["late"]),
                     "late_by_s": _num(r["late_by_s"]), "in_outage": bool(r["in_outage"])}
                    for r in rec.signals.to_dict("records")],
        "producers": [{"strategy_id": r["strategy_id"], "signals": int(r["signals"]),
                       "late": int(r["late"]), "late_ratio": float(r["late_ratio"]),
                       "max_late_by_s": _num(r["max_late_by_s"])}
                      for r in rec.producers.to_dict("records")],
        "outages": [{"start": _iso(r["start"]), "end": _iso(r["end"])}
                    for r in rec.outages.to_dict("records")],
        "equity": {name: [[_iso(t), float(v)] for t, v in equity(frame).items()]
                   for name, frame in (("bot", rec.bot), ("backtest", rec.backtest))},
    }


def write_json(rec: Reconciliation, path: Path) -> dict[str, Any]:
    data = to_json(rec)
    path.write_text(json.dumps(data, indent=2))
    return data


# --- terminal -----------------------------------------------------------------------------


def _fmt_time(value: Any) -> str:
    return "-" if _iso(value) is None else pd.Timestamp(value).strftime("%m-%d %H:%M:%S")


def _fmt_num(value: Any, spec: str = ".2f") -> str:
    v = _num(value)
    return "-" if v is None else format(v, spec)


def text_table(rec: Reconciliation) -> str:
    """The differences, the attribution and the producers' lateness as plain text."""
    data = to_json(rec)
    s = data["summary"]
    lines = [f"signal-reconcile {data['period']['from']} .. {data['period']['to']} "
             f"({rec.timeframe}, backtest signal_view={rec.signal_view})",
             f"trades: bot {s['bot_trades']}, backtest {s['backtest_trades']}, same "
             f"{s['matched']}, differences {s['differences']}; profit bot "
             f"{s['bot_profit']:.4f}, backtest {s['backtest_profit']:.4f}, difference "
             f"{s['pnl_difference']:+.4f}", ""]
    head = ("cause", "pair", "expected", "bot", "backtest", "slip bps", "pnl diff", "detail")
    body = [(r["cause"], str(r["pair"]), _fmt_time(r["expected_at"]),
             str(_int(r["bot_trade_id"]) or "-"), str(_int(r["backtest_trade_id"]) or "-"),
             _fmt_num(r["entry_slippage_bps"], "+.1f"), _fmt_num(r["pnl_difference"], "+.4f"),
             str(r["detail"])[:70]) for r in rec.rows.to_dict("records")]
    lines += _columns(head, body) + [""]
    att = [(a["cause"], str(a["count"]), f"{a['pnl_difference']:+.4f}")
           for a in data["attribution"] if a["count"]]
    lines += _columns(("cause", "count", "pnl difference"), att) + [""]
    prod = [(p["strategy_id"], str(p["signals"]), str(p["late"]), f"{p['late_ratio']:.1%}",
             _fmt_num(p["max_late_by_s"], ".1f")) for p in data["producers"]]
    lines += _columns(("producer", "signals", "late", "late share", "max late s"), prod)
    return "\n".join(lines)


def _columns(head: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*head), fmt.format(*("-" * w for w in widths)),
            *(fmt.format(*r) for r in body)]


# --- HTML ---------------------------------------------------------------------------------


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    _matplotlib()[1](fig)
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def plot_equity(rec: Reconciliation) -> bytes:
    """The bot's and the backtest's cumulative realised profit over the period (PNG)."""
    figure, _, mdates = _matplotlib()
    fig = figure(figsize=(11, 4.8), layout="constrained")
    ax = fig.subplots()
    start = pd.Timestamp(rec.start)
    for name, frame, style in (("bot (live / dry-run)", rec.bot, dict(color="tab:blue")),
                               (f"backtest ({rec.signal_view})", rec.backtest,
                                dict(color="tab:orange", ls="--"))):
        eq = equity(frame)
        x = [start, *eq.index, pd.Timestamp(rec.end)]
        y = [0.0, *eq.to_numpy(), float(eq.iloc[-1]) if len(eq) else 0.0]
        ax.step(x, y, where="post", lw=2, label=f"{name}: {y[-1]:+.4f}", **style)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_title("Cumulative realised profit: bot vs backtest", fontsize=10)
    ax.set_ylabel("profit (stake currency)")
    ax.set_xlabel("time (UTC)")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    return _png(fig)


def plot_attribution(rec: Reconciliation) -> bytes:
    """P&L difference (bot - backtest) per cause, with the number of trades on each bar."""
    att = rec.attribution.set_index("cause").reindex(list(CAUSES))
    att = att[att["count"] > 0] if (att["count"] > 0).any() else att.iloc[:1]
    fig = _matplotlib()[0](figsize=(11, 4.2), layout="constrained")
    ax = fig.subplots()
    values = att["pnl_difference"].to_numpy(float)
    colours = np.where(values >= 0, "tab:green", "tab:red")
    bars = ax.bar(att.index.astype(str), values, color=colours)
    for bar, n in zip(bars, att["count"].to_numpy(), strict=True):
        ax.annotate(f"{int(n)} trade(s)", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom" if bar.get_height() >= 0 else "top", fontsize=8)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylabel("P&L difference, bot - backtest")
    ax.set_title("Where the difference comes from", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    return _png(fig)


_CSS = ("body{font-family:sans-serif;margin:1.5em;max-width:1250px}"
        "table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        "th{background:#eee}img{display:block;width:1200px;max-width:100%}"
        ".diff{background:#fff4e5}")


def _table(head: list[str], rows: list[list[Any]], cls: list[str] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i, r in enumerate(rows):
        klass = f" class='{cls[i]}'" if cls and cls[i] else ""
        out.append(f"<tr{klass}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r)
                   + "</tr>")
    return "".join(out) + "</table>"


def to_html(rec: Reconciliation) -> str:
    data = to_json(rec)
    s = data["summary"]
    figs = [("Equity curves: bot and backtest", plot_equity(rec)),
            ("P&L difference by cause", plot_attribution(rec))]
    img = "".join(f"<h2>{html.escape(alt)}</h2><img alt='{html.escape(alt)}' "
                  f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                  for alt, png in figs)
    summary = _table(["", "bot", "backtest"], [
        ["trades", s["bot_trades"], s["backtest_trades"]],
        ["realised profit", f"{s['bot_profit']:.4f}", f"{s['backtest_profit']:.4f}"]])
    att = _table(["cause", "count", "P&L difference"],
                 [[a["cause"], a["count"], f"{a['pnl_difference']:+.4f}"]
                  for a in data["attribution"]])
    trades = _table(
        ["cause", "pair", "expected at", "bot trade", "backtest trade", "entry slip bps",
         "P&L difference", "detail"],
        [[r["cause"], r["pair"], r["expected_at"] or "-", r["bot"]["trade_id"] or "-",
          r["backtest"]["trade_id"] or "-", _fmt_num(r["entry_slippage_bps"], "+.1f"),
          f"{r['pnl_difference']:+.4f}", r["detail"]] for r in data["trades"]],
        ["" if r["cause"] in SAME else "diff" for r in data["trades"]])
    producers = _table(["producer", "signals", "late", "late share", "max late (s)"],
                       [[p["strategy_id"], p["signals"], p["late"], f"{p['late_ratio']:.1%}",
                         _fmt_num(p["max_late_by_s"], ".1f")] for p in data["producers"]])
    late = _table(["strategy_id", "pair", "ts", "known at", "deadline", "late by (s)"],
                  [[g["strategy_id"], g["pair"], g["ts"], g["known_at"], g["deadline"],
                    _fmt_num(g["late_by_s"], ".1f")] for g in data["signals"] if g["late"]])
    outages = _table(["start", "end"], [[o["start"], o["end"] or "not over"]
                                        for o in data["outages"]])
    title = (f"Reconciliation {data['period']['from']} .. {data['period']['to']} "
             f"({rec.timeframe})")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Backtest signal view: <b>{html.escape(rec.signal_view)}</b>; difference "
            f"bot - backtest: <b>{s['pnl_difference']:+.4f}</b> in "
            f"{s['differences']} difference(s).</p>{summary}{img}"
            f"<h2>Difference attribution</h2>{att}<h2>Trades</h2>{trades}"
            f"<h2>Signal timeliness per producer</h2>{producers}<h2>Late signals</h2>{late}"
            f"<h2>Store outages seen by the bot</h2>{outages}</body></html>")


def write_html(rec: Reconciliation, path: Path) -> Path:
    path.write_text(to_html(rec), encoding="utf-8")
    return path


# --- Prometheus ---------------------------------------------------------------------------


def registry(data: Mapping[str, Any], reg: CollectorRegistry | None = None
             ) -> CollectorRegistry:
    """The report's figures as gauges (``signal_bridge_reconcile_*``) in a registry."""
    reg = reg or CollectorRegistry()
    p = METRIC_PREFIX
    s = data["summary"]
    trades = Gauge(f"{p}trades", "Trades in the reconciled period", ["source"], registry=reg)
    trades.labels("bot").set(s["bot_trades"])
    trades.labels("backtest").set(s["backtest_trades"])
    profit = Gauge(f"{p}profit", "Realised profit in the period (stake currency)", ["source"],
                   registry=reg)
    profit.labels("bot").set(s["bot_profit"])
    profit.labels("backtest").set(s["backtest_profit"])
    rows = Gauge(f"{p}differences", "Bot/backtest differences in the period, per cause",
                 ["cause"], registry=reg)
    pnl = Gauge(f"{p}pnl_difference", "P&L difference bot - backtest (stake currency), per "
                "cause", ["cause"], registry=reg)
    for a in data["attribution"]:
        rows.labels(a["cause"]).set(a["count"])
        pnl.labels(a["cause"]).set(a["pnl_difference"])
    slip = Gauge(f"{p}slippage_bps", "Mean fill slippage vs the backtest (bps, stake-weighted)",
                 ["side"], registry=reg)
    for side in ("entry", "exit"):
        value = s[f"{side}_slippage_bps_mean"]
        if value is not None:
            slip.labels(side).set(value)
    n = Gauge(f"{p}signals", "Signals in the period, per producer", ["strategy_id"],
              registry=reg)
    ratio = Gauge(f"{p}signals_late_ratio", "Share of signals that arrived after their "
                  "decision deadline, per producer", ["strategy_id"], registry=reg)
    for prod in data["producers"]:
        n.labels(prod["strategy_id"]).set(prod["signals"])
        ratio.labels(prod["strategy_id"]).set(prod["late_ratio"])
    end = Gauge(f"{p}period_end_timestamp_seconds", "End of the reconciled period",
                registry=reg)
    end.set(pd.Timestamp(data["period"]["to"]).timestamp())
    return reg
