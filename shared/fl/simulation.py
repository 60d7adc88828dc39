"""The in-process simulation: every client in one process, run round by round.

``run_simulation(settings)`` builds the initial global model (``initial_model``: seed
``settings.seed``), loads every client's share, and runs ``settings.rounds`` rounds of
the strategy. After each round every client takes the new global shared state and is
evaluated on its test split; the round's accuracy is pooled correct/total over all
clients (FedPer: each client's personal model; FedAvg: the global model).

The strategy's aggregator (``settings.aggregator``) reports its decisions per round
(``RoundResult.decisions``: client, action, reason). An ``AttackPlan`` (experiments) turns
some clients' data or updates into poisoned ones; the share of their updates the
aggregator rejected or clipped is ``RoundResult.attackers_flagged``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedchain.shared import tensors
from fedchain.shared.config import ConfigError, Settings, learning_summary
from fedchain.shared.fl.attacks import AttackPlan, flagged_share
from fedchain.shared.fl.client import LocalClient
from fedchain.shared.fl.data import ClientData, load_federated
from fedchain.shared.fl.models import initial_model, resolve_model_name
from fedchain.shared.fl.seeding import selection_seed
from fedchain.shared.fl.strategy import strategy_from_settings


@dataclass
class RoundResult:
    """One round: pooled test accuracy and loss (None when not evaluated), timings."""

    round: int
    accuracy: float | None
    loss: float | None
    seconds: float
    train_loss: float
    participants: list[int]
    correct: int | None = None
    total: int | None = None
    client_accuracy: list[float] | None = None
    decisions: list[dict[str, object]] = field(default_factory=list)
    attackers_flagged: float | None = None


@dataclass
class SimulationResult:
    """A whole run; ``to_json()`` is what ``fedchain simulate --out`` writes.

    ``global_state`` is the server's full model state after the last round (FedPer: the
    averaged base under the initial head), as a networked entry serves it at ``/model``;
    it is not part of ``to_json()``.
    """

    algorithm: str
    config: dict[str, Any]
    rounds: list[RoundResult] = field(default_factory=list)
    label_counts: list[dict[int, int]] = field(default_factory=list)
    attack: dict[str, object] | None = None
    global_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def final_accuracy(self) -> float | None:
        """Accuracy of the last evaluated round."""
        for r in reversed(self.rounds):
            if r.accuracy is not None:
                return r.accuracy
        return None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: algorithm, config, rounds, final_accuracy, label_counts."""
        return {
            "algorithm": self.algorithm,
            "config": self.config,
            "rounds": [asdict(r) for r in self.rounds],
            "final_accuracy": self.final_accuracy,
            "label_counts": [{str(k): v for k, v in c.items()} for c in self.label_counts],
            "attack": self.attack,
        }


def settings_summary(settings: Settings) -> dict[str, Any]:
    """The learning settings of a run, JSON-ready (what the results file records)."""
    return {**learning_summary(settings), "model": resolve_model_name(settings.model, settings.dataset)}


