"""The models: the FedAvg-paper CNN, a small CIFAR-10 CNN and ResNet-18.

The initial global model of a run is ``build_model(settings.model, settings.dataset)``
called right after ``torch.manual_seed(settings.seed)`` (see ``initial_model``); the
simulation and the networked nodes both start from it, so the same seed gives the same
starting weights everywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from fedchain.shared.config import ConfigError, Settings

MODEL_NAMES = ("auto", "mnist-cnn", "cifar-cnn", "resnet18")
NUM_CLASSES = 10
_INPUT: dict[str, tuple[int, int]] = {
    "mnist": (1, 28),
    "mnist-sample": (1, 28),
    "fmnist": (1, 28),
    "cifar10": (3, 32),
}


class FedAvgCNN(nn.Module):
    """McMahan et al.'s CNN: 5x5 conv 32 -> pool -> 5x5 conv 64 -> pool -> FC 512 -> FC 10.

    Layer names follow PFLlib's ``FedAvgCNN`` (``conv1``, ``conv2``, ``fc1``, ``fc``); the
    classifier ``fc`` is the last parameterised layer, i.e. FedPer's default head.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 32, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(32, 64, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Sequential(nn.Linear(64 * side * side, 512), nn.ReLU(inplace=True))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        logits: torch.Tensor = self.fc(self.fc1(torch.flatten(x, 1)))
        return logits


class CifarCNN(nn.Module):
    """A small CNN for 32x32 RGB: two 3x3 conv blocks with batch norm, FC 256, FC 10."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = NUM_CLASSES):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(in_channels, 32), block(32, 64), block(64, 128))
        side = image_size // 8
        self.fc1 = nn.Sequential(nn.Linear(128 * side * side, 256), nn.ReLU(inplace=True))
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(self.fc1(torch.flatten(self.features(x), 1)))
        return logits


def resnet18(in_channels: int = 3, num_classes: int = NUM_CLASSES) -> nn.Module:
    """torchvision's ResNet-18 with the usual small-image stem (3x3 conv, no max-pool)."""
    import torchvision

    model: nn.Module = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def resolve_model_name(name: str, dataset: str) -> str:
    """``auto`` -> ``cifar-cnn`` for cifar10, ``mnist-cnn`` for the 28x28 datasets."""
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model '{name}' (use {', '.join(MODEL_NAMES)})")
    if dataset not in _INPUT:
        raise ConfigError(f"unknown dataset '{dataset}' (use {', '.join(sorted(_INPUT))})")
    if name == "auto":
        return "cifar-cnn" if dataset == "cifar10" else "mnist-cnn"
    return name


def build_model(name: str, dataset: str) -> nn.Module:
    """A fresh model ``name`` shaped for ``dataset``'s images (weights from torch's RNG)."""
    resolved = resolve_model_name(name, dataset)
    channels, size = _INPUT[dataset]
    if resolved == "mnist-cnn":
        return FedAvgCNN(channels, size)
    if resolved == "cifar-cnn":
        return CifarCNN(channels, size)
    return resnet18(channels)


def initial_model(settings: Settings) -> nn.Module:
    """The run's initial global model: ``torch.manual_seed(seed)`` then ``build_model``."""
    torch.manual_seed(settings.seed)
    return build_model(settings.model, settings.dataset)
