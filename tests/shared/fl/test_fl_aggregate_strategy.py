"""Weighted averaging and the strategies' selection and update checks."""

from __future__ import annotations

import random

import pytest
import torch

from fedchain.shared.config import ConfigError, load_settings
from fedchain.shared.fl.aggregate import weighted_average
from fedchain.shared.fl.models import build_model
from fedchain.shared.fl.strategy import FedAvg, FedPer, UpdateRejected, strategy_from_settings


def test_weighted_average_weights_by_samples() -> None:
    a = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(10)}
    b = {"w": torch.tensor([4.0, 8.0]), "n": torch.tensor(20)}
    out = weighted_average([(a, 3), (b, 1)])
    assert torch.allclose(out["w"], torch.tensor([1.0, 5.0]))
    assert out["w"].dtype == torch.float32
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 12  # 12.5 rounds to even


def test_weighted_average_keeps_half_precision_and_handles_zero_weight() -> None:
    a = {"w": torch.ones(3, dtype=torch.float16)}
    b = {"w": torch.full((3,), 100.0, dtype=torch.float16)}
    out = weighted_average([(a, 5), (b, 0)])
    assert out["w"].dtype == torch.float16 and torch.equal(out["w"], a["w"])


@pytest.mark.parametrize(
    "updates,match",
    [
        ([], "no updates"),
        ([({"w": torch.ones(1)}, 0)], "no samples"),
        ([({"w": torch.ones(1)}, -1)], "negative"),
        ([({"w": torch.ones(1)}, 1), ({"v": torch.ones(1)}, 1)], "different tensors"),
        ([({"w": torch.ones(1)}, 1), ({"w": torch.ones(2)}, 1)], "expected"),
        ([({"w": torch.ones(1)}, 1), ({"w": torch.ones(1, dtype=torch.float64)}, 1)], "expected"),
    ],
)
def test_weighted_average_refuses_bad_input(updates: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        weighted_average(updates)


def test_select_clients_fraction_is_seeded() -> None:
    s = FedAvg(client_fraction=0.3)
    ids = list(range(10))
    picked = s.select_clients(1, ids, random.Random(7))
    assert len(picked) == 3 and picked == sorted(picked) and set(picked) <= set(ids)
    assert picked == s.select_clients(1, ids, random.Random(7))
    assert FedAvg().select_clients(1, [3, 1, 2], random.Random(0)) == [1, 2, 3]
    assert len(FedAvg(client_fraction=0.01).select_clients(1, ids, random.Random(0))) == 1
    with pytest.raises(ConfigError):
        FedAvg(client_fraction=0)


def test_fedper_server_refuses_a_head_tensor() -> None:
    model = build_model("mnist-cnn", "mnist")
    strategy = FedPer(personal_layers=1)
    keys = strategy.bind(model)
    assert "fc.weight" not in keys
    state = model.state_dict()
    good = {k: state[k] for k in keys}
    assert set(strategy.aggregate(1, [(good, 5), (good, 5)])) == set(keys)
    leaked = dict(good, **{"fc.weight": state["fc.weight"]})
    with pytest.raises(UpdateRejected, match="unexpected fc.weight"):
        strategy.aggregate(1, [(good, 5), (leaked, 5)])


def test_fedavg_shares_everything_and_apply_merges() -> None:
    model = build_model("mnist-cnn", "mnist")
    strategy = strategy_from_settings(load_settings(algorithm="fedavg"))
    assert isinstance(strategy, FedAvg)
    assert strategy.bind(model) == list(model.state_dict())
    merged = strategy.apply({"a": torch.zeros(1), "b": torch.zeros(1)}, {"b": torch.ones(1)})
    assert merged["a"].item() == 0 and merged["b"].item() == 1
