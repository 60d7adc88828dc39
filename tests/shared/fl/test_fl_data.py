"""Dataset loading: torchvision layouts, gzipped or plain IDX, clear errors, same shares."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from fedchain.shared.config import ConfigError, load_settings
from fedchain.shared.fl import data as D


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def _fake_idx_set(folder: Path, gz: bool, n_train: int = 60, n_test: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    tr_x = rng.integers(0, 256, (n_train, 28, 28))
    te_x = rng.integers(0, 256, (n_test, 28, 28))
    tr_y = np.arange(n_train) % 10
    te_y = np.arange(n_test) % 10
    _write_idx(folder / "train-images-idx3-ubyte", tr_x, gz)
    _write_idx(folder / "train-labels-idx1-ubyte", tr_y, gz)
    _write_idx(folder / "t10k-images-idx3-ubyte", te_x, gz)
    _write_idx(folder / "t10k-labels-idx1-ubyte", te_y, gz)
    return np.concatenate([tr_x, te_x]), np.concatenate([tr_y, te_y])


@pytest.mark.parametrize("gz", [True, False])
def test_reads_mnist_idx_gzipped_or_plain(tmp_path: Path, gz: bool) -> None:
    images, labels = _fake_idx_set(tmp_path / "MNIST" / "raw", gz)
    pool = D.load_pool("mnist", tmp_path)
    assert pool.images.shape == (80, 1, 28, 28) and pool.images.dtype == torch.uint8
    assert np.array_equal(pool.images[:, 0].numpy(), images)
    assert np.array_equal(pool.labels.numpy(), labels)


def test_fmnist_reads_the_debian_flat_layout(tmp_path: Path) -> None:
    _fake_idx_set(tmp_path / "fashion-mnist", gz=True)
    pool = D.load_pool("fmnist", tmp_path / "fashion-mnist")
    assert len(pool) == 80


def test_missing_dataset_says_where_to_put_files(tmp_path: Path) -> None:
    with pytest.raises(D.DatasetMissing) as err:
        D.load_pool("mnist", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "--download" in msg and "internet" in msg
    assert isinstance(err.value, ConfigError)
    with pytest.raises(D.DatasetMissing, match="cifar-10-batches-py"):
        D.load_pool("cifar10", tmp_path)


def test_truncated_idx_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    _fake_idx_set(folder, gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(D.DatasetMissing, match="truncated"):
        D.load_pool("mnist", tmp_path)


def test_mnist_sample_is_5000_real_digits() -> None:
    pool = D.load_pool("mnist-sample", "unused")
    assert pool.images.shape == (5000, 1, 28, 28)
    assert sorted(np.unique(pool.labels.numpy()).tolist()) == list(range(10))
    x, y = pool[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= y <= 9


def test_load_client_equals_load_federated(tmp_path: Path) -> None:
    s = load_settings(dataset="mnist-sample", clients=6, partition="dirichlet", alpha=0.5, seed=3)
    everyone = D.load_federated(s)
    assert len(everyone) == 6
    for i in (0, 5):
        one = D.load_client(s, i)
        assert torch.equal(one.train.images, everyone[i].train.images)
        assert torch.equal(one.test.labels, everyone[i].test.labels)
        assert one.label_counts == everyone[i].label_counts
    assert sum(sum(c.label_counts.values()) for c in everyone) == 5000
    with pytest.raises(ConfigError, match="outside"):
        D.load_client(s, 6)


def test_client_shares_are_75_25_and_counts_match() -> None:
    s = load_settings(dataset="mnist-sample", clients=4, partition="pathological", seed=1)
    for c in D.load_federated(s):
        n_train, n_test = len(c.train), len(c.test)
        assert abs(n_train / (n_train + n_test) - 0.75) < 0.01
        labels = torch.cat([c.train.labels, c.test.labels]).tolist()
        assert c.label_counts == {k: labels.count(k) for k in sorted(set(labels))}
        assert len(c.label_counts) == 2


def test_max_samples_takes_a_seeded_subset() -> None:
    s = load_settings(dataset="mnist-sample", clients=2, max_samples=400, seed=9)
    a, b = D.load_federated(s), D.load_federated(s)
    assert sum(len(c.train) + len(c.test) for c in a) == 400
    assert torch.equal(a[1].train.images, b[1].train.images)


def test_real_mnist_and_cifar10(datasets_dir: Path) -> None:
    mnist = D.load_pool("mnist", datasets_dir)
    assert mnist.images.shape == (70000, 1, 28, 28)
    # the README's published class counts: train + test of digit 0 and digit 1
    assert int((mnist.labels == 0).sum()) == 5923 + 980
    assert int((mnist.labels == 1).sum()) == 6742 + 1135
    cifar = D.load_pool("cifar10", datasets_dir)
    assert cifar.images.shape == (60000, 3, 32, 32)
    assert np.bincount(cifar.labels.numpy()).tolist() == [6000] * 10
    mean = cifar.images[:5000].float().div(255).mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.tensor([0.49, 0.48, 0.45]), atol=0.02)


def test_download_offline_says_it_needs_internet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchvision

    class Offline:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(D.DatasetMissing, match="could not download mnist .*needs internet"):
        D.load_pool("mnist", tmp_path / "fresh", download=True)


def test_client_shares_are_views_into_one_pool() -> None:
    s = load_settings(dataset="mnist-sample", clients=200, partition="iid")
    pool = D.load_pool(s.dataset, s.data_dir)
    shares = D.load_federated(s)
    for share in shares:  # no rows copied: every split reads the pool's own tensors
        assert share.train.shares_pool_with(pool) and share.test.shares_pool_with(pool)
    x, y = shares[7].train.batch(torch.arange(3))
    rows = shares[7].train.rows[:3]
    assert torch.equal(y, pool.labels[rows])
    assert torch.equal(x, pool.batch(rows)[0])
