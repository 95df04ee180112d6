"""LSTM probabilities -> contract-shaped signals; the ``"lstm"`` signal generator.

Seed 001's rules, long-only for Freqtrade: a bar is an entry candidate when
``probability > threshold`` and the RSI filter passes (``rsi < rsi_upper``), an
exit candidate when ``probability < threshold`` and ``rsi > rsi_lower`` (the
seed's short side becomes an exit). ``score`` is always the probability.
Without the ladder the candidates drive a long/flat position (exit wins a
tie) and ``weight`` is that position. With the ladder (default), seed 001's
probe -> full -> trail state machine sizes the position from the close path:
flat -> probe on an entry candidate; probe -> full at +probe_to_full, probe ->
flat at -probe_sl; full -> trail at +full_to_trail, full -> flat at -full_sl;
trail -> flat on a drawdown of trail_dd of the peak gain, at +trail_max, or at
-full_sl. ``weight`` = probe/full/trail level (0.3 / 1.0 / 1.0) so
``ExternalSignalStrategy`` can size by stake or position adjustment; ``action``
marks flat <-> in-position changes. The ladder is path-dependent, so it runs as
one sequential pass over plain floats (the only per-bar loop in the model
code; ~1 s per million bars); entry prices are the signal bar's close (the
fill is the next open). Not training (see :mod:`research.models.fitting`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from research.models.artifact import LSTMArtifact, load_artifact
from research.models.inference import predict_history, predict_latest
from research.signals.base import GeneratorError, GeneratorParams, SignalGenerator
from research.signals.frame import signal_frame, sort_signals
from research.signals.positions import events_to_positions, position_changes
from research.signals.registry import register_generator

FLAT, PROBE, FULL, TRAIL = 0, 1, 2, 3


class LadderParams(BaseModel):
    """Seed 001's thresholds (fractions of the entry price) and our weight levels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probe_weight: float = Field(0.3, gt=0.0, le=1.0)
    full_weight: float = Field(1.0, gt=0.0, le=1.0)
    trail_weight: float = Field(1.0, gt=0.0, le=1.0)
    probe_to_full: float = Field(0.003, gt=0.0)
    probe_sl: float = Field(0.003, gt=0.0)
    full_to_trail: float = Field(0.005, gt=0.0)
    full_sl: float = Field(0.004, gt=0.0)
    trail_dd: float = Field(0.30, gt=0.0, le=1.0)
    trail_max: float = Field(0.015, gt=0.0)


class LSTMParams(GeneratorParams, LadderParams):
    """Generator config: the artefact, the seed-001 decision rule and the ladder."""

    model_path: str
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    rsi_column: str | None = "rsi_14"  # None switches the RSI filter off
    rsi_upper: float = 60.0
    rsi_lower: float = 40.0
    actions: bool = True
    ladder: bool = True
    exit_on_signal: bool = False  # ladder: also leave on an exit candidate
    mode: Literal["history", "latest"] = "history"
    device: Literal["auto", "cpu", "cuda"] = "auto"


def candidates(prob: np.ndarray, rsi: np.ndarray | None, threshold: float, rsi_upper: float,
               rsi_lower: float) -> tuple[np.ndarray, np.ndarray]:
    """(enter, exit) candidate masks per bar from probability and the RSI filter."""
    up, down = prob > threshold, prob < threshold
    if rsi is None:
        return up, down
    with np.errstate(invalid="ignore"):
        return up & (rsi < rsi_upper), down & (rsi > rsi_lower)


def ladder_states(close: np.ndarray, enter: np.ndarray, exit_: np.ndarray,
                  groups: np.ndarray, p: LadderParams, exit_on_signal: bool = False
                  ) -> np.ndarray:
    """Per bar the ladder state (FLAT/PROBE/FULL/TRAIL) after that bar's close.

    Rows are time-ordered within each group; every group starts flat.
    """
    n = len(close)
    states = np.zeros(n, dtype=np.int8)
    c, en, ex = close.tolist(), enter.tolist(), exit_.tolist()
    new_group = np.r_[True, groups[1:] != groups[:-1]].tolist() if n else []
    state, entry, peak = FLAT, 0.0, 0.0
    for i in range(n):
        if new_group[i]:
            state = FLAT
        if state == FLAT:
            if en[i]:
                state, entry, peak = PROBE, c[i], 0.0
        else:
            pnl = c[i] / entry - 1.0
            peak = max(peak, pnl)
            if exit_on_signal and ex[i]:
                state = FLAT
            elif state == PROBE:
                state = FULL if pnl >= p.probe_to_full else FLAT if pnl <= -p.probe_sl else PROBE
            elif state == FULL:
                state = TRAIL if pnl >= p.full_to_trail else FLAT if pnl <= -p.full_sl else FULL
            else:
                drawdown = (peak - pnl) / max(peak, 0.001) if peak > 0 else 0.0
                if drawdown >= p.trail_dd or pnl >= p.trail_max or pnl <= -p.full_sl:
                    state = FLAT
        states[i] = state
    return states


