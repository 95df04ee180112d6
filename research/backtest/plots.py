"""Figures and a self-contained HTML report of a :class:`BacktestResult`.

For a researcher's eyes: equity and drawdown, and positions over price with
entry/exit markers, as PNG (matplotlib's Agg canvas, no display and no pyplot
global state), plus one HTML file with those PNGs embedded (base64), the
parameters, the metrics table and the trades table. Long 1m histories are
bucketed to a few thousand points before drawing (last equity, deepest
drawdown, any position per bucket), so plotting 525,600 bars stays quick and
the lines stay readable. Not for interactive exploration or publication styling.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from research.backtest.metrics import drawdown
from research.backtest.simulate import BacktestResult

MAX_POINTS = 3000
MAX_MARKERS = 400
MAX_HTML_TRADES = 500


def _bucket(frame: pd.DataFrame | pd.Series, how: str,
            max_points: int = MAX_POINTS) -> pd.DataFrame | pd.Series:
    """At most ``max_points`` rows: ``how`` per bucket, labelled by the bucket's last bar."""
    n = len(frame)
    if n <= max_points:
        return frame
    step = -(-n // max_points)
    keys = np.arange(n) // step
    out = frame.groupby(keys).agg(how)
    last = np.minimum((np.arange(len(out)) + 1) * step, n) - 1
    return out.set_axis(frame.index[last], axis=0)


def _date_axis(ax) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3)


def _save(fig: Figure, path: str | Path | None) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=110)
    png = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(png)
    return png


def plot_equity_drawdown(result: BacktestResult, path: str | Path | None = None) -> bytes:
    """Equity (total, and per symbol when there are few) over drawdown; returns PNG bytes."""
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    eq = result.equity
    dd = pd.Series(drawdown(eq.to_numpy(), result.initial_capital), index=eq.index)
    eq_b, dd_b = _bucket(eq, "last"), _bucket(dd, "min")
    if result.equity_by_symbol.shape[1] <= 8:
        for sym, col in _bucket(result.equity_by_symbol, "last").items():
            ax_eq.plot(col.index, col.to_numpy(), lw=0.8, alpha=0.6, label=str(sym))
    ax_eq.plot(eq_b.index, eq_b.to_numpy(), color="black", lw=1.6, label="portfolio")
    ax_eq.axhline(result.initial_capital, color="grey", lw=0.8, ls="--", label="initial capital")
    m = result.metrics
    ax_eq.set_title(
        f"Equity ({result.timeframe}, fee {result.fee:.2%}, slippage {result.slippage_bps:g} bps)"
        f" - total return {m.total_return:+.1%}, Sharpe {m.sharpe:.2f}, "
        f"max drawdown {m.max_drawdown:.1%}")
    ax_eq.set_ylabel("value (quote currency)")
    ax_eq.legend(loc="best", fontsize=8, ncol=3, framealpha=0.8)
    ax_dd.fill_between(dd_b.index, dd_b.to_numpy() * 100, 0, color="tab:red", alpha=0.4, lw=0)
    ax_dd.set_ylabel("drawdown (%)")
    ax_dd.set_title(f"Drawdown (longest under water: {m.max_drawdown_duration})", fontsize=10)
    ax_dd.set_xlabel("bar open time (UTC)")
    for ax in (ax_eq, ax_dd):
        _date_axis(ax)
    return _save(fig, path)


def plot_positions(result: BacktestResult, close: pd.DataFrame, symbols: list[str] | None = None,
                   path: str | Path | None = None) -> bytes:
    """Close price per symbol with held bars shaded and entry/exit fills marked; PNG bytes."""
    chosen = list(symbols) if symbols is not None else list(result.position.columns[:4])
    missing = [s for s in chosen if s not in close.columns or s not in result.position.columns]
    if missing:
        raise ValueError(f"plot_positions: symbols {missing} not in the backtest")
    fig = Figure(figsize=(11, 2.6 * len(chosen) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(chosen), 1, sharex=True, squeeze=False)[:, 0])
    for ax, sym in zip(axes, chosen, strict=True):
        price = _bucket(close[sym].reindex(result.position.index), "last")
        held = _bucket(result.position[sym], "max")
        ax.plot(price.index, price.to_numpy(), color="tab:blue", lw=0.9, label="close")
        inside = held.to_numpy() > 0
        inside[1:] |= inside[:-1]  # a held bar spans to the next bar's open, where the exit fills
        ax.fill_between(held.index, 0, 1, where=inside, step="post",
                        transform=ax.get_xaxis_transform(), color="tab:green", alpha=0.15,
                        lw=0, label="long")
        trades = result.trades[result.trades["symbol"] == sym]
        note = ""
        if len(trades) <= MAX_MARKERS:
            ax.scatter(trades["entry_time"], trades["entry_price"], marker="^", s=36,
                       color="tab:green", zorder=3, label="entry fill")
            done = trades[~trades["is_open"]]
            ax.scatter(done["exit_time"], done["exit_price"], marker="v", s=36,
                       color="tab:red", zorder=3, label="exit fill")
        else:
            note = f" ({len(trades):,} trades: markers omitted)"
        ax.set_title(f"{sym}: position over price{note}", fontsize=10)
        ax.set_ylabel("price")
        ax.legend(loc="best", fontsize=8, ncol=4, framealpha=0.8)
        _date_axis(ax)
    axes[-1].set_xlabel("bar open time (UTC)")
    return _save(fig, path)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def html_report(result: BacktestResult, close: pd.DataFrame, path: str | Path,
                title: str = "Backtest report") -> Path:
    """Write one self-contained HTML file (images embedded) and return its path."""
    images = [("Equity and drawdown", plot_equity_drawdown(result)),
              ("Positions over price", plot_positions(result, close))]
    params = {"timeframe": result.timeframe, "bars": len(result.equity),
              "first bar": result.equity.index[0], "last bar": result.equity.index[-1],
              "symbols": len(result.weights), "initial capital": result.initial_capital,
              "fee": result.fee, "fee model": result.fee_model.value,
              "slippage (bps)": result.slippage_bps,
              "fills": "signal at bar t -> open of bar t+1 (Freqtrade convention)"}
    trades = result.trades
    shown = trades.head(MAX_HTML_TRADES)
    caption = (f"Trades ({len(trades):,}"
               + (f"; first {len(shown):,} shown" if len(shown) < len(trades) else "") + ")")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th{background:#f0f0f0}img{max-width:100%}",
        "</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Parameters</h2>",
        pd.Series(params, name="value").map(_fmt).to_frame().to_html(),
        "<h2>Metrics</h2>",
        pd.Series(result.metrics.to_dict(), name="value").map(_fmt).to_frame().to_html(),
    ]
    for heading, png in images:
        data = base64.b64encode(png).decode("ascii")
        parts += [f"<h2>{heading}</h2>",
                  f"<img alt='{heading}' src='data:image/png;base64,{data}'>"]
    parts += [f"<h2>{caption}</h2>", shown.to_html(index=False, float_format=lambda v: f"{v:.6g}"),
              "</body></html>"]
    out = Path(path)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
