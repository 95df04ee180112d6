"""Figures and a self-contained HTML report of a :class:`BacktestResult`.

For a researcher's eyes: equity (with the buy-and-hold benchmark of the same
universe when given) and drawdown, and positions over price with entry/exit
markers, as PNG (matplotlib's Agg canvas, no display and no pyplot global
state), plus one HTML file with those PNGs embedded (base64), the parameters,
the formatted metrics of the strategy next to the benchmark's
(:mod:`research.backtest.format`), any extra sections (the pipeline adds the
factor analysis) and the trades table, where a trade still open at the end
shows ``open`` as its exit. Long 1m histories are
bucketed to a few thousand points before drawing (last equity, deepest
drawdown, any position per bucket), so plotting 525,600 bars stays quick and
the lines stay readable. Not for interactive exploration or publication styling.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from research.backtest.format import format_duration, format_percent, metrics_table
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


def plot_equity_drawdown(result: BacktestResult, path: str | Path | None = None, *,
                         benchmark: BacktestResult | None = None) -> bytes:
    """Equity (total, per symbol when there are few, and the ``benchmark``'s) over drawdown.

    Returns PNG bytes.
    """
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    eq = result.equity
    dd = pd.Series(drawdown(eq.to_numpy(), result.initial_capital), index=eq.index)
    eq_b, dd_b = _bucket(eq, "last"), _bucket(dd, "min")
    if result.equity_by_symbol.shape[1] <= 8:
        for sym, col in _bucket(result.equity_by_symbol, "last").items():
            ax_eq.plot(col.index, col.to_numpy(), lw=0.8, alpha=0.6, label=str(sym))
    ax_eq.plot(eq_b.index, eq_b.to_numpy(), color="black", lw=1.6, label="portfolio")
    bench_text = ""
    if benchmark is not None:
        bh = _bucket(benchmark.equity.reindex(eq.index), "last")
        ax_eq.plot(bh.index, bh.to_numpy(), color="tab:purple", lw=1.3, ls="-.",
                   label="buy & hold (same universe)")
        bench_text = f", buy & hold {benchmark.metrics.total_return:+.1%}"
    ax_eq.axhline(result.initial_capital, color="grey", lw=0.8, ls="--", label="initial capital")
    m = result.metrics
    ax_eq.set_title(
        f"Equity ({result.timeframe}, fee {result.fee:.2%}, slippage {result.slippage_bps:g} bps)"
        f" - total return {m.total_return:+.1%}{bench_text}, Sharpe {m.sharpe:.2f}, "
        f"max drawdown {m.max_drawdown:.1%}", fontsize=10)
    ax_eq.set_ylabel("value (quote currency)")
    ax_eq.legend(loc="best", fontsize=8, ncol=3, framealpha=0.8)
    ax_dd.fill_between(dd_b.index, dd_b.to_numpy() * 100, 0, color="tab:red", alpha=0.4, lw=0)
    ax_dd.set_ylabel("drawdown (%)")
    ax_dd.set_title(f"Drawdown (longest under water: "
                    f"{format_duration(m.max_drawdown_duration)})", fontsize=10)
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


def _time(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if pd.notna(value) else "open"


def trades_display(trades: pd.DataFrame) -> pd.DataFrame:
    """The trades table as people read it: times to the minute, ``open`` as the exit time
    of a trade still open at the end (its exit price is the last close, a mark), money
    to cents, returns in percent."""
    is_open = trades["is_open"].to_numpy(dtype=bool)
    return pd.DataFrame({
        "symbol": trades["symbol"].astype(str),
        "entry": trades["entry_time"].map(_time),
        "exit": [("open" if o else _time(t)) for o, t in zip(is_open, trades["exit_time"],
                                                               strict=True)],
        "entry price": trades["entry_price"].map(lambda v: f"{v:.6g}"),
        "exit price": [f"{v:.6g}" + (" (mark)" if o else "")
                       for v, o in zip(trades["exit_price"], is_open, strict=True)],
        "units": trades["units"].map(lambda v: f"{v:.6g}"),
        "entry value": trades["entry_value"].map(lambda v: f"{v:,.2f}"),
        "exit value": trades["exit_value"].map(lambda v: f"{v:,.2f}"),
        "fees": trades["fees"].map(lambda v: f"{v:,.2f}"),
        "pnl": trades["pnl"].map(lambda v: f"{v:+,.2f}"),
        "return": trades["return"].map(lambda v: format_percent(v, signed=True)),
        "bars held": trades["bars_held"].map(lambda v: f"{v:,}"),
        "status": np.where(is_open, "open", "closed"),
    })


def html_report(result: BacktestResult, close: pd.DataFrame, path: str | Path,
                title: str = "Backtest report", *, benchmark: BacktestResult | None = None,
                sections: Sequence[tuple[str, str]] = ()) -> Path:
    """Write one self-contained HTML file (images embedded) and return its path.

    ``benchmark`` (see :func:`research.backtest.benchmark.buy_and_hold`) is drawn on the
    equity plot and its metrics shown next to the strategy's; ``sections`` are extra
    (heading, HTML fragment) pairs placed after the figures.
    """
    images = [("Equity and drawdown", plot_equity_drawdown(result, benchmark=benchmark)),
              ("Positions over price", plot_positions(result, close))]
    params = {"timeframe": result.timeframe, "bars": f"{len(result.equity):,}",
              "first bar": _time(result.equity.index[0]),
              "last bar": _time(result.equity.index[-1]),
              "symbols": len(result.weights),
              "initial capital": f"{result.initial_capital:,.2f}",
              "fee": f"{result.fee:.3%} per side", "fee model": result.fee_model.value,
              "slippage": f"{result.slippage_bps:g} bps",
              "fills": "signal at bar t -> open of bar t+1 (Freqtrade convention)"}
    if benchmark is not None:
        params["benchmark"] = ("buy & hold of the same symbols, weights and costs "
                               "(bought at each symbol's first open)")
    metrics = {"strategy": result.metrics.to_dict()}
    if benchmark is not None:
        bench = benchmark.metrics.to_dict()
        metrics["buy & hold"] = {k: v for k, v in bench.items()
                                 if k not in ("n_trades", "n_open_trades", "win_rate",
                                              "profit_factor", "turnover", "turnover_annual")}
    trades = result.trades
    shown = trades_display(trades.head(MAX_HTML_TRADES))
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
        metrics_table(metrics).to_html(),
    ]
    for heading, png in images:
        data = base64.b64encode(png).decode("ascii")
        parts += [f"<h2>{heading}</h2>",
                  f"<img alt='{heading}' src='data:image/png;base64,{data}'>"]
    for heading, fragment in sections:
        parts += [f"<h2>{html.escape(heading)}</h2>", fragment]
    open_note = (f" - {int(trades['is_open'].sum())} still open at the end, marked at the "
                 "last close" if trades["is_open"].any() else "")
    parts += [f"<h2>{caption}</h2>", f"<p>{html.escape(open_note.lstrip(' -'))}</p>"
              if open_note else "", shown.to_html(index=False), "</body></html>"]
    out = Path(path)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
