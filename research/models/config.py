"""Configuration of the LSTM signal model: architecture, labels, training, walk-forward.

Defaults follow seed 001's LSTM strategy (2-layer LSTM, 64 hidden units, a
64 -> 32 -> 1 head with a sigmoid, sequences of 10 bars, dropout 0.2). All
models are pydantic with unknown keys forbidden, so a misspelt key in a
YAML/JSON config fails with its name. Features are factor-registry requests
(``"rsi"`` or ``{"name": "rsi", "params": {"period": 7}}``), never ad-hoc
columns. Not a trainer: see :mod:`research.models.training`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from research.factors.registry import resolve_specs
from signal_export.contract import timeframe_seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(_Strict):
    """The network: seed 001's ``LSTMModel`` by default."""

    seq_len: int = Field(10, ge=1)
    hidden_size: int = Field(64, ge=1)
    num_layers: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    fc_size: int = Field(32, ge=1)


class LabelConfig(_Strict):
    """Label = sign of the forward return over ``horizon`` bars.

    Returns with ``|r| <= dead_zone`` are dropped from training and evaluation
    (``"drop"``) or kept as a neutral 0.5 target that is excluded from
    evaluation (``"neutral"``).
    """

    horizon: int = Field(1, ge=1)
    dead_zone: float = Field(0.0, ge=0.0)
    dead_zone_mode: Literal["drop", "neutral"] = "drop"


class TrainConfig(_Strict):
    """Optimisation, early stopping and device settings."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    patience: int = Field(3, ge=1)  # epochs without validation improvement before stopping
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # last part of each train window
    class_weight: Literal["balanced", "none"] = "balanced"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = False  # mixed precision, only used on CUDA
    num_threads: int | None = Field(None, ge=1)  # torch CPU threads; None leaves torch's setting
    progress: bool = True  # tqdm bar per epoch


class WalkForwardConfig(_Strict):
    """Windows over the bar-time grid shared by all symbols (counts are bars)."""

    mode: Literal["rolling", "expanding"] = "rolling"
    train_bars: int = Field(2000, ge=2)
    test_bars: int = Field(500, ge=1)
    gap_bars: int | None = Field(None, ge=0)  # None: the label horizon (the minimum allowed)
    step_bars: int | None = Field(None, ge=1)  # None: test_bars (adjacent test windows)


class LSTMConfig(_Strict):
    """Everything needed to build features, labels and train/evaluate the model."""

    timeframe: str = "1m"
    features: tuple[str | dict[str, Any], ...] = ("ret", "rsi", "volatility", "zscore")
    network: NetworkConfig = NetworkConfig()
    labels: LabelConfig = LabelConfig()
    train: TrainConfig = TrainConfig()
    walk_forward: WalkForwardConfig = WalkForwardConfig()

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, value: str) -> str:
        timeframe_seconds(value)  # raises ContractError naming the value
        return value

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise ValueError("features must name at least one factor")
        resolve_specs(value)  # raises FactorError naming an unknown factor or parameter
        return value

    @model_validator(mode="after")
    def _gap_covers_horizon(self) -> LSTMConfig:
        gap = self.walk_forward.gap_bars
        if gap is not None and gap < self.labels.horizon:
            raise ValueError(f"walk_forward.gap_bars={gap} is shorter than the label horizon "
                             f"{self.labels.horizon}: train labels would overlap the test window")
        return self

    @property
    def gap_bars(self) -> int:
        """Bars left out between a train window's last bar and the test window's first."""
        gap = self.walk_forward.gap_bars
        return self.labels.horizon if gap is None else gap

    def feature_columns(self) -> list[str]:
        """The factor output columns the model reads, in order."""
        return [c for spec in resolve_specs(self.features) for c in spec.columns]
