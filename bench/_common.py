"""Shared by every benchmark: timing one call, reporting paired rounds as median (min-max),
and writing the result section that ``run_all.py`` collects into BENCHMARKS.md."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Wall seconds of ``fn(*args, **kwargs)`` (``perf_counter``) and what it returned."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def median_spread(values: Iterable[float], fmt: str = "{:.2f}", scale: float = 1.0,
                  unit: str = "") -> str:
    """``median (min-max)`` of the rounds, each value times ``scale``: one spread per figure."""
    v = sorted(x * scale for x in values)
    return f"{fmt.format(statistics.median(v))}{unit} ({fmt.format(v[0])}-{fmt.format(v[-1])})"


def write_section(path: Path, text: str, quick: bool = False) -> None:
    """Print the section; store it for BENCHMARKS.md unless it is a ``--quick`` try-out."""
    print(text)
    if quick:
        print(f"(--quick: {path.name} left as it was)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
