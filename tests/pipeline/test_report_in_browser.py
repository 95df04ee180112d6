"""The research report as a person sees it: rendered by headless Chromium, plots on screen.

The report embeds its figures as PNG data; a page can still show them broken (bad data,
a stylesheet hiding them, a zero-size box). So the page is laid out and screenshotted by
a real browser and each figure's region of the screenshot is compared with the figure
itself. The control (the same page with its figures' data removed) must fail the same
comparison, which is what makes the check able to fail.
"""

from __future__ import annotations

import base64
import re
from io import BytesIO

import numpy as np
import pandas as pd
import pytest
from headless_browser import layout, rendered_like, screenshot
from PIL import Image

from research.backtest import simulate_long_flat
from research.pipeline.report import write_report

PNG_SRC = re.compile(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'")
WIDTH = 1300


def _market(n: int = 120, symbols: tuple[str, ...] = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT"),
            seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC")
    frames = []
    for k, sym in enumerate(symbols):
        close = 100 * (1 + k) * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        frames.append(pd.DataFrame({"datetime": index, "symbol": sym, "open": open_,
                                    "high": np.maximum(open_, close) * 1.01,
                                    "low": np.minimum(open_, close) * 0.99,
                                    "close": close, "volume": 1.0}))
    out = pd.concat(frames, ignore_index=True)
    out["datetime"] = out["datetime"].astype("datetime64[ms, UTC]")
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    market = _market()
    open_ = market.pivot(index="datetime", columns="symbol", values="open")
    close = market.pivot(index="datetime", columns="symbol", values="close")
    result = simulate_long_flat(open_, close, (close > close.rolling(5).mean()).astype(float),
                                timeframe="1d", fee=0.001, initial_capital=1000.0)
    signals = pd.DataFrame({"ts": [], "symbol": [], "action": []})
    paths = write_report(folder, result=result, market=market, signals=signals,
                         config={"factors": ["rsi"]}, title="browser check")
    return paths["report.html"]


def _figures(page) -> list[bytes]:
    return [base64.b64decode(m) for m in PNG_SRC.findall(page.read_text(encoding="utf-8"))]


def _look(page, tmp_path) -> tuple[dict, np.ndarray]:
    seen = layout(page, WIDTH)
    shot = screenshot(page, tmp_path / f"{page.stem}.png", WIDTH, int(seen["height"]))
    return seen, shot


def test_every_figure_of_the_report_is_drawn_on_screen(report, tmp_path):
    figures = _figures(report)
    assert len(figures) >= 2  # equity/drawdown and positions at least
    seen, shot = _look(report, tmp_path)
    assert shot.shape[1] == WIDTH and shot.shape[0] == int(seen["height"])
    images = seen["images"]
    assert [i["alt"] for i in images][:2] == ["Equity and drawdown", "Positions over price"]
    for image, png in zip(images, figures, strict=True):
        with Image.open(BytesIO(png)) as decoded:
            assert (image["naturalWidth"], image["naturalHeight"]) == decoded.size, image["alt"]
        assert image["complete"] and image["box"]["w"] > 600 and image["box"]["h"] > 200
        assert rendered_like(shot, image["box"], png) < 12, image["alt"]
    # the figures carry colour (lines, fills); the rest of the page is black on white/grey
    rgb = shot.astype(int)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
    assert coloured.sum() > 2_000


def test_the_control_page_without_figure_data_fails_the_same_check(report, tmp_path):
    figures = _figures(report)
    broken = report.with_name("broken.html")
    broken.write_text(PNG_SRC.sub("src='data:image/png;base64,'",
                                  report.read_text(encoding="utf-8")), encoding="utf-8")
    seen, shot = _look(broken, tmp_path)
    images = seen["images"]
    assert len(images) == len(figures)
    for image in images:
        assert image["naturalWidth"] == 0  # the browser could not decode it
    good = layout(report, WIDTH)["images"]
    for box_source, png in zip(good, figures, strict=True):
        assert rendered_like(shot, box_source["box"], png) > 12
