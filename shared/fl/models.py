"""The models: the FedAvg-paper CNN, a small CIFAR-10 CNN, ResNet-18 -- or your own.

The initial global model of a run is ``build_model(settings.model, settings.dataset)``
called right after ``torch.manual_seed(settings.seed)`` (see ``initial_model``); the
simulation and the networked nodes both start from it, so the same seed gives the same
starting weights everywhere.

Your own model: ``--model package.module:factory``, where ``factory`` is a
``ModelFactory``: called as ``factory(num_classes=..., input_shape=...)`` (the dataset's,
``data.dataset_info``: e.g. ``10`` and ``(1, 28, 28)`` for mnist) and returning a fresh
``torch.nn.Module`` whose ``forward`` maps a batch ``(B, *input_shape)`` to logits
``(B, num_classes)``. An ``nn.Module`` subclass taking those keywords is a factory too.
Its weights must come from torch's RNG only (the seed makes every node's copy equal).
FedPer's head is the last ``--personal-layers`` parameterised layers in definition order
(``fedchain.shared.fl.split``), so define the classifier last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from fedchain.shared import config
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.data import DatasetInfo, dataset_info
from fedchain.shared.fl.specs import SpecError, is_spec, load_callable

MODEL_NAMES: tuple[str, ...] = config.MODEL_NAMES
NUM_CLASSES = 10
"""The classes of fedchain's own datasets (the default of its models)."""


class ModelFactory(Protocol):
    """What ``--model package.module:factory`` names (see the module doc)."""

    def __call__(self, *, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module: ...


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
    """``auto`` -> ``cifar-cnn`` for cifar10, ``mnist-cnn`` for the others; a spec is itself."""
    if is_spec(name):
        return name
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model '{name}' (use {', '.join(MODEL_NAMES)} or package.module:factory)")
    if name == "auto":
        return "cifar-cnn" if dataset == "cifar10" else "mnist-cnn"
    return name


def custom_model(spec: str, info: DatasetInfo) -> nn.Module:
    """``factory(num_classes=..., input_shape=...)`` of the factory ``spec``, checked.

    Raises SpecError naming ``--model`` and the spec when the factory does not import,
    raises, or returns something that is not an ``nn.Module``.
    """
    factory = load_callable(spec, "--model")
    try:
        model = factory(num_classes=info.num_classes, input_shape=info.input_shape)  # type: ignore[operator]
    except Exception as exc:  # the user's factory failed: any type
        raise SpecError(
            f"--model {spec!r}: factory(num_classes={info.num_classes}, input_shape={info.input_shape}) "
            f"raised {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise SpecError(f"--model {spec!r}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    if not any(True for _ in model.parameters()):
        raise SpecError(f"--model {spec!r}: the factory's model has no parameters to train")
    return model


def build_model(name: str, dataset: str, *, data_dir: Path | str | None = None) -> nn.Module:
    """A fresh model ``name`` shaped for ``dataset``'s samples (weights from torch's RNG).

    ``name`` is one of ``MODEL_NAMES`` or a factory spec; ``dataset`` one of fedchain's or
    a loader spec, loaded from ``data_dir`` (default ``./data``) for its classes and shape.
    """
    resolved = resolve_model_name(name, dataset)
    info = dataset_info(dataset, data_dir)
    if is_spec(resolved):
        return custom_model(resolved, info)
    shape = info.input_shape
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(
            f"--model {name} needs square images (C, H, H); dataset {dataset!r} gives inputs of shape "
            f"{shape}: use --model package.module:factory"
        )
    channels, size = shape[0], shape[1]
    if resolved == "mnist-cnn":
        return FedAvgCNN(channels, size, info.num_classes)
    if resolved == "cifar-cnn":
        return CifarCNN(channels, size, info.num_classes)
    return resnet18(channels, info.num_classes)


def initial_model(settings: Settings) -> nn.Module:
    """The run's initial global model: ``torch.manual_seed(seed)`` then ``build_model``."""
    torch.manual_seed(settings.seed)
    return build_model(settings.model, settings.dataset, data_dir=settings.data_dir)
