"""The research report: formatted metrics, buy-and-hold benchmark, open trades, factor IC."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_data import config_dict
from scipy.stats import spearmanr

from research.backtest import simulate_long_flat
from research.backtest.benchmark import buy_and_hold
from research.backtest.format import format_duration, format_metric, metrics_table
from research.backtest.plots import html_report, trades_display
from research.factors.analysis import (
    analyse_factors,
    ic_series,
    information_coefficient,
    next_bar_returns,
    quantile_returns,
)
from research.pipeline.report import write_report

RESEARCH = Path(sys.executable).with_name("research")
DAY = pd.Timedelta(days=1)


# --- formatting ----------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "text"), [
    ("max_drawdown", -0.0396942, "-3.97%"),
    ("total_return", 0.1234, "+12.34%"),
    ("total_return", -0.0396942, "-3.97%"),
    ("cagr", 0.0, "+0.00%"),
    ("volatility", 0.36521, "36.52%"),
    ("exposure", 1.0, "100.00%"),
    ("win_rate", float("nan"), "n/a"),
    ("sharpe", 1.23456, "1.23"),
    ("sortino", -0.5, "-0.50"),
    ("profit_factor", float("inf"), "inf"),
    ("n_trades", 1234, "1,234"),
    ("periods_per_year", 525600.0, "525,600"),
    ("turnover", 14.1, "14.10x"),
    ("turnover_annual", 3.0, "3.00x / year"),
    ("max_drawdown_duration", pd.Timedelta(days=274), "274 d"),
])
def test_metric_formats(key, value, text):
    assert format_metric(key, value) == text


def test_durations_use_the_two_largest_units():
    assert format_duration(pd.Timedelta(days=274)) == "274 d"
    assert format_duration(pd.Timedelta("1 day 04:30:00")) == "1 d 4 h"
    assert format_duration(pd.Timedelta(minutes=90)) == "1 h 30 min"
    assert format_duration(pd.Timedelta(minutes=45)) == "45 min"
    assert format_duration(pd.Timedelta(0)) == "0"
    assert format_duration(pd.NaT) == "n/a"
    assert "days" not in format_duration(pd.Timedelta(days=1000))


def test_metrics_table_labels_rows_and_leaves_missing_cells_blank():
    table = metrics_table({"strategy": {"total_return": 0.1, "n_trades": 3},
                           "buy & hold": {"total_return": -0.2}})
    assert table.loc["Total return"].tolist() == ["+10.00%", "-20.00%"]
    assert table.loc["Closed trades"].tolist() == ["3", ""]


# --- benchmark and open trades ------------------------------------------------------

def _wide(values: dict[str, list[float]], start: str = "2024-01-01") -> pd.DataFrame:
    n = len(next(iter(values.values())))
    index = pd.date_range(start, periods=n, freq="1D", tz="UTC")
    return pd.DataFrame(values, index=index)


def _tidy(open_: pd.DataFrame, close: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for sym in close.columns:
        frames.append(pd.DataFrame({"datetime": close.index, "symbol": sym,
                                    "open": open_[sym].to_numpy(),
                                    "high": np.maximum(open_[sym], close[sym]).to_numpy(),
                                    "low": np.minimum(open_[sym], close[sym]).to_numpy(),
                                    "close": close[sym].to_numpy(), "volume": 1.0}))
    out = pd.concat(frames, ignore_index=True)
    out["datetime"] = out["datetime"].astype("datetime64[ms, UTC]")
    return out


@pytest.fixture
def two_symbols():
    close = _wide({"A": [10.0, 11, 12, 11, 13, 14], "B": [20.0, 19, 18, 20, 22, 21]})
    open_ = _wide({"A": [10.0, 10.5, 11.5, 12, 11.5, 13], "B": [20.0, 20, 19, 18, 20, 22]})
    # A: held from bar 1's signal to the end (open at the end); B: one closed round trip
    signal = _wide({"A": [0.0, 1, 1, 1, 1, 1], "B": [1.0, 1, 0, 0, 0, 0]})
    return open_, close, signal


def test_buy_and_hold_is_each_sleeve_bought_at_its_first_open(two_symbols):
    open_, close, signal = two_symbols
    result = simulate_long_flat(open_, close, signal, timeframe="1d", fee=0.0,
                                initial_capital=1000.0)
    bench = buy_and_hold(result, _tidy(open_, close))
    want = 500.0 * close["A"] / open_["A"].iloc[0] + 500.0 * close["B"] / open_["B"].iloc[0]
    np.testing.assert_allclose(bench.equity.to_numpy(), want.to_numpy(), rtol=1e-12)
    assert bench.metrics.total_return == pytest.approx(want.iloc[-1] / 1000.0 - 1, rel=1e-12)
    assert bench.metrics.exposure == 1.0 and bench.trades["is_open"].all()

    with_fee = simulate_long_flat(open_, close, signal, timeframe="1d", fee=0.01,
                                  slippage_bps=10, initial_capital=1000.0)
    bench = buy_and_hold(with_fee, _tidy(open_, close))
    fill = open_.iloc[0] * (1 + 10 / 1e4)
    want = (500.0 / (fill * 1.01) * close).sum(axis=1)  # vectorbt/Freqtrade entry fee
    np.testing.assert_allclose(bench.equity.to_numpy(), want.to_numpy(), rtol=1e-12)


def test_open_trades_show_as_open_not_nat(two_symbols, tmp_path):
    open_, close, signal = two_symbols
    result = simulate_long_flat(open_, close, signal, timeframe="1d", fee=0.001,
                                initial_capital=1000.0)
    assert result.trades["is_open"].tolist() == [True, False]
    shown = trades_display(result.trades)
    a = shown[shown["symbol"] == "A"].iloc[0]
    assert a["exit"] == "open" and a["status"] == "open" and a["exit price"].endswith("(mark)")
    b = shown[shown["symbol"] == "B"].iloc[0]
    assert b["exit"] == "2024-01-04 00:00" and b["status"] == "closed"
    bench = buy_and_hold(result, _tidy(open_, close))
    text = html_report(result, close, tmp_path / "r.html", benchmark=bench).read_text()
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)  # base64 may hold 'NaT'
    assert "NaT" not in text and "<td>open</td>" in text
    assert "1 still open at the end, marked at the last close" in text
    assert "days 00:00:00" not in text and "buy &amp; hold" in text
    assert f"<td>{format_metric('total_return', bench.metrics.total_return)}</td>" in text


# --- factor IC and quantile returns -------------------------------------------------

def _market(n: int, symbols: list[str], seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, len(symbols))), axis=0)),
                         columns=symbols,
                         index=pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC"))
    return _tidy(close.shift(1).fillna(100.0), close)


def _factor(market: pd.DataFrame, values: pd.Series, name: str = "f") -> pd.DataFrame:
    return market[["datetime", "symbol"]].assign(**{name: values.to_numpy()})


def _next_returns_aligned(market: pd.DataFrame) -> pd.Series:
    fwd = next_bar_returns(market, "1d").set_index(["datetime", "symbol"])["next_return"]
    keys = pd.MultiIndex.from_frame(market[["datetime", "symbol"]])
    return fwd.reindex(keys)


def test_next_bar_returns_do_not_span_a_missing_bar():
    market = _market(6, ["A"])
    holed = market.drop(index=3).reset_index(drop=True)  # bar 3 missing
    fwd = next_bar_returns(holed, "1d").set_index("datetime")["next_return"]
    c = market.set_index("datetime")["close"]
    assert fwd.index.tolist() == [c.index[0], c.index[1], c.index[4]]
    assert fwd.iloc[0] == pytest.approx(c.iloc[1] / c.iloc[0] - 1)


def test_a_factor_equal_to_the_next_return_has_ic_one():
    market = _market(60, ["A", "B", "C", "D"])
    fwd = _next_returns_aligned(market)
    perfect = _factor(market, fwd)
    ic = information_coefficient(perfect, market, "1d", ["f"])
    assert ic.loc["f", "ic_mean"] == pytest.approx(1.0)
    assert ic.loc["f", "ts_ic"] == pytest.approx(1.0)
    assert ic.loc["f", "ic_bars"] == 59 and ic.loc["f", "ts_symbols"] == 4
    inverse = information_coefficient(_factor(market, -fwd), market, "1d", ["f"])
    assert inverse.loc["f", "ic_mean"] == pytest.approx(-1.0)
    # a monotone transform has the same rank IC
    squashed = information_coefficient(_factor(market, np.tanh(50 * fwd)), market, "1d", ["f"])
    assert squashed.loc["f", "ic_mean"] == pytest.approx(1.0)


def test_ic_mean_std_and_ir_on_a_known_alternating_case():
    market = _market(11, ["A", "B", "C"])
    fwd = _next_returns_aligned(market).unstack("symbol")
    ranks = fwd.rank(axis=1)
    odd = (np.arange(len(ranks)) % 2 == 1)[:, None]
    # on odd bars swap the two lowest ranks: rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 0.5
    values = ranks.to_numpy().copy()
    low, mid = ranks.to_numpy() == 1, ranks.to_numpy() == 2
    values[odd & low], values[odd & mid] = 2.0, 1.0
    swapped = pd.DataFrame(values, index=ranks.index, columns=ranks.columns)
    frame = _factor(market, swapped.stack().reindex(
        pd.MultiIndex.from_frame(market[["datetime", "symbol"]])))
    series = ic_series(frame, market, "1d", "f").dropna()
    assert len(series) == 10
    np.testing.assert_allclose(series.to_numpy(), np.where(np.arange(10) % 2 == 1, 0.5, 1.0))
    ic = information_coefficient(frame, market, "1d", ["f"])
    want = np.array([1.0, 0.5] * 5)
    assert ic.loc["f", "ic_mean"] == pytest.approx(0.75)
    assert ic.loc["f", "ic_std"] == pytest.approx(want.std(ddof=1))
    assert ic.loc["f", "ic_ir"] == pytest.approx(0.75 / want.std(ddof=1))
    assert ic.loc["f", "ic_t"] == pytest.approx(0.75 / want.std(ddof=1) * np.sqrt(10))


def test_ic_matches_scipy_spearman_bar_by_bar_and_symbol_by_symbol():
    market = _market(40, ["A", "B", "C", "D", "E"], seed=9)
    rng = np.random.default_rng(1)
    fwd = _next_returns_aligned(market)
    noisy = _factor(market, fwd + pd.Series(rng.normal(0, 0.02, len(fwd)), index=fwd.index))
    joined = noisy.assign(r=fwd.to_numpy()).dropna()
    series = ic_series(noisy, market, "1d", "f")
    for when, group in joined.groupby("datetime"):
        assert series[when] == pytest.approx(spearmanr(group["f"], group["r"]).statistic)
    ts = [spearmanr(g["f"], g["r"]).statistic for _, g in joined.groupby("symbol")]
    ic = information_coefficient(noisy, market, "1d", ["f"])
    assert ic.loc["f", "ts_ic"] == pytest.approx(np.mean(ts))


def test_one_or_two_symbols_have_no_cross_sectional_ic_but_a_time_series_one():
    market = _market(50, ["A", "B"])
    perfect = _factor(market, _next_returns_aligned(market))
    ic = information_coefficient(perfect, market, "1d", ["f"])
    assert ic.loc["f", "ic_bars"] == 0 and np.isnan(ic.loc["f", "ic_mean"])
    assert ic.loc["f", "ts_ic"] == pytest.approx(1.0)


def test_quantile_returns_of_the_next_return_itself():
    market = _market(101, ["A", "B", "C"])
    fwd = _next_returns_aligned(market)
    table = quantile_returns(_factor(market, fwd), market, "1d", ["f"], quantiles=5)
    row = table.loc["f"]
    q = row[["Q1", "Q2", "Q3", "Q4", "Q5"]].to_numpy()
    assert (np.diff(q) > 0).all()
    per_symbol = []
    for _, r in fwd.dropna().groupby(level="symbol"):
        top = np.sort(r.to_numpy())[-20:]  # 100 bars with a next return: 20 per quintile
        per_symbol.append(top.mean())
    assert row["Q5"] == pytest.approx(np.mean(per_symbol))
    assert row["spread"] == pytest.approx(row["Q5"] - row["Q1"])


def test_write_report_adds_benchmark_and_factor_analysis(tmp_path):
    market = _market(80, ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT"])
    open_ = market.pivot(index="datetime", columns="symbol", values="open")
    close = market.pivot(index="datetime", columns="symbol", values="close")
    open_.index = open_.index.astype("datetime64[ns, UTC]")
    close.index = close.index.astype("datetime64[ns, UTC]")
    result = simulate_long_flat(open_, close, (close > close.rolling(5).mean()).astype(float),
                                timeframe="1d", fee=0.001, initial_capital=1000.0)
    config = {"factors": [{"name": "ret", "params": {"horizon": 1}}, "rsi"]}
    signals = pd.DataFrame({"ts": [], "symbol": [], "action": []})
    paths = write_report(tmp_path, result=result, market=market, signals=signals,
                         config=config, title="t")
    metrics = json.loads(paths["metrics.json"].read_text())
    bench = buy_and_hold(result, market)
    assert metrics["benchmark"]["total_return"] == pytest.approx(bench.metrics.total_return)
    assert metrics["excess_return"] == pytest.approx(
        result.metrics.total_return - bench.metrics.total_return)
    assert set(metrics["factors"]["ic"]) == {"ret_1", "rsi_14"}
    direct = analyse_factors(
        market[["datetime", "symbol"]].assign(
            ret_1=market.groupby("symbol")["close"].pct_change().to_numpy()),
        market, "1d", ["ret_1"])
    assert metrics["factors"]["ic"]["ret_1"]["ic_mean"] == pytest.approx(
        direct.ic.loc["ret_1", "ic_mean"])
    html = paths["report.html"].read_text()
    assert "Factor analysis" in html and "time-series IC" in html and " bps<" in html


def test_the_pipeline_report_through_the_cli(tmp_path):
    data = config_dict()
    data["report"] = {"output_dir": str(tmp_path / "report")}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.run([str(RESEARCH), "pipeline", str(config), "--no-export", "--quiet",
                           "--env-file", "/nonexistent/.env"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    backtest_line = next(x for x in proc.stdout.splitlines() if x.startswith("backtest: "))
    assert "%" in backtest_line and "total_return=" in backtest_line
    assert re.search(r"\d\.\d{3,}", backtest_line) is None, backtest_line  # no 0.0396942
    report = tmp_path / "report"
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", (report / "report.html")
                  .read_text())
    assert "NaT" not in html and "days 00:00:00" not in html
    assert "buy &amp; hold" in html and "Factor analysis" in html
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["factors"]["ic"]) == {"rsi_14", "sma_20", "sma_dist_20"}
    assert metrics["benchmark"]["kind"] == "buy_and_hold"
    for row in metrics["factors"]["ic"].values():
        assert -1 <= row["ic_mean"] <= 1 and row["ic_bars"] > 300
