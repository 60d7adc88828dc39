"""Weighted averaging (one level and in partials) and the strategies' selection and checks."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fedchain.shared.config import ConfigError, load_settings
from fedchain.shared.fl.aggregate import Partial, finish, partial_sums, weighted_average
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


# ---- two-level aggregation: partial sums, then finish ----------------------------------


def _hand_updates() -> list[tuple[dict[str, torch.Tensor], int]]:
    a = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(10), "m": torch.tensor([True, False])}
    b = {"w": torch.tensor([4.0, 8.0]), "n": torch.tensor(20), "m": torch.tensor([False, True])}
    return [(a, 3), (b, 1)]


def test_partial_sums_are_float64_weighted_sums_of_every_tensor() -> None:
    p = partial_sums(_hand_updates())
    assert p.weight == 4
    assert all(t.dtype == torch.float64 for t in p.sums.values())
    assert torch.equal(
        p.sums["w"], torch.tensor([4.0, 20.0], dtype=torch.float64)
    )  # 3*0+1*4, 3*4+1*8
    assert float(p.sums["n"]) == 50.0  # integer buffers too: 3*10 + 1*20
    assert torch.equal(p.sums["m"], torch.tensor([3.0, 1.0], dtype=torch.float64))
    assert p.dtypes == {"w": torch.float32, "n": torch.int64, "m": torch.bool}


def test_finish_divides_by_the_total_weight_and_casts_back() -> None:
    a, b = _hand_updates()
    out = finish([partial_sums([a]), partial_sums([b])])
    assert out["w"].dtype == torch.float32 and torch.equal(out["w"], torch.tensor([1.0, 5.0]))
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 12  # 50 / 4 = 12.5 rounds to even
    assert torch.equal(out["m"], torch.tensor([True, False]))  # weighted means 0.75 and 0.25
    one_level = weighted_average([a, b])
    assert all(torch.equal(one_level[k], out[k]) for k in out)


def test_partial_like_takes_the_dtypes_of_the_reference() -> None:
    sums = {
        "w": torch.tensor([3.0, 6.0], dtype=torch.float64),
        "n": torch.tensor(7.0, dtype=torch.float64),
    }
    p = Partial.like(sums, 2, {"w": torch.zeros(2, dtype=torch.float16), "n": torch.tensor(0)})
    out = finish([p])
    assert out["w"].dtype == torch.float16 and out["w"].tolist() == [1.5, 3.0]
    assert out["n"].dtype == torch.int64 and int(out["n"]) == 4  # 3.5 rounds to even


@pytest.mark.parametrize(
    "partials,match",
    [
        ([], "no updates"),
        (
            [Partial({"w": torch.ones(1, dtype=torch.float64)}, 0, {"w": torch.float32})],
            "no samples",
        ),
        (
            [Partial({"w": torch.ones(1, dtype=torch.float64)}, -1, {"w": torch.float32})],
            "negative",
        ),
        ([Partial({"w": torch.ones(1)}, 1, {"w": torch.float32})], "expected a torch.float64"),
        (
            [
                Partial({"w": torch.ones(1, dtype=torch.float64)}, 1, {"w": torch.float32}),
                Partial({"v": torch.ones(1, dtype=torch.float64)}, 1, {"v": torch.float32}),
            ],
            "different tensors",
        ),
        (
            [
                Partial({"w": torch.ones(1, dtype=torch.float64)}, 1, {"w": torch.float32}),
                Partial({"w": torch.ones(1, dtype=torch.float64)}, 1, {"w": torch.float16}),
            ],
            "expected",
        ),
        ([Partial({"w": torch.ones(1, dtype=torch.float64)}, 1, {})], "dtype"),
    ],
)
def test_finish_refuses_bad_partials(partials: list[Partial], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        finish(partials)


class _TinyNet(nn.Module):
    """A model with a float32 layer, a batch norm (int64 counter) and a float64 head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 4)
        self.norm = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 3).double()


def _random_state(model: nn.Module, gen: torch.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            out[k] = (torch.randn(v.shape, generator=gen, dtype=torch.float64) * 3).to(v.dtype)
        else:
            out[k] = torch.randint(0, 1000, v.shape, generator=gen).to(v.dtype)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5000), min_size=1, max_size=9).filter(lambda w: sum(w) > 0),
    st.data(),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["fedavg", "fedper"]),
)
def test_partials_in_any_grouping_finish_to_the_one_level_average(
    weights: list[int], data: st.DataObject, seed: int, algorithm: str
) -> None:
    model = _TinyNet()
    strategy = FedAvg() if algorithm == "fedavg" else FedPer(personal_layers=1)
    keys = strategy.bind(model)
    gen = torch.Generator().manual_seed(seed)
    updates = [
        ({k: v for k, v in _random_state(model, gen).items() if k in keys}, w) for w in weights
    ]
    groups_of = data.draw(st.lists(st.integers(0, 3), min_size=len(updates), max_size=len(updates)))
    groups: dict[int, list[tuple[dict[str, torch.Tensor], int]]] = {}
    for update, g in zip(updates, groups_of, strict=True):
        groups.setdefault(g, []).append(update)
    two_level = strategy.finish(1, [strategy.partial(1, g) for g in groups.values()])
    one_level = strategy.aggregate(1, updates)
    total = sum(weights)
    assert set(two_level) == set(one_level) == set(keys)
    for k in keys:
        assert two_level[k].dtype == one_level[k].dtype == model.state_dict()[k].dtype
        if one_level[k].is_floating_point():
            diff = (two_level[k].double() - one_level[k].double()).abs().max().item()
            assert diff <= 1e-6, (k, diff)
            by_hand = sum(u[k].double() * w for u, w in updates) / total  # the core's definition
            assert (one_level[k].double() - by_hand).abs().max().item() <= 1e-6
        else:
            assert torch.equal(two_level[k], one_level[k])


def test_strategy_checks_shapes_dtypes_and_partials_against_the_bound_model() -> None:
    model = _TinyNet()
    strategy = FedPer(personal_layers=1)
    keys = strategy.bind(model)
    assert "head.weight" not in keys and "norm.num_batches_tracked" in keys
    state = {k: v for k, v in model.state_dict().items() if k in keys}
    with pytest.raises(UpdateRejected, match="expected torch.float32"):
        strategy.check_update(
            1, 0, dict(state, **{"body.weight": torch.zeros(4, 5, dtype=torch.float64)}), 5
        )
    with pytest.raises(UpdateRejected, match=r"expected torch.float32\(4,\)"):
        strategy.check_update(1, 0, dict(state, **{"body.bias": torch.zeros(5)}), 5)
    with pytest.raises(UpdateRejected, match="negative sample count"):
        strategy.check_update(1, 0, state, -1)
    good = strategy.partial(1, [(state, 5)])
    assert strategy.finish(1, [good]).keys() == set(keys)
    as_float32 = Partial({k: v.float() for k, v in good.sums.items()}, 5, good.dtypes)
    with pytest.raises(UpdateRejected, match="partial aggregate 1 of round 2: tensor"):
        strategy.finish(2, [good, as_float32])
    leaked = Partial(
        dict(good.sums, **{"head.bias": torch.zeros(3, dtype=torch.float64)}),
        5,
        dict(good.dtypes, **{"head.bias": torch.float64}),
    )
    with pytest.raises(UpdateRejected, match="unexpected head.bias"):
        strategy.finish(1, [leaked])
    ref = strategy.partial_reference(model.state_dict())
    assert set(ref) == set(keys) and all(
        t.dtype == torch.float64 and t.is_meta for t in ref.values()
    )
    assert ref["body.weight"].shape == (4, 5)
