"""PNG figures and the self-contained HTML report."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest

from research.backtest import simulate_long_flat
from research.backtest.plots import html_report, plot_equity_drawdown, plot_positions

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def backtest():
    rng = np.random.default_rng(2)
    n = 20_000  # more bars than the plotting bucket size
    index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC")
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n, 2)), axis=0)),
                         index=index, columns=["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"])
    open_ = close.shift(1).fillna(100.0)
    signal = pd.DataFrame((np.cumsum(rng.random((n, 2)) < 0.002, axis=0) % 2),
                          index=index, columns=close.columns)
    return simulate_long_flat(open_, close, signal, timeframe="1m", fee=0.001), close


def test_equity_and_drawdown_png(backtest, tmp_path):
    res, _ = backtest
    path = tmp_path / "equity.png"
    png = plot_equity_drawdown(res, path)
    assert png.startswith(PNG_MAGIC) and path.read_bytes() == png
    assert len(png) > 10_000


def test_positions_png_and_unknown_symbol(backtest, tmp_path):
    res, close = backtest
    png = plot_positions(res, close, ["BINANCE:ETHUSDT"], tmp_path / "pos.png")
    assert png.startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="NOPE"):
        plot_positions(res, close, ["NOPE"])


def test_html_report_is_self_contained(backtest, tmp_path):
    res, close = backtest
    path = html_report(res, close, tmp_path / "report.html", title="Unit test report")
    text = path.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 2
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert "Unit test report" in text and "Sharpe ratio" in text and "Max drawdown" in text
    assert f"Trades ({len(res.trades):,}" in text
    assert "http://" not in text and "https://" not in text  # nothing to fetch
