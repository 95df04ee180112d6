"""Fit one LSTM classifier on prepared sequence arrays, with early stopping.

Weighted binary cross-entropy on logits (class weights ``n / (2 n_class)`` from
the training targets when ``class_weight="balanced"``; neutral 0.5 targets
weigh 1), Adam, mini-batches shuffled by a seeded generator, optional AMP on
CUDA, a tqdm bar over epochs, and early stopping on the validation loss with
the best epoch's weights restored. Arrays in, a trained model out: no
windowing, scaling or I/O here (see :mod:`research.models.walkforward`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from research.models.config import NetworkConfig, TrainConfig
from research.models.network import LSTMClassifier, seed_everything, select_device

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """The fitted model (on CPU, eval mode) and its training history."""

    model: LSTMClassifier
    best_epoch: int
    epochs_run: int
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def sample_weights(target: np.ndarray, mode: str) -> np.ndarray:
    """Per-sample weights: balanced classes over the definite (0/1) targets."""
    w = np.ones(len(target), dtype=np.float32)
    if mode != "balanced":
        return w
    pos, neg = target == 1.0, target == 0.0
    n = int(pos.sum() + neg.sum())
    if pos.any() and neg.any():
        w[pos] = n / (2.0 * pos.sum())
        w[neg] = n / (2.0 * neg.sum())
    return w


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
          amp: bool) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=amp):
        logits = model(x)
    per_sample = nn.functional.binary_cross_entropy_with_logits(logits.float(), y,
                                                                reduction="none")
    return (per_sample * w).sum() / w.sum()


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
              batch: int, amp: bool) -> float:
    model.eval()
    total, weight = 0.0, 0.0
    for i in range(0, len(x), batch):
        sl = slice(i, i + batch)
        total += float(_loss(model, x[sl], y[sl], w[sl], amp)) * float(w[sl].sum())
        weight += float(w[sl].sum())
    return total / weight if weight else float("nan")


def train_classifier(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                     y_val: np.ndarray, network: NetworkConfig, train: TrainConfig,
                     description: str = "train") -> TrainResult:
    """Train on (x_train, y_train), early-stop on (x_val, y_val); arrays are (n, seq, feat)."""
    if len(x_train) == 0:
        raise ValueError(f"{description}: no training sequences")
    gen = seed_everything(train.seed, train.num_threads)
    device = select_device(train.device)
    amp = train.amp and device.type == "cuda"
    model = LSTMClassifier(x_train.shape[2], network).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=train.learning_rate,
                           weight_decay=train.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    xt = torch.from_numpy(x_train).to(device)
    yt = torch.from_numpy(y_train.astype(np.float32)).to(device)
    wt = torch.from_numpy(sample_weights(y_train, train.class_weight)).to(device)
    have_val = len(x_val) > 0
    if have_val:
        xv = torch.from_numpy(x_val).to(device)
        yv = torch.from_numpy(y_val.astype(np.float32)).to(device)
        wv = torch.from_numpy(sample_weights(y_val, train.class_weight)).to(device)
    result = TrainResult(model=model, best_epoch=0, epochs_run=0)
    best, best_state, stale = float("inf"), None, 0
    bar = tqdm(range(train.epochs), desc=description, disable=not train.progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(xt), generator=gen).to(device)
        total = 0.0
        for i in range(0, len(order), train.batch_size):
            idx = order[i:i + train.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = _loss(model, xt[idx], yt[idx], wt[idx], amp)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.item() * len(idx)
        result.train_loss.append(total / len(xt))
        result.epochs_run = epoch + 1
        score = (_evaluate(model, xv, yv, wv, 4096, amp) if have_val
                 else result.train_loss[-1])
        result.val_loss.append(score)
        bar.set_postfix(train=f"{result.train_loss[-1]:.4f}", val=f"{score:.4f}")
        if score < best - 1e-6:
            best, stale, result.best_epoch = score, 0, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= train.patience:
                log.info("early stop", extra={"model": description, "epoch": epoch + 1,
                                              "best_epoch": result.best_epoch})
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.model = model.to("cpu").eval()
    return result
