"""User code the custom-model/dataset/strategy tests name by spec (``tests.shared.fl.custom_kit:X``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fedchain.shared.fl.aggregate import Partial
from fedchain.shared.fl.loaders import TensorData
from fedchain.shared.fl.strategy import FedPer, Strategy, Update

KIT = "tests.shared.fl.custom_kit"
CALLS: list[tuple[int, tuple[int, ...]]] = []
"""(num_classes, input_shape) of every TinyNet built (the factory's arguments)."""


class TinyNet(nn.Module):
    """An MLP over any input shape; ``head`` (last) is FedPer's personal layer."""

    def __init__(self, *, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        CALLS.append((num_classes, input_shape))
        features = 1
        for side in input_shape:
            features *= side
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(features, 16), nn.ReLU())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.body(x))
        return out


def blobs(data_dir: Path) -> TensorData:
    """600 float points in 6 dimensions, 3 classes around seeded centres."""
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(600) % 3
    inputs = (torch.randn(3, 6, generator=g) * 2)[labels] + torch.randn(600, 6, generator=g)
    return TensorData(inputs, labels, 3)


def squares(data_dir: Path) -> TensorData:
    """300 uint8 16x16 one-channel images of 3 classes (a bright band per class), with mean/std."""
    g = torch.Generator().manual_seed(4)
    labels = torch.arange(300) % 3
    images = torch.randint(0, 60, (300, 1, 16, 16), generator=g, dtype=torch.uint8)
    for c in range(3):
        images[labels == c, :, 5 * c : 5 * c + 5, :] = 250
    return TensorData(images, labels, 3, mean=(0.3,), std=(0.4,))


def not_a_dataset(data_dir: Path) -> list[int]:
    """A loader returning the wrong type."""
    return [1, 2, 3]


def bad_labels(data_dir: Path) -> TensorData:
    """A loader whose labels exceed its classes."""
    return TensorData(torch.zeros(10, 4), torch.arange(10), 3)


def failing_loader(data_dir: Path) -> TensorData:
    """A loader that raises."""
    raise FileNotFoundError(f"no data in {data_dir}")


def not_a_model(*, num_classes: int, input_shape: tuple[int, ...]) -> str:
    """A factory returning the wrong type."""
    return "a model"


class CountingFedPer(FedPer):
    """FedPer counting the updates its ``partial`` hook sums (class-wide)."""

    name = "counting-fedper"
    updates = 0

    def partial(self, server_round: int, updates: Sequence[Update]) -> Partial:
        type(self).updates += len(updates)
        return super().partial(server_round, updates)


class EveryOther(Strategy):
    """FedAvg over the even clients only (a ``select_clients`` hook)."""

    name = "every-other"

    def select_clients(self, server_round: int, client_ids: Sequence[int], rng: object) -> list[int]:  # type: ignore[override]
        return [i for i in sorted(client_ids) if i % 2 == 0]


class NoName(Strategy):
    """A strategy without a name (not registrable)."""
