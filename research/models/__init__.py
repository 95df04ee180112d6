"""LSTM signal model (seed 001) with walk-forward training, artefacts and drift checks.

Importing this package registers the ``"lstm"`` signal generator with
:func:`research.signals.registry.build_generator`.
"""

from research.models.artifact import (
    ArtifactError,
    FeatureMismatchError,
    LSTMArtifact,
    load_artifact,
    save_artifact,
)
from research.models.config import (
    LabelConfig,
    LSTMConfig,
    NetworkConfig,
    TrainConfig,
    WalkForwardConfig,
)
from research.models.dataset import build_feature_frame
from research.models.drift import DriftReport, DriftThresholds, drift_report, ks, psi
from research.models.fitting import train_artifact
from research.models.inference import predict_history, predict_latest
from research.models.signals import LSTMGenerator, ladder_states, lstm_signals
from research.models.walkforward import WalkForwardResult, run_walk_forward, walk_forward_folds

__all__ = [
    "ArtifactError", "DriftReport", "DriftThresholds", "FeatureMismatchError", "LSTMArtifact",
    "LSTMConfig", "LSTMGenerator", "LabelConfig", "NetworkConfig", "TrainConfig",
    "WalkForwardConfig", "WalkForwardResult", "build_feature_frame", "drift_report", "ks",
    "ladder_states", "load_artifact", "lstm_signals", "predict_history", "predict_latest", "psi",
    "run_walk_forward", "save_artifact", "train_artifact", "walk_forward_folds",
]
