"""Partitioners: how a pooled labelled dataset is spread over clients.

Every partitioner takes the label of each sample and a ``numpy.random.Generator`` and
returns one array of sample indices per client. Same labels + same generator state
-> same partition. The schemes follow PFLlib's ``utils/dataset_utils.py``:

* ``iid``: a seeded shuffle cut into equal shares.
* ``dirichlet``: per class, proportions drawn from Dir(alpha) over the clients; a client
  that already holds its fair share gets no more; redrawn until every client holds at
  least ``min_size`` samples (bounded attempts).
* ``pathological``: every client holds exactly ``k`` distinct classes; the classes are
  dealt round-robin over a seeded permutation, so all classes are used about equally,
  and each class's samples are split evenly among the clients that hold it.
"""

from __future__ import annotations

import numpy as np

from fedchain.shared.config import ConfigError

DIRICHLET_ATTEMPTS = 1000


def iid(labels: np.ndarray, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A seeded shuffle of all indices cut into ``clients`` near-equal shares."""
    _check_enough(len(labels), clients)
    order = rng.permutation(len(labels))
    return [np.sort(part) for part in np.array_split(order, clients)]


def dirichlet(
    labels: np.ndarray,
    clients: int,
    alpha: float,
    rng: np.random.Generator,
    *,
    min_size: int = 10,
) -> list[np.ndarray]:
    """Label-skewed shares: per class, client proportions ~ Dir(alpha) (PFLlib's scheme)."""
    _check_enough(len(labels), clients)
    if alpha <= 0:
        raise ConfigError(f"alpha must be positive (got {alpha})")
    n = len(labels)
    min_size = min(min_size, n // clients)
    classes = np.unique(labels)
    for _ in range(DIRICHLET_ATTEMPTS):
        shares: list[list[int]] = [[] for _ in range(clients)]
        for cls in classes:
            idx = np.flatnonzero(labels == cls)
            rng.shuffle(idx)
            props = rng.dirichlet(np.repeat(alpha, clients))
            full = np.array([len(s) >= n / clients for s in shares])
            props = np.where(full, 0.0, props)
            if props.sum() <= 0:
                props = np.full(clients, 1.0 / clients)
            props = props / props.sum()
            cuts = (np.cumsum(props) * len(idx)).astype(int)[:-1]
            for share, part in zip(shares, np.split(idx, cuts), strict=True):
                share.extend(part.tolist())
        if min(len(s) for s in shares) >= min_size:
            return [np.sort(np.asarray(s, dtype=np.int64)) for s in shares]
    raise ConfigError(
        f"dirichlet split with alpha={alpha} could not give each of {clients} clients "
        f"{min_size} samples in {DIRICHLET_ATTEMPTS} attempts; use fewer clients or a larger alpha"
    )


def pathological(
    labels: np.ndarray, clients: int, classes_per_client: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Each client gets exactly ``classes_per_client`` distinct classes (dealt round-robin)."""
    classes = np.unique(labels)
    k = classes_per_client
    if not 1 <= k <= len(classes):
        raise ConfigError(
            f"classes_per_client must be between 1 and the {len(classes)} classes (got {k})"
        )
    order = rng.permutation(classes)
    held: list[list[int]] = [
        [int(order[(c * k + j) % len(classes)]) for j in range(k)] for c in range(clients)
    ]
    holders: dict[int, list[int]] = {int(cls): [] for cls in classes}
    for client, owned in enumerate(held):
        for cls in owned:
            holders[cls].append(client)
    shares: list[list[int]] = [[] for _ in range(clients)]
    for cls, owners in holders.items():
        if not owners:
            continue
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        if len(idx) < len(owners):
            raise ConfigError(
                f"class {cls} has {len(idx)} samples, too few for the {len(owners)} clients "
                "that hold it; use fewer clients or more samples"
            )
        for owner, part in zip(owners, np.array_split(idx, len(owners)), strict=True):
            shares[owner].extend(part.tolist())
    return [np.sort(np.asarray(s, dtype=np.int64)) for s in shares]


def partition(
    labels: np.ndarray,
    scheme: str,
    clients: int,
    rng: np.random.Generator,
    *,
    alpha: float = 0.5,
    classes_per_client: int = 2,
) -> list[np.ndarray]:
    """Dispatch to the partitioner named ``scheme`` (iid, dirichlet, pathological)."""
    if scheme == "iid":
        return iid(labels, clients, rng)
    if scheme == "dirichlet":
        return dirichlet(labels, clients, alpha, rng)
    if scheme == "pathological":
        return pathological(labels, clients, classes_per_client, rng)
    raise ConfigError(f"unknown partition '{scheme}' (use iid, dirichlet or pathological)")


def split_train_test(
    indices: np.ndarray, train_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle one client's share and cut it into train/test (PFLlib: 75/25)."""
    shuffled = rng.permutation(indices)
    cut = int(round(len(shuffled) * train_fraction))
    cut = min(max(cut, 1), max(len(shuffled) - 1, 1))
    return np.sort(shuffled[:cut]), np.sort(shuffled[cut:])


def _check_enough(n: int, clients: int) -> None:
    if n < 2 * clients:
        raise ConfigError(
            f"{n} samples are too few for {clients} clients (each needs a train and a test sample)"
        )