class Simulation:
    """A server and its clients in one process; ``run_round()`` runs one global epoch."""

    def __init__(
        self, settings: Settings, *, save_dir: Path | None = None, attack: AttackPlan | None = None
    ) -> None:
        self.settings = settings
        self.attack = attack
        self.strategy = strategy_from_settings(settings)
        self.model = initial_model(settings)
        self.shared_keys = self.strategy.bind(self.model)
        self.global_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.clients: list[LocalClient] = []
        self.history: list[RoundResult] = []
        self.save_dir = save_dir

    @property
    def round(self) -> int:
        """The last completed round (0 before the first)."""
        return len(self.history)

    def add_client(self, data: ClientData) -> LocalClient:
        """Register a client holding ``data`` (its index must be new)."""
        if any(c.index == data.index for c in self.clients):
            raise ConfigError(f"a client with index {data.index} is already registered")
        # a client joining late starts from the current global model and the initial head
        self.model.load_state_dict(self.global_state)
        if self.attack is not None:
            data = self.attack.prepare(data)
        client = LocalClient(self.settings, data, self.model, strategy=self.strategy)
        self.clients.append(client)
        return client

    def global_shared(self) -> dict[str, torch.Tensor]:
        """The global state that clients receive (FedPer: base; FedAvg: whole model)."""
        return {k: self.global_state[k] for k in self.shared_keys}

    def run_round(self, *, evaluate: bool | None = None) -> RoundResult:
        """Select, train, aggregate, then (if asked, default ``settings.eval``) evaluate."""
        if not self.clients:
            raise ConfigError("no clients registered: add at least one client before training")
        start = time.perf_counter()
        server_round = self.round + 1
        rng = random.Random(selection_seed(self.settings.seed, server_round))
        by_index = {c.index: c for c in self.clients}
        selected = self.strategy.select_clients(server_round, list(by_index), rng)
        shared = self.global_shared()
        updates = []
        losses = []
        for index in selected:
            client = by_index[index]
            client.set_shared(shared)
            state, result = client.fit(server_round)
            if self.attack is not None:
                state = self.attack.poison(server_round, index, state, shared)
            updates.append((state, result.samples))
            losses.append((result.loss, result.samples))
        aggregation = self.strategy.aggregate_with_decisions(server_round, updates, shared)
        self.global_state = self.strategy.apply(self.global_state, aggregation.state)
        shared = self.global_shared()
        for client in self.clients:
            client.set_shared(shared)
        weight = sum(n for _, n in losses) or 1
        outcome = RoundResult(
            round=server_round,
            accuracy=None,
            loss=None,
            seconds=0.0,
            train_loss=sum(loss * n for loss, n in losses) / weight,
            participants=selected,
            decisions=[d.with_node(selected[d.index]).to_json() for d in aggregation.decisions],
        )
        if self.attack is not None:
            outcome.attackers_flagged = flagged_share(
                aggregation.decisions, selected, self.attack.attackers
            )
        if self.settings.eval if evaluate is None else evaluate:
            self._evaluate_into(outcome)
        if self.save_dir is not None:
            self._save(server_round)
        outcome.seconds = time.perf_counter() - start
        self.history.append(outcome)
        return outcome

    def evaluate(self) -> tuple[int, int, float, list[float]]:
        """Pooled (correct, total, mean loss, per-client accuracies) over all test splits."""
        results = [c.evaluate() for c in self.clients]
        correct = sum(r.correct for r in results)
        total = sum(r.total for r in results)
        loss = sum(r.loss * r.total for r in results) / total if total else 0.0
        return correct, total, loss, [r.accuracy for r in results]

    def _evaluate_into(self, outcome: RoundResult) -> None:
        correct, total, loss, per_client = self.evaluate()
        outcome.correct, outcome.total = correct, total
        outcome.accuracy = correct / total if total else 0.0
        outcome.loss = loss
        if self.settings.local_eval:
            outcome.client_accuracy = per_client

    def _save(self, server_round: int) -> None:
        assert self.save_dir is not None
        self.save_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "algorithm": self.strategy.name,
            "round": str(server_round),
            "dataset": self.settings.dataset,
            "model": resolve_model_name(self.settings.model, self.settings.dataset),
            "personal_layers": str(self.settings.personal_layers),
        }
        path = self.save_dir / f"round-{server_round:04d}.safetensors"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(tensors.encode(self.global_shared(), meta))
        tmp.replace(path)

    def result(self) -> SimulationResult:
        """The run so far as a SimulationResult."""
        return SimulationResult(
            algorithm=self.strategy.name,
            config=settings_summary(self.settings),
            rounds=list(self.history),
            label_counts=[c.data.label_counts for c in sorted(self.clients, key=lambda c: c.index)],
            attack=None if self.attack is None else self.attack.to_json(),
            global_state=dict(self.global_state),
        )


def run_simulation(
    settings: Settings,
    *,
    progress: Callable[[RoundResult], None] | None = None,
    save_dir: Path | None = None,
    clients: list[ClientData] | None = None,
    attack: AttackPlan | None = None,
) -> SimulationResult:
    """Run ``settings.rounds`` rounds over all clients; ``progress`` is called after each.

    ``save_dir`` writes the global shared state of each round as
    ``round-NNNN.safetensors``. ``clients`` overrides loading the shares from disk.
    ``attack`` makes some clients poison their updates (experiments; off by default).
    The last round is always evaluated, even with ``eval`` off.
    """
    sim = Simulation(settings, save_dir=save_dir, attack=attack)
    for data in clients if clients is not None else load_federated(settings):
        sim.add_client(data)
    for r in range(1, settings.rounds + 1):
        outcome = sim.run_round(evaluate=True if r == settings.rounds else None)
        if progress is not None:
            progress(outcome)
    return sim.result()