def ladder_weights(states: np.ndarray, p: LadderParams) -> np.ndarray:
    """State -> weight level: 0, probe_weight, full_weight, trail_weight."""
    return np.array([0.0, p.probe_weight, p.full_weight, p.trail_weight])[states]


def lstm_signals(predictions: pd.DataFrame, frame: pd.DataFrame, params: LSTMParams,
                 version: int, note: str) -> pd.DataFrame:
    """Predictions (datetime, symbol, probability) + frame (rsi, close) -> a signal frame."""
    need = [c for c in (params.rsi_column, "close" if params.ladder else None) if c]
    merged = predictions.merge(frame[["datetime", "symbol", *need]], on=["datetime", "symbol"],
                               how="left", validate="one_to_one")
    merged = merged.sort_values(["symbol", "datetime"], kind="stable", ignore_index=True)
    prob = merged["probability"].to_numpy(dtype=np.float64)
    rsi = merged[params.rsi_column].to_numpy(dtype=np.float64) if params.rsi_column else None
    enter, exit_ = candidates(prob, rsi, params.threshold, params.rsi_upper, params.rsi_lower)
    groups = merged["symbol"].to_numpy()
    if params.ladder:
        states = ladder_states(merged["close"].to_numpy(dtype=np.float64), enter, exit_, groups,
                               params, params.exit_on_signal)
        weight = ladder_weights(states, params)
        position = (states != FLAT).astype(np.int8)
    else:
        position = events_to_positions(enter, exit_, groups)
        weight = position.astype(np.float64)
    action = position_changes(position, groups) if params.actions else None
    out = signal_frame(merged["datetime"], merged["symbol"], score=prob, weight=weight,
                       action=action, note=note, timeframe=params.timeframe,
                       strategy_id=params.strategy_id, source=params.source, version=version)
    return sort_signals(out)


@lru_cache(maxsize=8)
def _cached_artifact(path: str, mtime_ns: int) -> LSTMArtifact:
    return load_artifact(path)


@register_generator
class LSTMGenerator(SignalGenerator):
    """``{"type": "lstm", "params": {"model_path": ..., "strategy_id": ..., "timeframe": ...}}``.

    Input: a factor frame with the artefact's feature columns, plus the RSI column
    (filter) and ``close`` (ladder). ``version`` defaults to the artefact's
    hash-derived version; ``mode="latest"`` emits only each symbol's newest bar.
    """

    type_name = "lstm"
    Params: ClassVar[type[GeneratorParams]] = LSTMParams
    params: LSTMParams

    def artifact(self) -> LSTMArtifact:
        path = Path(self.params.model_path)
        if not path.is_file():
            raise GeneratorError(f"lstm generator: model_path {str(path)!r} does not exist")
        return _cached_artifact(str(path.resolve()), path.stat().st_mtime_ns)

    def generate(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        art = self.artifact()
        if art.config.timeframe != p.timeframe:
            raise GeneratorError(f"lstm generator: timeframe {p.timeframe!r} differs from the "
                                 f"model's {art.config.timeframe!r}")
        extra = [c for c in (p.rsi_column, "close" if p.ladder else None) if c]
        data = self.prepared(frame, [*art.feature_columns, *extra])
        version = p.version if "version" in p.model_fields_set else art.version
        note = f"lstm {art.content_hash[:12]}"
        predict = predict_latest if p.mode == "latest" and not p.ladder else predict_history
        predictions = predict(art, data, p.device)
        if p.mode == "latest" and len(data) and predictions.empty:
            raise GeneratorError(
                f"lstm generator: no symbol has a complete {art.config.network.seq_len}-bar "
                "sequence of finite features at its newest bar (in a pipeline, give the "
                "newest-bar job latest.context_bars >= seq_len, more for the ladder's path)")
        signals = lstm_signals(predictions, data, p, version, note)
        if p.mode == "latest" and p.ladder:  # the ladder needs the path; keep each newest bar
            newest = signals["symbol"].map(data.groupby("symbol")["datetime"].max())
            signals = signals[signals["ts"] == newest].reset_index(drop=True)
        return signals
