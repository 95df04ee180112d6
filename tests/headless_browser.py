"""Look at a rendered HTML page the way a person would: headless Chromium, a screenshot.

``make test`` installs the browser (``scripts/install_browser.sh``); ``CHROMIUM_BIN``
names another one. Two calls: :func:`layout` loads the page with a small script appended
and returns what the browser laid out (page height, each image's decoded size and box);
:func:`screenshot` takes a PNG of the unmodified page at that size.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome",
         "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", "--virtual-time-budget=10000")
_PROBE = """<script>window.addEventListener('load', () => {
  const r = (e) => { const b = e.getBoundingClientRect();
    return {x: b.x + scrollX, y: b.y + scrollY, w: b.width, h: b.height}; };
  document.body.setAttribute('data-layout', JSON.stringify({
    height: document.documentElement.scrollHeight,
    images: [...document.images].map(i => ({alt: i.alt, complete: i.complete,
      naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, box: r(i)}))}));
});</script>"""


def browser() -> str:
    """The Chromium binary; a clear failure (not a skip) when there is none."""
    for name in (os.environ.get("CHROMIUM_BIN"), *NAMES):
        if name and (path := shutil.which(name)):
            return path
    raise AssertionError("no headless Chromium: run `bash scripts/install_browser.sh` "
                         "(make test does) or set CHROMIUM_BIN")


def _run(args: list[str]) -> str:
    proc = subprocess.run([browser(), *FLAGS, *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def layout(page: Path, width: int = 1300) -> dict[str, Any]:
    """What the browser made of ``page``: ``height`` and per image alt/complete/natural size/box."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
                     encoding="utf-8")
    try:
        dom = _run([f"--window-size={width},1000", "--dump-dom", probe.as_uri()])
    finally:
        probe.unlink()
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found, "the page never finished loading (no layout in the dumped DOM)"
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, out: Path, width: int, height: int) -> np.ndarray:
    """A ``width`` x ``height`` screenshot of ``page`` as an RGB array."""
    _run([f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri()])
    with Image.open(out) as img:
        return np.asarray(img.convert("RGB"))


def rendered_like(shot: np.ndarray, box: dict[str, float], png: bytes) -> float:
    """Mean absolute difference (0-255) between ``png`` scaled to ``box`` and that part of
    the screenshot: small when the browser drew that image there, large when it did not."""
    from io import BytesIO

    x, y = round(box["x"]), round(box["y"])
    w, h = round(box["w"]), round(box["h"])
    region = shot[y:y + h, x:x + w].astype(float)
    with Image.open(BytesIO(png)) as img:
        expected = np.asarray(img.convert("RGB").resize((region.shape[1], region.shape[0]),
                                                        Image.Resampling.BILINEAR), dtype=float)
    return float(np.abs(region - expected).mean())
