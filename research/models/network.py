"""The LSTM classifier network and the torch runtime set-up (device, seeding, threads).

Seed 001's ``LSTMModel``: stacked LSTM over the sequence, the last step's
hidden state through ``Linear(hidden, fc) -> ReLU -> Linear(fc, 1)``. The
module returns logits; :meth:`LSTMClassifier.predict_proba` applies the
sigmoid. Training uses ``BCEWithLogitsLoss`` (the same function as a sigmoid
head + BCE, numerically safe and AMP-safe). Not a trainer.
"""

from __future__ import annotations

import torch
from torch import nn

from research.models.config import NetworkConfig


class LSTMClassifier(nn.Module):
    """(batch, seq_len, features) -> one logit per sequence."""

    def __init__(self, input_size: int, config: NetworkConfig):
        super().__init__()
        self.lstm = nn.LSTM(input_size, config.hidden_size, config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Linear(config.hidden_size, config.fc_size), nn.ReLU(),
                                  nn.Linear(config.fc_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :]).squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(x).float())


def select_device(choice: str = "auto") -> torch.device:
    """CUDA when asked for or, with ``"auto"``, when available; CPU otherwise."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device='cuda' but torch.cuda.is_available() is False")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int, num_threads: int | None = None) -> torch.Generator:
    """Seed torch and switch on deterministic algorithms; returns a generator for shuffling.

    Identical seeds give identical weights and predictions on CPU. (On CUDA cuDNN's
    LSTM kernels are deterministic only with ``CUBLAS_WORKSPACE_CONFIG`` set; we warn
    rather than fail there.)
    """
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
