"""Your own dataset: ``--dataset package.module:loader``.

A *loader* is a callable ``loader(data_dir: Path) -> CustomDataset``: it gets the run's
``--data-dir`` and returns every sample of the dataset (train and test pooled, as for
fedchain's own datasets) with the number of classes. The core does the rest exactly as
for mnist or cifar10 (``fedchain.shared.fl.data``): an optional seeded subset
(``--max-samples``), the partition over the clients (``--partition`` iid / dirichlet /
pathological, from the labels), each client's 75/25 train/test cut (``--train-fraction``),
batches, devices, label-flip experiments.

What a loader returns (``CustomDataset``; ``TensorData`` is a ready-made one):

* ``inputs`` -- a tensor ``(N, *input_shape)``: either ``uint8`` images ``(N, C, H, W)``,
  scaled to [0, 1] and then normalised by the optional ``mean`` / ``std`` (one value per
  channel) when a batch is taken, or a floating tensor of any shape, used as it is;
* ``labels`` -- an integer tensor ``(N,)`` with values in ``0 .. num_classes - 1``;
* ``num_classes`` -- at least 2; the model factory gets it (``--model module:factory``,
  see ``fedchain.shared.fl.models``) with ``input_shape = inputs.shape[1:]``.

A loader runs once per process and data dir (``data.load_pool`` caches it): in the
simulation, on each edge node (its share), and on each super node (which only needs the
number of classes and the input shape to build the model). It must be deterministic: every
node partitions the same samples in the same order. A loader that raises, or returns
anything else, is a ``ConfigError`` naming ``--dataset`` and the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from fedchain.shared.fl.specs import SpecError, load_callable


@runtime_checkable
class CustomDataset(Protocol):
    """What a ``--dataset`` loader returns: all samples, their labels, the number of classes.

    ``mean`` and ``std`` (tuples, one value per channel) are optional attributes, read only
    for ``uint8`` images.
    """

    @property
    def inputs(self) -> torch.Tensor:
        """``(N, C, H, W)`` uint8 images or a floating ``(N, ...)`` tensor."""
        ...

    @property
    def labels(self) -> torch.Tensor:
        """Integer labels ``(N,)`` in ``0 .. num_classes - 1``."""
        ...

    @property
    def num_classes(self) -> int:
        """How many classes the model predicts (at least 2)."""
        ...


@dataclass(frozen=True)
class TensorData:
    """A ``CustomDataset`` held in tensors (what most loaders return)."""

    inputs: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


Loader = Callable[[Path], CustomDataset]
"""The type of a ``--dataset`` loader."""


@dataclass(frozen=True)
class Loaded:
    """A loader's checked answer: what ``data.load_pool`` turns into a pool."""

    inputs: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_custom(spec: str, data_dir: Path) -> Loaded:
    """Import the loader ``spec``, call it with ``data_dir`` and check what it returns.

    Raises SpecError (a ConfigError) naming ``--dataset`` and the spec on any problem.
    """
    loader = load_callable(spec, "--dataset")
    try:
        data = loader(data_dir)  # type: ignore[operator]  # load_callable checked callable()
    except Exception as exc:  # the user's loader failed: any type
        text = str(exc).strip().splitlines()
        raise SpecError(
            f"--dataset {spec!r}: the loader raised {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
        ) from exc
    return check_loaded(spec, data)


def check_loaded(spec: str, data: object) -> Loaded:
    """``data`` as a ``Loaded`` when it is a valid ``CustomDataset``, else a SpecError."""
    what = f"--dataset {spec!r}"
    if not isinstance(data, CustomDataset):
        raise SpecError(
            f"{what}: the loader returned {type(data).__name__}, not a CustomDataset "
            "(inputs, labels, num_classes; e.g. fedchain.shared.fl.loaders.TensorData)"
        )
    inputs, labels, classes = data.inputs, data.labels, data.num_classes
    if not isinstance(inputs, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise SpecError(f"{what}: inputs and labels must be torch tensors")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise SpecError(f"{what}: num_classes must be an int of at least 2 (got {classes!r})")
    image = inputs.dtype == torch.uint8 and inputs.dim() == 4
    if not (image or (inputs.is_floating_point() and inputs.dim() >= 2)):
        raise SpecError(
            f"{what}: inputs must be uint8 images (N, C, H, W) or a floating (N, ...) tensor "
            f"(got {inputs.dtype}{tuple(inputs.shape)})"
        )
    if labels.dim() != 1 or labels.shape[0] != inputs.shape[0] or labels.is_floating_point():
        raise SpecError(f"{what}: labels must be an integer tensor with one label per input")
    if labels.numel() == 0 or int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise SpecError(f"{what}: labels must lie in 0..{classes - 1} (and there must be some)")
    mean = tuple(float(v) for v in getattr(data, "mean", ()) or ())
    std = tuple(float(v) for v in getattr(data, "std", ()) or ())
    if (mean or std) and not (image and len(mean) == len(std) == inputs.shape[1]):
        raise SpecError(f"{what}: mean and std are for uint8 images, one value per channel each")
    if any(s <= 0 for s in std):
        raise SpecError(f"{what}: std values must be positive")
    return Loaded(inputs.contiguous(), labels.to(torch.int64), classes, mean, std)
