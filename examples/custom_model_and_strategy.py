"""Your own model, dataset and strategy in a fedchain simulation, from Python.

Run it from a checkout (fedchain installed, e.g. ``./scripts/bootstrap``)::

    .venv/bin/python examples/custom_model_and_strategy.py

It trains a small MLP (``TinyNet``) with FedPer on a synthetic 3-class dataset made in
memory (``blobs``), aggregated by ``LoudFedPer``, a FedPer that also counts what it
aggregated. The same three things work from the command line as specs, when their module
is importable (installed or on ``PYTHONPATH``)::

    fedchain simulate --model mypkg.nets:TinyNet --dataset mypkg.data:blobs \\
        --strategy mypkg.strategies:LoudFedPer

The script prints one line per round and a JSON summary as its last line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

import fedchain
from fedchain.shared.fl.aggregate import Partial
from fedchain.shared.fl.loaders import TensorData
from fedchain.shared.fl.simulation import RoundResult
from fedchain.shared.fl.strategy import FedPer, Update


class TinyNet(nn.Module):
    """An MLP; ``fedchain`` calls it with the dataset's classes and input shape.

    The classifier ``head`` is defined last: with ``personal_layers=1`` it is FedPer's
    personal layer (each client keeps its own), ``body`` is averaged.
    """

    def __init__(self, *, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        features = 1
        for side in input_shape:
            features *= side
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(features, 32), nn.ReLU())
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.body(x))
        return out


def blobs(data_dir: Path) -> TensorData:
    """1,200 points in 8 dimensions around 3 seeded centres: a dataset of 3 classes.

    ``data_dir`` (``--data-dir``) is unused: this data is made, not read. A loader must
    be deterministic, as this one is (its own generator).
    """
    g = torch.Generator().manual_seed(7)
    centres = torch.randn(3, 8, generator=g) * 3
    labels = torch.arange(1200) % 3
    inputs = centres[labels] + torch.randn(1200, 8, generator=g)
    return TensorData(inputs=inputs, labels=labels, num_classes=3)


class LoudFedPer(FedPer):
    """FedPer that counts the rounds and updates it aggregated (a template-method hook)."""

    name = "loud-fedper"
    rounds_seen: list[int] = []  # class-wide: one counter per process (an example's)
    updates_seen = 0

    def partial(self, server_round: int, updates: Sequence[Update]) -> Partial:
        """FedPer's checks and sums, after counting the round's updates."""
        type(self).rounds_seen.append(server_round)
        type(self).updates_seen += len(updates)
        return super().partial(server_round, updates)


def main() -> None:
    """Two rounds of 4 clients; print each round and a JSON summary."""

    def show(r: RoundResult) -> None:
        print(f"round {r.round}: accuracy {r.accuracy:.3f}, train loss {r.train_loss:.3f}")

    result = fedchain.simulate(
        model=TinyNet,
        dataset=blobs,
        strategy=LoudFedPer,
        clients=4,
        rounds=2,
        local_epochs=1,
        lr=0.05,
        batch_size=32,
        device="cpu",
        progress=show,
    )
    print(json.dumps({
        "algorithm": result.algorithm,
        "model": result.config["model"],
        "dataset": result.config["dataset"],
        "final_accuracy": result.final_accuracy,
        "rounds": len(result.rounds),
        "rounds_aggregated": LoudFedPer.rounds_seen,
        "updates_aggregated": LoudFedPer.updates_seen,
        "head_keys": sorted(k for k in result.global_state if k.startswith("head.")),
    }))


if __name__ == "__main__":
    main()
