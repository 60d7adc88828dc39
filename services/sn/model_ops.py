"""The FL core as the nodes use it: one bound ``Strategy`` per algorithm, nothing re-implemented.

An SN turns its ENs' updates into a partial aggregate (``ModelTemplate.partial``: float64
weighted sums and their weight) and sends it up; the entry finishes the partials of all
SNs (``ModelTemplate.finish``) into the new shared state. Both steps are the strategy's
(``fedchain.shared.fl.strategy``), so a network round computes the weighted average the
simulation computes.

Any other aggregator (median, trimmed mean, Krum, Multi-Krum, Bulyan, a norm bound) cannot
be split into sums: the SNs forward their ENs' updates and the entry runs the strategy's
``aggregate_with_decisions`` over every EN update of the round (``ModelTemplate.robust``),
the call the simulation makes, with the same decisions.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence

import torch

from fedchain.shared.config import Settings
from fedchain.shared.fl.aggregate import Partial, StateUpdate
from fedchain.shared.fl.models import build_model, initial_model
from fedchain.shared.fl.recompute import UsedState, robust_global
from fedchain.shared.fl.robust import Aggregation
from fedchain.shared.fl.seeding import selection_seed
from fedchain.shared.fl.strategy import Strategy, strategy_from_settings


class ModelTemplate:
    """The federation's model architecture and, per algorithm, the strategy bound to it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._model = build_model(settings.model, settings.dataset, data_dir=settings.data_dir)
        self._strategies: dict[str, Strategy] = {}
        self._lock = threading.Lock()

    def strategy(self, algorithm: str) -> Strategy:
        """The core's strategy for ``algorithm``, bound to the federation's model."""
        with self._lock:
            strategy = self._strategies.get(algorithm)
            if strategy is None:
                strategy = strategy_from_settings(self.settings, algorithm)
                strategy.bind(self._model)
                self._strategies[algorithm] = strategy
            return strategy

    def shared_keys(self, algorithm: str) -> list[str]:
        """State-dict keys that leave a client under ``algorithm`` (FedPer: base only)."""
        return list(self.strategy(algorithm).expected_keys or [])

    def reference(
        self, global_state: Mapping[str, torch.Tensor], algorithm: str
    ) -> dict[str, torch.Tensor]:
        """What an EN's update must match (names, shapes, dtypes): the shared part of the model."""
        return self.strategy(algorithm).reference(global_state)

    def partial_reference(
        self, global_state: Mapping[str, torch.Tensor], algorithm: str
    ) -> dict[str, torch.Tensor]:
        """What an SN's partial aggregate must match: float64 sums of the shared shapes."""
        return self.strategy(algorithm).partial_reference(global_state)

    def partial(self, algorithm: str, round_no: int, updates: Sequence[StateUpdate]) -> Partial:
        """An SN's part of the round: the strategy's checks, then float64 weighted sums."""
        return self.strategy(algorithm).partial(round_no, list(updates))

    def finish(
        self,
        algorithm: str,
        round_no: int,
        global_state: Mapping[str, torch.Tensor],
        partials: Sequence[tuple[Mapping[str, torch.Tensor], int]],
    ) -> dict[str, torch.Tensor]:
        """The entry's step: the SNs' ``(float64 sums, weight)`` pairs -> the new shared state.

        Each finished tensor takes the dtype of its ``global_state`` tensor.
        """
        parts = [Partial.like(sums, weight, global_state) for sums, weight in partials]
        return self.strategy(algorithm).finish(round_no, parts)


    def robust(
        self,
        algorithm: str,
        round_no: int,
        global_state: Mapping[str, torch.Tensor],
        updates: Sequence[StateUpdate],
    ) -> Aggregation:
        """The entry's step with a non-decomposable aggregator: every EN update of the round
        (in partition order, as the simulation orders its clients) -> the new model (the
        global state with the shared part replaced) and the decisions (positions in
        ``updates``). It is ``recompute.robust_global``, which ``verify --deep`` reruns.
        Raises ``UpdateRejected`` when the rule cannot run (e.g. fewer than ``krum:f`` needs)."""
        used = [UsedState(str(i), state, samples) for i, (state, samples) in enumerate(updates)]
        return robust_global(self.strategy(algorithm), round_no, global_state, used)

    def decomposable(self, algorithm: str) -> bool:
        """True when the federation's aggregator is the plain mean (SNs send partial sums)."""
        return self.strategy(algorithm).decomposable


def select_participants(
    settings: Settings, algorithm: str, round_no: int, indices: Sequence[int]
) -> list[int]:
    """The partitions that train in ``round_no`` (client fraction), as the simulation picks them."""
    strategy = strategy_from_settings(settings, algorithm)
    return strategy.select_clients(
        round_no, list(indices), random.Random(selection_seed(settings.seed, round_no))
    )


def initial_state(settings: Settings) -> dict[str, torch.Tensor]:
    """The initial global model: the core's initial_model (build_model under manual_seed(seed))."""
    model = initial_model(settings)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def merge(
    global_state: Mapping[str, torch.Tensor], aggregated: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The global state with the aggregated entries replaced (the core's Strategy.apply)."""
    return Strategy.apply(global_state, aggregated)
