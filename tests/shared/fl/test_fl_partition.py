"""Partitioners: seeded, reproducible, and shaped as their names promise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.shared.config import ConfigError
from fedchain.shared.fl import partition as P

LABELS = np.repeat(np.arange(10), 100)  # 1,000 samples, 100 per class


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _is_partition(shares: list[np.ndarray], n: int) -> bool:
    allidx = np.concatenate(shares)
    return len(allidx) == len(set(allidx.tolist())) and set(allidx.tolist()) <= set(range(n))


@pytest.mark.parametrize(
    "scheme,kw",
    [("iid", {}), ("dirichlet", {"alpha": 0.3}), ("pathological", {"classes_per_client": 2})],
)
def test_same_seed_same_partition_other_seed_differs(scheme: str, kw: dict) -> None:
    a = P.partition(LABELS, scheme, 10, _rng(1), **kw)
    b = P.partition(LABELS, scheme, 10, _rng(1), **kw)
    c = P.partition(LABELS, scheme, 10, _rng(2), **kw)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert _is_partition(a, len(LABELS))


def test_iid_is_balanced_and_covers_everything() -> None:
    shares = P.iid(LABELS, 8, _rng())
    assert sorted(len(s) for s in shares) == [125] * 8
    assert sorted(np.concatenate(shares).tolist()) == list(range(1000))
    for share in shares:  # every client sees most classes
        assert len(np.unique(LABELS[share])) >= 8


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_pathological_gives_exactly_k_classes(k: int) -> None:
    shares = P.pathological(LABELS, 20, k, _rng(3))
    assert [len(np.unique(LABELS[s])) for s in shares] == [k] * 20
    assert _is_partition(shares, len(LABELS))


def test_pathological_uses_every_class_when_clients_times_k_covers_them() -> None:
    shares = P.pathological(LABELS, 5, 2, _rng(0))
    assert set(np.concatenate([LABELS[s] for s in shares]).tolist()) == set(range(10))
    assert sorted(np.concatenate(shares).tolist()) == list(range(1000))


def test_pathological_refuses_more_classes_than_exist() -> None:
    with pytest.raises(ConfigError, match="classes_per_client"):
        P.pathological(LABELS, 4, 11, _rng())


def _dominant_share(shares: list[np.ndarray]) -> float:
    """Mean fraction of a client's samples in its most common class."""
    fr = [np.bincount(LABELS[s], minlength=10).max() / len(s) for s in shares]
    return float(np.mean(fr))


def test_dirichlet_small_alpha_skews_labels() -> None:
    skewed = _dominant_share(P.dirichlet(LABELS, 10, 0.1, _rng(4)))
    mild = _dominant_share(P.dirichlet(LABELS, 10, 100.0, _rng(4)))
    uniform = _dominant_share(P.iid(LABELS, 10, _rng(4)))
    assert skewed > 0.5 > 0.25 > mild
    assert uniform < 0.25


def test_dirichlet_gives_every_client_a_minimum() -> None:
    shares = P.dirichlet(LABELS, 20, 0.1, _rng(5))
    assert min(len(s) for s in shares) >= 10
    assert sorted(np.concatenate(shares).tolist()) == list(range(1000))


def test_too_few_samples_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="too few"):
        P.iid(LABELS[:10], 6, _rng())
    with pytest.raises(ConfigError, match="unknown partition"):
        P.partition(LABELS, "sorted", 2, _rng())


def test_train_test_split_is_disjoint_and_75_25() -> None:
    share = np.arange(200, 400)
    train, test = P.split_train_test(share, 0.75, _rng())
    assert len(train) == 150 and len(test) == 50
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert set(train.tolist()) | set(test.tolist()) == set(share.tolist())


@settings(max_examples=25, deadline=None)
@given(
    clients=st.integers(1, 12),
    k=st.integers(1, 10),
    seed=st.integers(0, 2**31),
)
def test_pathological_property(clients: int, k: int, seed: int) -> None:
    shares = P.pathological(LABELS, clients, k, _rng(seed))
    assert len(shares) == clients
    assert _is_partition(shares, len(LABELS))
    assert all(len(np.unique(LABELS[s])) == k for s in shares)
