"""The in-process simulation: every client in one process, run round by round.

``run_simulation(settings)`` builds the initial global model (``initial_model``: seed
``settings.seed``), loads every client's share, and runs ``settings.rounds`` rounds of
the strategy. After each round every client takes the new global shared state and is
evaluated on its test split; the round's accuracy is pooled correct/total over all
clients (FedPer: each client's personal model; FedAvg: the global model).

Where the clients train is the runner's business (``engine.ClientRunner``, chosen by
``engine.EngineOptions``: the serial loop, ``--vectorize K``, ``--workers N`` processes or
Ray actors); the server side stays here, in two places other hooks can join:
``_received`` (an update has come back from a client) and ``_aggregate`` (the round's
updates, in client-index order, become the new shared state through the strategy).

The strategy's aggregator (``settings.aggregator``) reports its decisions per round
(``RoundResult.decisions``: client, action, reason). An ``AttackPlan`` (experiments) turns
some clients' data or updates into poisoned ones; the share of their updates the
aggregator rejected or clipped is ``RoundResult.attackers_flagged``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedchain.shared import tensors
from fedchain.shared.config import ConfigError, Settings, learning_summary
from fedchain.shared.fl.attacks import AttackPlan, flagged_share
from fedchain.shared.fl.client import LocalClient
from fedchain.shared.fl.data import ClientData, load_federated
from fedchain.shared.fl.device import resolve_device
from fedchain.shared.fl.engine import (
    ClientRunner,
    EngineOptions,
    FitOutcome,
    LocalRunner,
    auto_workers,
    make_runner,
)
from fedchain.shared.fl.models import initial_model, resolve_model_name
from fedchain.shared.fl.robust import Aggregation
from fedchain.shared.fl.seeding import selection_seed
from fedchain.shared.fl.strategy import Update, strategy_from_settings


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
    """A server and its clients; ``run_round()`` runs one global epoch.

    ``engine`` says where the clients train (default: the serial loop in this process);
    its ``workers`` must be a number here (``run_simulation`` resolves ``auto``). Call
    ``close()`` (or use ``with``) to stop worker processes or Ray actors.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        save_dir: Path | None = None,
        engine: EngineOptions | None = None,
        attack: AttackPlan | None = None,
    ) -> None:
        self.settings = settings
        self.attack = attack
        self.strategy = strategy_from_settings(settings)
        self.model = initial_model(settings)
        self.shared_keys = self.strategy.bind(self.model)
        self.global_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history: list[RoundResult] = []
        self.save_dir = save_dir
        self.engine = engine or EngineOptions()
        if self.engine.workers == "auto":
            raise ConfigError("Simulation needs a number of workers; run_simulation resolves auto")
        self.runner: ClientRunner = make_runner(
            settings, self.strategy, self.model, self.global_state, self.engine
        )
        self._datas: list[ClientData] = []

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the runner's workers, if any (idempotent)."""
        self.runner.close()

    @property
    def round(self) -> int:
        """The last completed round (0 before the first)."""
        return len(self.history)

    @property
    def clients(self) -> list[LocalClient]:
        """The clients, in the order they were added (serial and vectorised runs only)."""
        if not isinstance(self.runner, LocalRunner):
            raise ConfigError("the clients live in worker processes: no LocalClient here")
        return list(self.runner.clients.values())

    def add_client(self, data: ClientData) -> LocalClient | None:
        """Register a client holding ``data`` (its index must be new).

        It starts from the current global model and the initial head. Returns its
        ``LocalClient`` when it lives in this process, else None (it lives in a worker).
        """
        if any(d.index == data.index for d in self._datas):
            raise ConfigError(f"a client with index {data.index} is already registered")
        if self.attack is not None:
            data = self.attack.prepare(data)  # label-flip poisons the training data itself
        self.runner.add(data)
        self._datas.append(data)
        if isinstance(self.runner, LocalRunner):
            return self.runner.clients[data.index]
        return None

    def global_shared(self) -> dict[str, torch.Tensor]:
        """The global state that clients receive (FedPer: base; FedAvg: whole model)."""
        return {k: self.global_state[k] for k in self.shared_keys}

    def _received(self, server_round: int, outcome: FitOutcome, shared: Mapping[str, torch.Tensor]) -> Update:
        """Hook: client ``outcome.index``'s update has come back; the (state, samples) to use
        (an attacking client's update is poisoned here, experiments only)."""
        state = outcome.state
        if self.attack is not None:
            state = self.attack.poison(server_round, outcome.index, state, shared)
        return state, outcome.result.samples

    def _aggregate(
        self, server_round: int, updates: list[Update], shared: Mapping[str, torch.Tensor]
    ) -> Aggregation:
        """Hook: the round's updates (client-index order) -> the new global shared state and
        the aggregator's decisions (which updates it rejected, clipped or down-weighted)."""
        return self.strategy.aggregate_with_decisions(server_round, updates, shared)

    def run_round(self, *, evaluate: bool | None = None) -> RoundResult:
        """Select, train, aggregate, then (if asked, default ``settings.eval``) evaluate."""
        if not self._datas:
            raise ConfigError("no clients registered: add at least one client before training")
        start = time.perf_counter()
        server_round = self.round + 1
        rng = random.Random(selection_seed(self.settings.seed, server_round))
        selected = self.strategy.select_clients(
            server_round, [d.index for d in self._datas], rng
        )
        shared = self.global_shared()
        outcomes = self.runner.fit(server_round, shared, selected)
        updates = [self._received(server_round, o, shared) for o in outcomes]
        indices = [o.index for o in outcomes]
        losses = [(o.result.loss, o.result.samples) for o in outcomes]
        aggregation = self._aggregate(server_round, updates, shared)
        self.global_state = self.strategy.apply(self.global_state, aggregation.state)
        self.runner.set_global(self.global_state)
        weight = sum(n for _, n in losses) or 1
        outcome = RoundResult(
            round=server_round,
            accuracy=None,
            loss=None,
            seconds=0.0,
            train_loss=sum(loss * n for loss, n in losses) / weight,
            participants=selected,
            decisions=[d.with_node(indices[d.index]).to_json() for d in aggregation.decisions],
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
        by_index = self.runner.evaluate(self.global_shared())
        results = [by_index[d.index] for d in self._datas]
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
            "algorithm": self.strategy.name or self.settings.algorithm,
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
            algorithm=self.strategy.name or self.settings.algorithm,
            config=settings_summary(self.settings),
            rounds=list(self.history),
            label_counts=[d.label_counts for d in sorted(self._datas, key=lambda d: d.index)],
            attack=None if self.attack is None else self.attack.to_json(),
            global_state=dict(self.global_state),
        )


