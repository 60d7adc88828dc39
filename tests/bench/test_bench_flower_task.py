"""The Flower benchmark app trains fedchain's MNIST CNN on the samples fedchain would use."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "bench" / "flower" / "app"))

import round_overhead  # noqa: E402
from fcbench.task import MnistCNN, build_model, load_partition, train_batches  # noqa: E402

from fedchain.shared.fl.models import build_model as fedchain_model  # noqa: E402


def test_local_copy_of_the_cnn_matches_fedchains() -> None:
    ours = {k: tuple(v.shape) for k, v in MnistCNN().state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in fedchain_model("mnist-cnn", "mnist").state_dict().items()}
    assert ours == theirs
    assert type(build_model()).__name__ == "FedAvgCNN"  # fedchain's model is used when it is importable


def test_partitions_hold_fedchains_samples_and_train(tmp_path: Path, datasets_dir: Path) -> None:
    settings = round_overhead.fl_settings(2, 1, datasets_dir)
    paths = round_overhead.write_partitions(settings, tmp_path)
    assert [p.name for p in paths] == ["client-0.npz", "client-1.npz"]
    x0, y0 = load_partition(str(paths[0]))
    x1, _ = load_partition(str(paths[1]))
    assert x0.shape == (64, 1, 28, 28) and x0.dtype == torch.float32 and y0.dtype == torch.int64
    assert not torch.equal(x0, x1), "two clients got the same samples"
    assert 0 <= int(y0.min()) and int(y0.max()) <= 9
    torch.manual_seed(0)
    model = build_model()
    first = train_batches(model, x0, y0, epochs=1, batch_size=64, lr=0.05)
    later = train_batches(model, x0, y0, epochs=5, batch_size=64, lr=0.05)
    assert later < first
