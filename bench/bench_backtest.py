"""Benchmark: ``simulate_long_flat`` vs vectorbt ``Portfolio.from_signals`` and a cumprod floor.

Workload (issue 6): 100 symbols x 525,600 1m bars, ~1,400 position changes per
symbol, long-only, fee 0.1%, fills at the next bar's open. All three are timed
in the same run on the same arrays:

- ours: ``simulate_long_flat`` from wide frames to equity curves, positions,
  trades list and metrics (validation included);
- vectorbt 1.2 ``Portfolio.from_signals`` with ``price=open`` and the entries/
  exits of the held position (the signal shifted by one bar, done before the
  clock starts), one ``init_cash`` per symbol, vectorbt's fee model - and the
  same plus ``final_value()``; numba compilation is warmed up first on a tiny
  input and excluded;
- floor: ``np.cumprod`` of one elementwise product over a symbols x bars array.

Final portfolio equity must agree with vectorbt to 1e-9 relative.

Second section (issue 23), same prices: ``simulate_long_short`` on a -1/0/1 signal
(~1,400 changes per symbol, a third of them flips) against ``simulate_long_flat`` on
the 0/1 signal (goal <= 1.5x its time), the same long-only 0/1 signal through the
long/short path, the long/short run with leverage 3, a 1 % stop and a 2 % target on
high/low (context), and vectorbt ``from_signals`` with ``short_entries``/``short_exits``
of the same held positions (goal: ours >= 5x faster). vectorbt sizes a short as
``cash / (price (1 + fee))`` where Freqtrade (and ours) use ``price (1 - fee)``, so
equal equity is checked on a fee-free run of both (untimed), the timed runs use 0.1 %.

Writes ``bench/results/backtest.md``; ``--quick`` (10 symbols x 50,000 bars) only prints.
vectorbt is a bench-only dependency (bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import median_spread, write_section  # noqa: E402
from research.backtest import simulate_long_flat, simulate_long_short  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "backtest.md"
FEE = 0.001
CAPITAL_PER_SYMBOL = 100.0
CHANGES_PER_SYMBOL = 1_400
GOAL_VS_VECTORBT = 5.0
GOAL_VS_FLOOR = 3.0
GOAL_LS_VS_LONG_ONLY = 1.5


def make_workload(n_sym: int, n_bar: int, seed: int = 7) -> dict[str, object]:
    """Random-walk 1m prices and a 0/1 signal with ~1,400 changes per symbol."""
    rng = np.random.default_rng(seed)
    close = rng.standard_normal((n_sym, n_bar))
    close *= 5e-4
    np.cumsum(close, axis=1, out=close)
    np.exp(close, out=close)
    close *= 100.0
    open_ = np.empty_like(close)
    open_[:, 0] = 100.0
    open_[:, 1:] = close[:, :-1]
    open_ *= 1.0 + 1e-4 * rng.standard_normal((n_sym, n_bar))
    flips = rng.random((n_sym, n_bar)) < CHANGES_PER_SYMBOL / n_bar
    signal = (np.cumsum(flips, axis=1) % 2).astype(np.int8)
    del flips
    index = pd.date_range("2025-01-01", periods=n_bar, freq="1min", tz="UTC")
    symbols = [f"BINANCE:S{i:03d}USDT" for i in range(n_sym)]

    def wide(a: np.ndarray) -> pd.DataFrame:  # bars x symbols view of a symbols x bars array
        return pd.DataFrame(a.T, index=index, columns=symbols, copy=False)

    return {"open": wide(open_), "close": wide(close), "signal": wide(signal),
            "arrays": (open_, close, signal)}


def _run_ours(w: dict[str, object]):
    return simulate_long_flat(w["open"], w["close"], w["signal"], timeframe="1m", fee=FEE,
                              initial_capital=CAPITAL_PER_SYMBOL * w["open"].shape[1])


def _run_floor(a: np.ndarray, b: np.ndarray) -> None:
    out = np.cumprod(a * b, axis=1)
    del out


def _vectorbt_inputs(w: dict[str, object]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Entries/exits of the held position (the signal shifted one bar), bars x symbols."""
    _, _, signal = w["arrays"]
    held = np.zeros_like(signal)
    held[:, 1:] = signal[:, :-1]  # signal at t -> held from the open of t+1
    prev = np.zeros_like(held)
    prev[:, 1:] = held[:, :-1]
    index, symbols = w["open"].index, list(w["open"].columns)
    entries = pd.DataFrame((held > prev).T, index=index, columns=symbols)
    exits = pd.DataFrame((held < prev).T, index=index, columns=symbols)
    return entries, exits


