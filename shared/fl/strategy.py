"""Federated strategies in the style of Flower: FedAvg and FedPer.

A strategy decides three things, each a documented hook:

* ``select_clients(server_round, client_ids, rng)`` -- who trains this round
  (``client_fraction`` of them, at least ``min_clients``; all when the fraction is 1);
* ``shared_keys(model)`` -- which state-dict entries leave a client and are averaged;
* ``aggregate(server_round, updates)`` -- the template method: every update is checked
  by ``check_update`` (it must hold exactly the shared keys: for FedPer a head tensor
  arriving at the server is refused), then combined by ``combine`` (sample-weighted
  average) into the new global shared state.

``apply(global_state, aggregated)`` merges the aggregate into the server's full state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import nn

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.aggregate import weighted_average
from fedchain.shared.fl.split import head_keys

Update = tuple[Mapping[str, torch.Tensor], int]


class UpdateRejected(ValueError):
    """An update that does not hold what the strategy expects (say why in the message)."""


class Strategy:
    """Base class; subclasses set ``name`` and may override ``shared_keys``.

    Parameters:
        personal_layers: FedPer's number of trailing parameterised layers kept local.
        client_fraction: fraction of the clients that train each round (0 < f <= 1).
        min_clients: the fewest clients selected in a round.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, personal_layers: int = 1, client_fraction: float = 1.0, min_clients: int = 1):
        if not 0 < client_fraction <= 1:
            raise ConfigError(f"client_fraction must be in (0, 1] (got {client_fraction})")
        if min_clients < 1:
            raise ConfigError(f"min_clients must be at least 1 (got {min_clients})")
        self.personal_layers = personal_layers
        self.client_fraction = client_fraction
        self.min_clients = min_clients
        self.expected_keys: list[str] | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(personal_layers={self.personal_layers}, "
            f"client_fraction={self.client_fraction})"
        )

    # ---- hooks -------------------------------------------------------------

    def select_clients(self, server_round: int, client_ids: Sequence[int], rng: random.Random) -> list[int]:
        """The clients that train in ``server_round`` (sorted; all when the fraction is 1)."""
        ids = sorted(client_ids)
        if self.client_fraction >= 1 or not ids:
            return ids
        count = min(len(ids), max(self.min_clients, math.ceil(self.client_fraction * len(ids) - 1e-9)))
        return sorted(rng.sample(ids, count))

    def shared_keys(self, model: nn.Module) -> list[str]:
        """State-dict keys that leave a client (default: the whole model)."""
        return list(model.state_dict())

    def bind(self, model: nn.Module) -> list[str]:
        """Record the shared keys of ``model``; ``aggregate`` then checks updates against them."""
        self.expected_keys = self.shared_keys(model)
        return self.expected_keys

    def check_update(self, server_round: int, index: int, state: Mapping[str, torch.Tensor], samples: int) -> None:
        """Refuse an update whose keys differ from the shared keys, or with no samples."""
        if samples < 0:
            raise UpdateRejected(f"update {index} of round {server_round}: negative sample count")
        if self.expected_keys is None:
            return
        got, want = set(state), set(self.expected_keys)
        if got != want:
            extra, missing = sorted(got - want), sorted(want - got)
            what = f"unexpected {', '.join(extra[:3])}" if extra else f"missing {', '.join(missing[:3])}"
            raise UpdateRejected(f"update {index} of round {server_round} holds the wrong tensors: {what}")

    def combine(self, server_round: int, updates: Sequence[Update]) -> dict[str, torch.Tensor]:
        """Sample-weighted average of the checked updates."""
        return weighted_average(updates)

    # ---- template method ---------------------------------------------------

    def aggregate(self, server_round: int, updates: Sequence[Update]) -> dict[str, torch.Tensor]:
        """Check every update, then combine them into the new global shared state."""
        for i, (state, samples) in enumerate(updates):
            self.check_update(server_round, i, state, samples)
        return self.combine(server_round, updates)

    @staticmethod
    def apply(global_state: Mapping[str, torch.Tensor], aggregated: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The server's full state with the aggregated entries replaced."""
        merged = dict(global_state)
        merged.update(aggregated)
        return merged


class FedAvg(Strategy):
    """McMahan et al. 2017: the whole model is averaged, weighted by sample counts."""

    name = "fedavg"


class FedPer(Strategy):
    """Arivazhagan et al. 2019: the base is averaged; the last ``personal_layers`` stay local."""

    name = "fedper"

    def shared_keys(self, model: nn.Module) -> list[str]:
        head = set(head_keys(model, self.personal_layers))
        return [k for k in model.state_dict() if k not in head]

    def head_keys(self, model: nn.Module) -> list[str]:
        """The personal keys: never sent, never aggregated."""
        return head_keys(model, self.personal_layers)


STRATEGIES: dict[str, type[Strategy]] = {"fedavg": FedAvg, "fedper": FedPer}


def strategy_from_settings(settings: Settings) -> Strategy:
    """The strategy named by ``settings.algorithm`` with the settings' parameters."""
    cls = STRATEGIES.get(settings.algorithm)
    if cls is None:
        raise ConfigError(f"unknown algorithm '{settings.algorithm}' (use fedper or fedavg)")
    return cls(personal_layers=settings.personal_layers, client_fraction=settings.client_fraction)
