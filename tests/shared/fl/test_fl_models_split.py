"""Model shapes and FedPer's base/head split of any nn.Module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedchain.shared.config import ConfigError, load_settings
from fedchain.shared.fl.models import FedAvgCNN, build_model, initial_model, resolve_model_name
from fedchain.shared.fl.split import base_keys, head_keys, parameterised_layers
from fedchain.shared.fl.strategy import FedAvg, FedPer, strategy_from_settings


@pytest.mark.parametrize(
    "name,dataset,shape",
    [
        ("auto", "mnist", (2, 1, 28, 28)),
        ("auto", "fmnist", (2, 1, 28, 28)),
        ("auto", "cifar10", (2, 3, 32, 32)),
        ("mnist-cnn", "cifar10", (2, 3, 32, 32)),
        ("resnet18", "cifar10", (2, 3, 32, 32)),
        ("resnet18", "mnist-sample", (2, 1, 28, 28)),
    ],
)
def test_models_give_ten_logits(name: str, dataset: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, dataset).eval()
    assert model(torch.zeros(shape)).shape == (2, 10)


def test_fedavg_cnn_is_the_papers_cnn() -> None:
    model = build_model("auto", "mnist")
    assert isinstance(model, FedAvgCNN)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (5, 5)), (64, (5, 5))]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(1024, 512), (512, 10)]
    assert sum(p.numel() for p in model.parameters()) == 582_026


def test_auto_and_unknown_names() -> None:
    assert resolve_model_name("auto", "cifar10") == "cifar-cnn"
    assert resolve_model_name("auto", "mnist-sample") == "mnist-cnn"
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("vgg", "mnist")


def test_initial_model_is_seeded() -> None:
    a = initial_model(load_settings(seed=5)).state_dict()
    b = initial_model(load_settings(seed=5)).state_dict()
    c = initial_model(load_settings(seed=6)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


def test_head_is_the_classifier_by_default() -> None:
    model = build_model("mnist-cnn", "mnist")
    assert head_keys(model, 1) == ["fc.weight", "fc.bias"]
    assert head_keys(model, 2) == ["fc1.0.weight", "fc1.0.bias", "fc.weight", "fc.bias"]
    assert head_keys(model, 0) == []
    assert base_keys(model, 1) == [
        "conv1.0.weight",
        "conv1.0.bias",
        "conv2.0.weight",
        "conv2.0.bias",
        "fc1.0.weight",
        "fc1.0.bias",
    ]


def test_head_of_resnet_includes_batch_norm_buffers() -> None:
    model = build_model("resnet18", "cifar10")
    head = head_keys(model, 2)
    assert head == [
        "layer4.1.bn2.weight",
        "layer4.1.bn2.bias",
        "layer4.1.bn2.running_mean",
        "layer4.1.bn2.running_var",
        "layer4.1.bn2.num_batches_tracked",
        "fc.weight",
        "fc.bias",
    ]
    base = base_keys(model, 2)
    assert set(base).isdisjoint(head) and set(base) | set(head) == set(model.state_dict())


class UserModel(nn.Module):
    """A user's own model whose last parameterised layer is a batch norm."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.act = nn.ReLU()
        self.norm = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.body(x)))


def test_split_works_on_any_module() -> None:
    model = UserModel()
    assert parameterised_layers(model) == ["body", "norm"]
    assert head_keys(model, 1) == [
        "norm.weight",
        "norm.bias",
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
    ]
    with pytest.raises(ConfigError, match="only 2 parameterised layers"):
        head_keys(model, 2)


def test_strategy_decides_what_is_shared_fedper_base_fedavg_whole() -> None:
    model = build_model("cifar-cnn", "cifar10")
    per = FedPer(personal_layers=1).shared_keys(model)
    avg = FedAvg(personal_layers=1).shared_keys(model)
    assert "fc.weight" not in per and "fc.bias" not in per
    assert per == base_keys(model, 1)
    assert avg == list(model.state_dict())
    with pytest.raises(ConfigError, match="unknown algorithm"):
        strategy_from_settings(load_settings(), "fedprox")