def _run_vectorbt(vbt, w: dict[str, object], entries: pd.DataFrame, exits: pd.DataFrame):
    return vbt.Portfolio.from_signals(w["close"], entries, exits, price=w["open"], fees=FEE,
                                      init_cash=CAPITAL_PER_SYMBOL, freq="1min")


def measure(w: dict[str, object], repeats: int) -> dict[str, object]:
    """Interleaved runs (floor, ours, vectorbt, vectorbt + final_value) so load hits all alike."""
    import vectorbt as vbt

    open_, close, _ = w["arrays"]
    a = close / open_
    b = np.full_like(a, 1.0 - 1e-7)
    entries, exits = _vectorbt_inputs(w)
    t0 = time.perf_counter()
    for _ in range(2):  # compile numba for the same dtypes and memory layout as the real run
        tw = make_workload(2, 1000)
        te, tx = _vectorbt_inputs(tw)
        _run_vectorbt(vbt, tw, te, tx).final_value()
    warmup = time.perf_counter() - t0
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {"floor": [], "ours": [], "vbt": [], "vbt_value": []}
    res = final = None
    n_orders = 0
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        _run_floor(a, b)
        times["floor"].append(time.perf_counter() - t0)
        res = None
        gc.collect()
        t0 = time.perf_counter()
        res = _run_ours(w)
        times["ours"].append(time.perf_counter() - t0)
        gc.collect()
        t0 = time.perf_counter()
        pf = _run_vectorbt(vbt, w, entries, exits)
        times["vbt"].append(time.perf_counter() - t0)
        del pf
        gc.collect()
        t0 = time.perf_counter()
        pf = _run_vectorbt(vbt, w, entries, exits)
        final = pf.final_value()
        times["vbt_value"].append(time.perf_counter() - t0)
        n_orders = len(pf.order_records)
        del pf
        print("  " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    return {"times": times, "result": res, "warmup": warmup, "final_value": final,
            "load": (load_before, os.getloadavg()[0], os.cpu_count()),
            "n_orders": n_orders, "version": vbt.__version__}


def _fmt_times(ts: list[float]) -> str:
    return (f"best {min(ts):.3f} s, median {statistics.median(ts):.3f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in ts)})")


def report(n_sym: int, n_bar: int, m: dict[str, object]) -> str:
    times, res = m["times"], m["result"]
    t_ours, t_floor = min(times["ours"]), min(times["floor"])
    t_vb, t_vbv = min(times["vbt"]), min(times["vbt_value"])
    med = {k: statistics.median(v) for k, v in times.items()}
    our_final = float(res.equity.iloc[-1])
    vb_by_sym = m["final_value"].to_numpy()
    vb_final = float(vb_by_sym.sum())
    rel = abs(our_final - vb_final) / abs(vb_final)
    per_sym = float(np.max(np.abs(res.equity_by_symbol.iloc[-1].to_numpy() - vb_by_sym)
                           / vb_by_sym))
    our_orders = 2 * res.metrics.n_trades + res.metrics.n_open_trades

    def ok(cond: bool) -> str:
        return "met" if cond else "NOT met"

    lines = [
        "## Backtest: `simulate_long_flat` vs vectorbt `from_signals`",
        "",
        f"Workload: {n_sym} symbols x {n_bar:,} bars of 1m ({n_sym * n_bar / 1e6:.1f} M cells), "
        f"~{CHANGES_PER_SYMBOL:,} position changes per symbol, long-only, fee {FEE:.1%}, "
        "fills at the next bar's open; float64 arrays laid out symbols x bars. "
        f"{len(times['ours'])} interleaved rounds (floor, ours, vectorbt, vectorbt + "
        "`final_value()`) in one process; ratios use the best run of each (the machine is "
        "shared, best-of is the least load-sensitive), medians in brackets. 1-minute load "
        f"average {m['load'][0]:.1f} at the start and {m['load'][1]:.1f} at the end on "
        f"{m['load'][2]} cores: absolute times are inflated when other work runs, ratios "
        "much less so.",
        "",
        "| measure | ratio | goal | absolute |",
        "|---|---|---|---|",
        f"| vectorbt `from_signals` time / ours | **{t_vb / t_ours:.1f}x** "
        f"(median {med['vbt'] / med['ours']:.1f}x) | >= {GOAL_VS_VECTORBT:.0f}x "
        f"({ok(t_vb / t_ours >= GOAL_VS_VECTORBT)}) | ours {_fmt_times(times['ours'])}; "
        f"vectorbt {_fmt_times(times['vbt'])} |",
        f"| vectorbt `from_signals` + `final_value()` / ours | {t_vbv / t_ours:.1f}x "
        f"(median {med['vbt_value'] / med['ours']:.1f}x) | (context) | "
        f"vectorbt {_fmt_times(times['vbt_value'])} |",
        f"| ours / cumprod floor | **{t_ours / t_floor:.2f}x** "
        f"(median {med['ours'] / med['floor']:.2f}x) | <= {GOAL_VS_FLOOR:.0f}x "
        f"({ok(t_ours / t_floor <= GOAL_VS_FLOOR)}) | floor {_fmt_times(times['floor'])} |",
        f"| final equity, relative difference to vectorbt | {rel:.1e} | <= 1e-9 "
        f"({ok(rel <= 1e-9)}) | ours {our_final:,.6f}, vectorbt {vb_final:,.6f} |",
        f"| worst per-symbol final equity difference | {per_sym:.1e} | <= 1e-9 "
        f"({ok(per_sym <= 1e-9)}) | |",
        f"| orders: ours (entries + exits) vs vectorbt order records | {our_orders:,} vs "
        f"{m['n_orders']:,} | equal ({ok(our_orders == m['n_orders'])}) | |",
        "",
        "Ours is timed from wide DataFrames to the full result: validation, positions, "
        "per-symbol and total equity curves, the trades list "
        f"({len(res.trades):,} trades) and all metrics. vectorbt gets the held position's "
        "entries/exits precomputed (signal shifted one bar, outside the clock) and "
        f"`price=open`; its numba warm-up ({m['warmup']:.1f} s, vectorbt {m['version']}) "
        "ran first and is excluded. The floor is `np.cumprod(a * b, axis=1)` over two "
        "symbols x bars float64 arrays; it writes two full-size arrays where ours writes one "
        "(the equity curve), which is why ours can come close to it. Ours does not walk the "
        "bars: positions are a shift, trades are the runs found by one comparison and "
        "`flatnonzero`, compounding is a cumulative product over trades (not bars), and the "
        "equity curve is one `np.repeat` of per-run levels times the close.",
        "",
    ]
    return "\n".join(lines)


def make_long_short(w: dict[str, object], seed: int = 11) -> dict[str, object]:
    """A -1/0/1 signal changing where the 0/1 one does (new side drawn from the other two),
    and high/low around open/close; all outside the clock."""
    rng = np.random.default_rng(seed)
    open_, close, signal = w["arrays"]
    change = np.zeros(signal.shape, dtype=bool)
    change[:, 1:] = signal[:, 1:] != signal[:, :-1]
    steps = np.where(change, rng.integers(1, 3, signal.shape), 0).astype(np.int8)
    ls = (np.cumsum(steps, axis=1, dtype=np.int64) % 3 - 1).astype(np.int8)
    del steps, change
    wiggle = 1.0 + np.abs(rng.standard_normal(open_.shape)) * 5e-4
    high = np.maximum(open_, close) * wiggle
    low = np.minimum(open_, close) / wiggle
    del wiggle
    index, symbols = w["open"].index, list(w["open"].columns)

    def wide(a: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(a.T, index=index, columns=symbols, copy=False)

    return {"signal": wide(ls), "high": wide(high), "low": wide(low)}


def _run_ls(w: dict[str, object], signal: pd.DataFrame, fee: float = FEE, **kwargs):
    return simulate_long_short(w["open"], w["close"], signal, timeframe="1m", fee=fee,
                               initial_capital=CAPITAL_PER_SYMBOL * w["open"].shape[1], **kwargs)


def _vectorbt_ls_inputs(position: pd.DataFrame, like: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Entries/exits per side from a held -1/0/1 position (bars x symbols, labelled ``like``)."""
    held = position.to_numpy()
    prev = np.zeros_like(held)
    prev[1:] = held[:-1]

    def frame(a: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(a, index=like.index, columns=like.columns)

    return {"entries": frame((held == 1) & (prev != 1)), "exits": frame((prev == 1) & (held != 1)),
            "short_entries": frame((held == -1) & (prev != -1)),
            "short_exits": frame((prev == -1) & (held != -1))}


def _run_vectorbt_ls(vbt, w: dict[str, object], sig: dict[str, pd.DataFrame], fee: float = FEE):
    return vbt.Portfolio.from_signals(w["close"], price=w["open"], fees=fee,
                                      init_cash=CAPITAL_PER_SYMBOL, freq="1min", **sig)


def measure_long_short(w: dict[str, object], repeats: int) -> dict[str, object]:
    """Interleaved rounds: long-only path, long/short path (0/1 and -1/0/1), with stops,
    vectorbt with shorts. Equity is compared on fee-free runs outside the clock."""
    import vectorbt as vbt

    ls = make_long_short(w)
    stops = {"leverage": 3.0, "stop_loss": 0.01, "take_profit": 0.02, "high": ls["high"],
             "low": ls["low"]}
    free = _run_ls(w, ls["signal"], fee=0.0)
    sig = _vectorbt_ls_inputs(free.position, w["open"])
    for _ in range(2):  # numba warm-up on the same dtypes
        tw = make_workload(2, 1000)
        tls = make_long_short(tw)
        tsig = _vectorbt_ls_inputs(_run_ls(tw, tls["signal"]).position, tw["open"])
        _run_vectorbt_ls(vbt, tw, tsig).final_value()
    vb_free = _run_vectorbt_ls(vbt, w, sig, fee=0.0).final_value().to_numpy()
    ours_free = free.equity_by_symbol.iloc[-1].to_numpy()
    for fn in (lambda: _run_ours(w), lambda: _run_ls(w, ls["signal"])):
        fn()  # one untimed run of each of our paths: the first after vectorbt ran 3x slower
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {"long_only": [], "ls_same": [], "ls": [], "ls_stops": [],
                                     "vbt_ls": []}
    res = res_stops = None
    n_orders = 0
    for _ in range(repeats):
        for name, fn in (
            ("long_only", lambda: _run_ours(w)),
            ("ls_same", lambda: _run_ls(w, w["signal"])),
            ("ls", lambda: _run_ls(w, ls["signal"])),
            ("ls_stops", lambda: _run_ls(w, ls["signal"], **stops)),
            ("vbt_ls", lambda: _run_vectorbt_ls(vbt, w, sig)),
        ):
            gc.collect()
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            if name == "ls":
                res = out
            elif name == "ls_stops":
                res_stops = out
            elif name == "vbt_ls":
                n_orders = len(out.order_records)
            del out
        print("  " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    return {"times": times, "result": res, "stops": res_stops,
            "equal": float(np.max(np.abs(ours_free - vb_free) / vb_free)),
            "final_free": (float(ours_free.sum()), float(vb_free.sum())),
            "load": (load_before, os.getloadavg()[0], os.cpu_count()), "n_orders": n_orders}


def report_long_short(n_sym: int, n_bar: int, m: dict[str, object]) -> str:
    times, res, stops = m["times"], m["result"], m["stops"]
    best = {k: min(v) for k, v in times.items()}
    sides = res.trades["side"].value_counts().to_dict()
    reasons = stops.trades["exit_reason"].value_counts().to_dict()
    held = res.position.to_numpy()
    # a flip is one order in vectorbt (it reverses), two trades' exit + entry in ours: count
    # the bars where the held position changes
    our_orders = int((np.diff(held, axis=0, prepend=0) != 0).sum())
    exits_text = ", ".join(f"{k or 'still open'} {v:,}" for k, v in reasons.items())

    def ok(cond: bool) -> str:
        return "met" if cond else "NOT met"

    def paired(key: str, base: str) -> list[float]:  # the ratio within each round
        return [a / b for a, b in zip(times[key], times[base], strict=True)]

    def row(label: str, key: str, base: str, goal: str, limit: float | None) -> str:
        ratios = paired(key, base)
        verdict = ("(context)" if limit is None
                   else f"{goal} ({ok(statistics.median(ratios) <= limit)})")
        return (f"| {label} | **{median_spread(ratios, unit='x')}** (best-of "
                f"{best[key] / best[base]:.2f}x) | {verdict} | {_fmt_times(times[key])} |")

    vb_ratio, vb_paired = best["vbt_ls"] / best["ls"], paired("vbt_ls", "ls")
    ours_free, vb_free = m["final_free"]
    lines = [
        "## Long/short: `simulate_long_short` vs the long-only path and vectorbt with shorts",
        "",
        f"Same prices as above ({n_sym} symbols x {n_bar:,} 1m bars). Long/short signal: "
        "-1/0/1, changing where the 0/1 signal changes (new side drawn from the other two, so "
        "about half the changes are flips); fee 0.1 %. "
        f"{len(times['ls'])} interleaved rounds (long-only, long/short on the 0/1 signal, "
        "long/short, with stops, vectorbt; each called through its public function from the "
        "same wide frames); a ratio is taken within each round (paired) and reported as "
        "median (min-max) over the rounds, the ratio of the best runs in brackets; the goals "
        f"are judged on the paired median. 1-minute load average {m['load'][0]:.1f} -> "
        f"{m['load'][1]:.1f} on {m['load'][2]} cores.",
        "",
        "| measure | ratio | goal | absolute |",
        "|---|---|---|---|",
        f"| long-only path (`simulate_long_flat`, 0/1 signal) | 1.00x | baseline | "
        f"{_fmt_times(times['long_only'])} |",
        row("long/short path, -1/0/1 signal / long-only path", "ls", "long_only",
            f"<= {GOAL_LS_VS_LONG_ONLY}x", GOAL_LS_VS_LONG_ONLY),
        row("long/short path on the same 0/1 signal / long-only path", "ls_same", "long_only",
            f"<= {GOAL_LS_VS_LONG_ONLY}x", GOAL_LS_VS_LONG_ONLY),
        row("long/short + leverage 3, 1 % stop, 2 % target on high/low / long-only path",
            "ls_stops", "long_only", "", None),
        f"| vectorbt `from_signals` with shorts / ours (-1/0/1) | "
        f"**{median_spread(vb_paired, fmt='{:.1f}', unit='x')}** (best-of {vb_ratio:.1f}x) | "
        f">= {GOAL_VS_VECTORBT:.0f}x ({ok(statistics.median(vb_paired) >= GOAL_VS_VECTORBT)}) | "
        f"vectorbt {_fmt_times(times['vbt_ls'])} |",
        f"| worst per-symbol final equity difference to vectorbt, fee-free runs | "
        f"{m['equal']:.1e} | <= 1e-9 ({ok(m['equal'] <= 1e-9)}) | ours {ours_free:,.6f}, "
        f"vectorbt {vb_free:,.6f} |",
        f"| orders: ours (position changes; a flip is one) vs vectorbt order records | "
        f"{our_orders:,} vs {m['n_orders']:,} | equal ({ok(our_orders == m['n_orders'])}) | |",
        "",
        f"Trades of the -1/0/1 run: {sides.get(1, 0):,} long, {sides.get(-1, 0):,} short. "
        f"The run with stops exits by {exits_text}. "
        "vectorbt gets the held positions of our fee-free run as entries/exits per side "
        "(so both trade the same bars, flips at one open as in Freqtrade; computed "
        "outside the clock) and `price=open`; its numba warm-up is excluded, as is one untimed "
        "run of each of our two paths before the rounds. The stop/target "
        "run pays for painting each trade's stop and target over its bars "
        "(`np.repeat`, per side) and comparing them with the bars' low/high, read as "
        "contiguous views (a few passes over the bars of the held trades plus a "
        "`searchsorted`). Without stops the long/short path does the long-only path's work "
        "(held sides, runs, compounding over trades) and writes the equity as `a + b * close` "
        "per segment (cash: `b = 0`; a trade: `a = C (1 - side L)`, `b = side units`) in "
        "pieces of a few hundred thousand cells whose repeated `a`/`b` stay in cache, so the "
        "bars are read once and the equity written once.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 symbols x 50,000 bars")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=525_600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ls-repeats", type=int, default=5,
                        help="rounds of the long/short section")
    parser.add_argument("--only-ls", action="store_true",
                        help="only the long/short section, printed (results file untouched)")
    args = parser.parse_args(argv if argv is not None else [])
    n_sym, n_bar = (10, 50_000) if args.quick else (args.symbols, args.bars)
    print(f"backtest bench: {n_sym} symbols x {n_bar:,} bars", flush=True)
    w = make_workload(n_sym, n_bar)
    if args.only_ls:
        print(report_long_short(n_sym, n_bar, measure_long_short(w, args.ls_repeats)))
        return 0
    text = report(n_sym, n_bar, measure(w, args.repeats))
    text += "\n" + report_long_short(n_sym, n_bar, measure_long_short(w, args.ls_repeats))
    write_section(RESULTS, text, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
