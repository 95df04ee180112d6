"""False-breakout "trap" reclaim detector (seed 000), one independent state per symbol.

A bar closes beyond the previous ``window`` bars' range (below the lowest low
or above the highest high) by more than ``threshold_bps``: a breakout, whose
broken level is frozen. If within ``timeout_bars`` bars a close comes back
inside that level, the breakout was a trap and the reclaim bar emits a signal:
a failed break-down -> ``enter_long``; a failed break-out upwards ->
``exit_long`` (the long-only reading of the seed's short), ``enter_short`` (the
seed's own short; futures symbols only) or nothing (``up_trap_action``). While a
breakout is pending no new one starts; after a timeout the next bar may start one.
Each signal records its entry (reclaim close), stop-loss (extreme since the breakout, beyond it by
``sl_buffer_bps``) and take-profit (``rr_ratio`` x risk) in ``extra.*`` columns and
in ``note`` as JSON. With ``risk_fields=True`` each entry also carries the
contract's ``stop_loss`` and ``take_profit`` (fractions of the entry price) so the
bot enforces them (``custom_stoploss``/``custom_roi``, futures mode) and the research
backtest simulates them. The loop runs over breakout events, not bars.
"""

from __future__ import annotations

import json
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from research.factors.windows import rolling, shift
from research.signals.base import GeneratorParams, SignalGenerator
from research.signals.frame import signal_frame, sort_signals
from signal_export.contract import Action

TRAP_EXTRA = ("entry_price", "stop_loss", "take_profit", "breakout_level")


class TrapParams(GeneratorParams):
    window: int = Field(default=20, ge=2)
    threshold_bps: float = Field(default=10.0, ge=0)
    timeout_bars: int = Field(default=5, ge=1)
    sl_buffer_bps: float = Field(default=5.0, ge=0)
    rr_ratio: float = Field(default=2.0, gt=0)
    up_trap_action: Literal["exit_long", "enter_short", "none"] = "exit_long"
    risk_fields: bool = False


class TrapGenerator(SignalGenerator):
    type_name = "trap"
    Params: ClassVar[type[GeneratorParams]] = TrapParams
    params: TrapParams

    def generate(self, frame: pd.DataFrame) -> pd.DataFrame:
        data = self.prepared(frame, ["high", "low", "close"])
        if self.params.up_trap_action == Action.ENTER_SHORT.value:
            self.require_futures(data, "up_trap_action enter_short needs")
        rows: list[dict] = []
        for _sym, idx in data.groupby("symbol", sort=True).indices.items():
            rows.extend(self._detect(data.iloc[idx]))
        if not rows:
            return signal_frame(pd.Series([], dtype="datetime64[ns, UTC]"), [], extra={
                c: [] for c in TRAP_EXTRA}, **self.label())
        out = pd.DataFrame(rows)
        risk = {}
        if self.params.risk_fields:  # fractions of the entry, on entries only
            entry, side = out["entry_price"], np.where(out["action"] == "enter_short", -1, 1)
            is_entry = out["action"] != Action.EXIT_LONG.value
            risk = {"stop_loss": np.where(is_entry, side * (1 - out["stop_loss"] / entry), np.nan),
                    "take_profit": np.where(is_entry, side * (out["take_profit"] / entry - 1),
                                            np.nan)}
        return sort_signals(signal_frame(out["ts"], out["symbol"], action=out["action"],
                                         note=out["note"], extra={c: out[c] for c in TRAP_EXTRA},
                                         **risk, **self.label()))

    def _detect(self, bars: pd.DataFrame) -> list[dict]:
        p = self.params
        high, low = bars["high"].to_numpy(float), bars["low"].to_numpy(float)
        close = bars["close"].to_numpy(float)
        range_high = shift(rolling(high, p.window, "max"), 1)  # previous `window` bars only
        range_low = shift(rolling(low, p.window, "min"), 1)
        k = p.threshold_bps / 1e4
        with np.errstate(invalid="ignore"):
            down = close < range_low * (1 - k)
            up = close > range_high * (1 + k)
        candidates = np.flatnonzero(down | up)
        signals: list[dict] = []
        t, n = 0, len(close)
        while True:
            pos = np.searchsorted(candidates, t)
            if pos >= len(candidates):
                break
            b = int(candidates[pos])
            is_down = bool(down[b])
            level = range_low[b] if is_down else range_high[b]
            seg = close[b + 1: min(n, b + p.timeout_bars + 1)]
            hits = np.flatnonzero(seg > level if is_down else seg < level)
            if not len(hits):
                t = b + p.timeout_bars + 1
                continue
            j = b + 1 + int(hits[0])
            t = j + 1
            if not is_down and p.up_trap_action == "none":
                continue
            signals.append(self._signal(bars, b, j, is_down, level, low, high, close))
        return signals

    def _signal(self, bars: pd.DataFrame, b: int, j: int, is_down: bool, level: float,
                low: np.ndarray, high: np.ndarray, close: np.ndarray) -> dict:
        p = self.params
        entry = close[j]
        buffer = entry * p.sl_buffer_bps / 1e4
        if is_down:
            stop = low[b: j + 1].min() - buffer
            target = entry + (entry - stop) * p.rr_ratio
        else:
            stop = high[b: j + 1].max() + buffer
            target = entry - (stop - entry) * p.rr_ratio
        detail = {"trap": "down" if is_down else "up", "breakout_ts": bars["datetime"].iloc[b]
                  .isoformat(), "breakout_level": level, "entry_price": entry, "stop_loss": stop,
                  "take_profit": target}
        return {"ts": bars["datetime"].iloc[j], "symbol": bars["symbol"].iloc[j],
                "action": Action.ENTER_LONG.value if is_down else p.up_trap_action,
                "note": json.dumps(detail), "entry_price": entry, "stop_loss": stop,
                "take_profit": target, "breakout_level": level}