def resolve_engine(
    settings: Settings, engine: EngineOptions, clients: list[ClientData]
) -> EngineOptions:
    """``engine`` with ``workers="auto"`` replaced by ``engine.auto_workers``' choice."""
    if engine.workers != "auto":
        return engine
    samples = sum(len(d.train) for d in clients)  # type: ignore[arg-type,misc]
    workers = auto_workers(settings, samples, resolve_device(settings.device))
    if engine.backend == "ray":
        workers = max(workers, 1)
    return EngineOptions(workers, engine.vectorize, engine.backend, engine.ray_address)


def run_simulation(
    settings: Settings,
    *,
    progress: Callable[[RoundResult], None] | None = None,
    save_dir: Path | None = None,
    clients: list[ClientData] | None = None,
    engine: EngineOptions | None = None,
    attack: AttackPlan | None = None,
    eval_every: int = 1,
    restore: Callable[[Simulation], None] | None = None,
    after_round: Callable[[Simulation], None] | None = None,
) -> SimulationResult:
    """Run ``settings.rounds`` rounds over all clients; ``progress`` is called after each.

    With ``eval_every`` N > 1 (and ``settings.eval``) only every Nth round and the last are
    evaluated (PFLlib's ``-eg``); evaluation takes no randomness, so the model is the same.

    ``save_dir`` writes the global shared state of each round as
    ``round-NNNN.safetensors``. ``clients`` overrides loading the shares from disk.
    ``engine`` says where clients train (default: serially, in this process); ``attack``
    makes some clients poison their updates (experiments; off by default). The last
    round is always evaluated, even with ``eval`` off. Workers are stopped on return,
    on an error and on Ctrl-C.

    ``restore`` (resuming, ``checkpoint.restore``) is called once the clients are added: it
    may put the simulation in the state of the rounds it had done, and the run goes on
    from the next one. ``after_round`` is called after each round, before ``progress``,
    with the simulation (``checkpoint.save`` writes it).
    """
    datas = clients if clients is not None else load_federated(settings)
    options = resolve_engine(settings, engine or EngineOptions(), datas)
    with Simulation(settings, save_dir=save_dir, engine=options, attack=attack) as sim:
        for data in datas:
            sim.add_client(data)
        if eval_every < 1:
            raise ConfigError(f"eval_every must be at least 1, got {eval_every}")
        if restore is not None:
            restore(sim)
        for r in range(sim.round + 1, settings.rounds + 1):
            evaluate = None if eval_every == 1 else settings.eval and r % eval_every == 0
            outcome = sim.run_round(evaluate=True if r == settings.rounds else evaluate)
            if after_round is not None:
                after_round(sim)
            if progress is not None:
                progress(outcome)
        return sim.result()
