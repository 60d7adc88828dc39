"""The model operations nodes need, all delegated to the FL core (fedchain.shared.fl): one copy of each algorithm."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence

import torch

from fedchain.shared.config import Settings


class ModelTemplate:
    """The federation's model architecture: which tensors each algorithm shares."""

    def __init__(self, settings: Settings) -> None:
        from fedchain.shared.fl.models import build_model

        self.settings = settings
        self._model = build_model(settings.model, settings.dataset)
        self._keys: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def shared_keys(self, algorithm: str) -> list[str]:
        """State-dict keys that leave a client under ``algorithm`` (FedPer: base only)."""
        from fedchain.shared.fl.split import shared_keys

        with self._lock:
            if algorithm not in self._keys:
                self._keys[algorithm] = sorted(
                    shared_keys(self._model, algorithm, self.settings.personal_layers)
                )
            return self._keys[algorithm]

    def reference(self, global_state: Mapping[str, torch.Tensor], algorithm: str) -> dict[str, torch.Tensor]:
        """The part of a global model an update must match (names, shapes, dtypes)."""
        return {k: global_state[k] for k in self.shared_keys(algorithm)}

    def aggregate(
        self, algorithm: str, round_no: int, updates: Sequence[tuple[Mapping[str, torch.Tensor], int]]
    ) -> dict[str, torch.Tensor]:
        """The core strategy's aggregate (checks keys, sample-weighted average)."""
        strategy = strategy_for(self.settings, algorithm)
        strategy.bind(self._model)
        return strategy.aggregate(round_no, list(updates))


def strategy_for(settings: Settings, algorithm: str):  # type: ignore[no-untyped-def]
    """The core's Strategy for ``algorithm`` with the federation's parameters."""
    from fedchain.shared.fl.strategy import strategy_from_settings

    return strategy_from_settings(settings.model_copy(update={"algorithm": algorithm}))


def select_participants(settings: Settings, algorithm: str, round_no: int, indices: Sequence[int]) -> list[int]:
    """The partitions that train in ``round_no`` (FedAvg's client fraction), as the simulation picks them."""
    from fedchain.shared.fl.seeding import selection_seed

    strategy = strategy_for(settings, algorithm)
    return strategy.select_clients(round_no, list(indices), random.Random(selection_seed(settings.seed, round_no)))


def initial_state(settings: Settings) -> dict[str, torch.Tensor]:
    """The initial global model: the core's initial_model (build_model under manual_seed(seed))."""
    from fedchain.shared.fl.models import initial_model

    model = initial_model(settings)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def merge(global_state: Mapping[str, torch.Tensor], aggregated: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The global state with the aggregated entries replaced (the core's Strategy.apply)."""
    from fedchain.shared.fl.strategy import Strategy

    return Strategy.apply(global_state, aggregated)
