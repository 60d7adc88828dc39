"""The model, the data and the local step shared by the ServerApp and the ClientApp.

The model is fedchain's MNIST CNN (``fedchain.shared.fl.models.build_model("mnist-cnn", "mnist")``)
when fedchain's FL core is importable, else an identical local definition
(5x5 conv32 - pool - 5x5 conv64 - pool - FC512 - FC10), so both systems train the same net.
Each SuperNode's samples come from an ``.npz`` file named in its node config; the
benchmark writes it from fedchain's own partition of the same settings.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MnistCNN(nn.Module):
    """5x5 conv32 - pool - 5x5 conv64 - pool - FC512 - FC10, laid out exactly as
    ``fedchain.shared.fl.models.FedAvgCNN`` (same parameter names and shapes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(32, 64, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.fc1 = nn.Sequential(nn.Linear(64 * 4 * 4, 512), nn.ReLU(inplace=True))
        self.fc = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        return self.fc(self.fc1(torch.flatten(x, 1)))


def build_model() -> nn.Module:
    """fedchain's MNIST CNN when its FL core is installed, else the identical local copy."""
    try:
        from fedchain.shared.fl.models import build_model as fedchain_build_model  # type: ignore[import-not-found]
    except ImportError:
        return MnistCNN()
    return fedchain_build_model("mnist-cnn", "mnist")


def load_partition(data_file: str) -> tuple[torch.Tensor, torch.Tensor]:
    """This node's training samples: arrays ``x`` (float32 N,1,28,28, normalised) and ``y``
    (int64) from an ``.npz`` written by bench/round_overhead.py (no pickle allowed)."""
    with np.load(data_file, allow_pickle=False) as npz:
        return torch.from_numpy(npz["x"].copy()), torch.from_numpy(npz["y"].copy())


def train_batches(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int, lr: float
) -> float:
    """``epochs`` passes of plain SGD over (x, y) in order, in batches; returns the mean loss."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    total = 0.0
    steps = 0
    for _ in range(epochs):
        for start in range(0, len(y), batch_size):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[start : start + batch_size]), y[start : start + batch_size])
            loss.backward()
            opt.step()
            total += float(loss.detach())
            steps += 1
    return total / max(steps, 1)
