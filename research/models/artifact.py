"""The saved LSTM model artefact: weights + scaler + features + config + range + metrics.

One ``torch.save`` file holding the state dict and a JSON metadata string
(loaded back with ``weights_only=True``: no pickled code). A SHA-256 content
hash over the metadata and every tensor's bytes identifies the model. The
signal ``version`` the generator stamps on exported signals must grow with
retraining (the exporter never lets a lower version overwrite a higher one), so
it is the training data's last bar in epoch minutes x 1000 plus three digits of
the hash (a tie-break between models trained on the same range). Loading
verifies the hash (a corrupted or edited file is refused) and, given the
data's feature columns, that they match the model's feature list, failing
with an error that names the missing/extra columns. The artefact also keeps a
sample of the training window's features, the reference for drift checks. Not
a trainer (see :mod:`research.models.fitting`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from research.models.config import LSTMConfig
from research.models.dataset import Scaler
from research.models.network import LSTMClassifier
from signal_export.errors import BridgeError

FORMAT = "lstm-artifact/1"


class ArtifactError(BridgeError, ValueError):
    """An artefact that cannot be saved, loaded or used; the message names the file/field."""


class FeatureMismatchError(ArtifactError):
    """The data's feature columns are not the ones the model was trained on."""


@dataclass
class LSTMArtifact:
    """A trained model and everything needed to use and audit it."""

    state_dict: dict[str, torch.Tensor]
    scaler: Scaler
    feature_columns: list[str]
    config: LSTMConfig
    data_range: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, list[float]] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {"format": FORMAT, "feature_columns": list(self.feature_columns),
                "config": self.config.model_dump(mode="json"), "scaler": self.scaler.to_dict(),
                "data_range": self.data_range, "metrics": self.metrics,
                "reference": self.reference}

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 over canonical metadata JSON and the tensors (name, dtype, shape, bytes)."""
        h = hashlib.sha256(json.dumps(self.metadata(), sort_keys=True).encode())
        for name in sorted(self.state_dict):
            t = self.state_dict[name].detach().to("cpu").contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()

    @property
    def version(self) -> int:
        """Signal ``version``: newer training data -> higher version (JSON-safe int >= 1)."""
        end = pd.Timestamp(self.data_range["end"])
        minutes = int(end.value // 60_000_000_000)
        return max(minutes, 0) * 1000 + int(self.content_hash[:8], 16) % 1000 + 1

    @cached_property
    def model(self) -> LSTMClassifier:
        net = LSTMClassifier(len(self.feature_columns), self.config.network)
        net.load_state_dict(self.state_dict)
        return net.eval()

    def check_features(self, columns: Iterable[str]) -> None:
        """Raise :class:`FeatureMismatchError` unless every model feature is in ``columns``."""
        have = list(columns)
        missing = [c for c in self.feature_columns if c not in have]
        if missing:
            raise FeatureMismatchError(
                f"model {self.content_hash[:12]} needs feature column(s) {missing} that the "
                f"data lacks (model features: {self.feature_columns}; data has: {have})")


def save_artifact(artifact: LSTMArtifact, path: str | Path) -> Path:
    """Write ``artifact`` to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "meta": json.dumps(artifact.metadata(), sort_keys=True),
               "content_hash": artifact.content_hash,
               "state_dict": {k: v.detach().to("cpu") for k, v in artifact.state_dict.items()}}
    torch.save(payload, path)
    return path


def load_artifact(path: str | Path, features: Iterable[str] | None = None) -> LSTMArtifact:
    """Read and verify an artefact; with ``features``, they must equal the model's list.

    ``features`` is the data's feature list (e.g. a pipeline config's columns): a
    different list (missing, extra or reordered names) raises :class:`FeatureMismatchError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model artefact {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(payload["meta"])
        stored_hash = payload["content_hash"]
        state = dict(payload["state_dict"])
    except Exception as exc:  # truncated, not a zip, not our pickle: unreadable either way
        raise ArtifactError(f"model artefact {str(path)!r} is not readable: "
                            f"{type(exc).__name__}: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"model artefact {str(path)!r}: format {meta.get('format')!r}, "
                            f"expected {FORMAT!r}")
    artifact = LSTMArtifact(
        state_dict=state, scaler=Scaler.from_dict(meta["scaler"]),
        feature_columns=list(meta["feature_columns"]),
        config=LSTMConfig.model_validate(meta["config"]), data_range=meta["data_range"],
        metrics=meta["metrics"], reference=meta["reference"])
    if artifact.content_hash != stored_hash:
        raise ArtifactError(f"model artefact {str(path)!r}: content hash mismatch "
                            f"(stored {stored_hash[:12]}, computed {artifact.content_hash[:12]})")
    if features is not None and list(features) != artifact.feature_columns:
        raise FeatureMismatchError(
            f"model artefact {str(path)!r} was trained on features {artifact.feature_columns}, "
            f"the data has {list(features)}")
    return artifact


def reference_sample(values: np.ndarray, columns: list[str], size: int = 2000
                     ) -> dict[str, list[float]]:
    """Evenly spaced quantiles of each training feature: the drift-check reference."""
    if len(values) == 0:
        return {c: [] for c in columns}
    qs = np.linspace(0.0, 1.0, min(size, len(values)))
    return {c: [float(v) for v in np.quantile(values[:, i], qs)] for i, c in enumerate(columns)}
