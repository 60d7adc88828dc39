"""Where a simulation's clients live and train: the ``ClientRunner`` interface and its
in-process implementation.

``Simulation`` (``simulation.py``) does selection, aggregation (through the strategy)
and bookkeeping; a runner does the clients' side of a round:

* ``add(data)``                          -- register a client (its share);
* ``fit(round, shared, indices)``        -- each selected client takes ``shared`` (the
  global shared state), trains, and returns ``FitOutcome(index, state, result)`` with a
  CPU ``state`` of the shared keys, in the order of ``indices``;
* ``evaluate(shared)``                   -- every client takes ``shared`` and is evaluated
  (FedPer: under its own head), ``{index: EvalResult}``;
* ``close()``                            -- release workers (idempotent).

Runners, one per ``EngineOptions``:

* ``LocalRunner`` (here): the serial loop, one model object shared by the clients;
  with ``vectorize=K`` it trains K clients at a time in lockstep (``vectorized.py``).
* ``ProcessRunner`` (``workers.py``): N spawned worker processes, each a ``LocalRunner``
  owning the clients pinned to it.
* ``RayRunner`` (``ray_runner.py``): the same, as Ray actors (``pip install fedchain[ray]``).

Every runner gives the serial loop's global model on the same seed: bitwise for workers
and Ray (same per-process thread count), within float32 rounding for ``vectorize``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.client import LocalClient
from fedchain.shared.fl.data import ClientData
from fedchain.shared.fl.device import resolve_device
from fedchain.shared.fl.seeding import round_seed
from fedchain.shared.fl.specs import is_spec
from fedchain.shared.fl.strategy import Strategy
from fedchain.shared.fl.training import EvalResult, TrainResult

Backend = Literal["local", "ray"]

AUTO_MIN_SAMPLE_PASSES = 100_000
"""``--workers auto`` starts workers only for runs that train at least this many samples
(train samples x client fraction x local epochs x rounds): below it, the few seconds a
worker takes to start (importing torch) are not paid back."""


@dataclass(frozen=True)
class FitOutcome:
    """One client's answer to ``fit``: its index, shared state (CPU tensors), result."""

    index: int
    state: dict[str, torch.Tensor]
    result: TrainResult


@dataclass(frozen=True)
class EngineOptions:
    """How the simulation runs its clients.

    Attributes:
        workers: worker processes (0 or 1: in this process; ``"auto"``: see ``auto_workers``).
        vectorize: clients trained in lockstep as one batched model (1: one at a time).
        backend: ``local`` (this machine's processes) or ``ray`` (Ray actors).
        ray_address: the Ray cluster (``auto``, ``HOST:PORT``); None starts a local one.
    """

    workers: int | Literal["auto"] = 0
    vectorize: int = 1
    backend: Backend = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.workers != "auto" and (not isinstance(self.workers, int) or self.workers < 0):
            raise ConfigError(f"workers must be auto or 0 or more (got {self.workers})")
        if self.vectorize < 1:
            raise ConfigError(f"vectorize must be 1 or more (got {self.vectorize})")
        if self.backend not in ("local", "ray"):
            raise ConfigError(f"unknown backend '{self.backend}' (use local or ray)")


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_workers(settings: Settings, train_samples: int, device: torch.device) -> int:
    """``--workers auto``: worker processes only where they help, else 0 (serial).

    The rule: serial on a GPU/MPS device (one process drives the device), with fewer than
    two usable cores, or for a run training fewer than ``AUTO_MIN_SAMPLE_PASSES`` samples
    in total; otherwise one worker per usable core (at most one per selected client).
    A custom dataset (``--dataset module:loader``) stays serial under auto (each worker
    would run its loader again); ask for ``--workers N`` to spread it.
    """
    cores = min(usable_cores(), settings.torch_threads or usable_cores())
    if device.type != "cpu" or cores < 2 or is_spec(settings.dataset):
        return 0
    passes = train_samples * settings.client_fraction * settings.local_epochs * settings.rounds
    if passes < AUTO_MIN_SAMPLE_PASSES:
        return 0
    selected = max(1, round(settings.client_fraction * settings.clients))
    return min(cores, selected)


def threads_per_worker(settings: Settings, workers: int) -> int:
    """torch threads of each worker: the run's threads (default: usable cores) split evenly."""
    total = settings.torch_threads or usable_cores()
    return max(1, total // max(1, workers))


class ClientRunner(ABC):
    """Where the clients live and train (see the module doc)."""

    @abstractmethod
    def add(self, data: ClientData) -> None:
        """Register a client holding ``data``; it starts from the current global state."""

    @abstractmethod
    def fit(
        self, server_round: int, shared: Mapping[str, torch.Tensor], indices: Sequence[int]
    ) -> list[FitOutcome]:
        """Train the clients ``indices`` from ``shared``; outcomes in the order of ``indices``."""

    @abstractmethod
    def evaluate(self, shared: Mapping[str, torch.Tensor]) -> dict[int, EvalResult]:
        """Every client takes ``shared`` and is evaluated on its test split."""

    @abstractmethod
    def set_global(self, state: Mapping[str, torch.Tensor]) -> None:
        """The server's full state changed: clients added later start from it."""

    @abstractmethod
    def personal_states(self) -> dict[int, dict[str, torch.Tensor]]:
        """Every client's personal tensors (FedPer's head; empty dicts under FedAvg), by
        client index: what a simulation checkpoint keeps besides the global model."""

    @abstractmethod
    def set_personal_states(self, states: Mapping[int, Mapping[str, torch.Tensor]]) -> None:
        """Give the clients ``states`` back (a resumed run); ``TensorError`` names a client
        whose head does not fit, ``ConfigError`` an index no client has."""

    @abstractmethod
    def close(self) -> None:
        """Stop whatever the runner started (idempotent)."""

    def __enter__(self) -> ClientRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalRunner(ClientRunner):
    """The clients in this process, sharing one model object; trained one after another,
    or ``vectorize`` at a time in lockstep (``vectorized.train_lockstep``)."""

    def __init__(
        self,
        settings: Settings,
        strategy: Strategy,
        model: nn.Module,
        global_state: Mapping[str, torch.Tensor],
        *,
        vectorize: int = 1,
        device: torch.device | None = None,
    ) -> None:
        self.settings = settings
        self.strategy = strategy
        self.device = device if device is not None else resolve_device(settings.device)
        self.model = model.to(self.device)
        self.global_state = dict(global_state)
        self.vectorize = vectorize
        self.clients: dict[int, LocalClient] = {}

    def add(self, data: ClientData) -> None:
        if data.index in self.clients:
            raise ConfigError(f"a client with index {data.index} is already registered")
        # a client joining late starts from the current global model and the initial head
        self.model.load_state_dict(self.global_state)
        shared = {k: self.global_state[k] for k in self.strategy.expected_keys or []}
        self.clients[data.index] = LocalClient(
            self.settings, data, self.model, strategy=self.strategy, device=self.device,
            shared=shared,
        )

    def set_global(self, state: Mapping[str, torch.Tensor]) -> None:
        self.global_state = dict(state)
        shared = {k: self.global_state[k] for k in self.strategy.expected_keys or []}
        for client in self.clients.values():
            client.set_shared(shared)

    def personal_states(self) -> dict[int, dict[str, torch.Tensor]]:
        return {i: c.personal_state() for i, c in self.clients.items()}

    def set_personal_states(self, states: Mapping[int, Mapping[str, torch.Tensor]]) -> None:
        unknown = sorted(set(states) - set(self.clients))
        if unknown:
            raise ConfigError(f"no client with index {unknown[0]} here")
        for index, state in states.items():
            self.clients[index].set_personal(state)

    def fit(
        self, server_round: int, shared: Mapping[str, torch.Tensor], indices: Sequence[int]
    ) -> list[FitOutcome]:
        clients = [self.clients[i] for i in indices]
        for client in clients:
            client.set_shared(shared)
        if self.vectorize > 1:
            return self._fit_lockstep(server_round, clients)
        out = []
        for client in clients:
            state, result = client.fit(server_round)
            out.append(FitOutcome(client.index, state, result))
        return out

    def _fit_lockstep(self, server_round: int, clients: list[LocalClient]) -> list[FitOutcome]:
        from fedchain.shared.fl.vectorized import train_lockstep

        s = self.settings
        out = []
        for start in range(0, len(clients), self.vectorize):
            group = clients[start : start + self.vectorize]
            trained = train_lockstep(
                self.model,
                [c.start_state() for c in group],
                [c.data.train for c in group],
                [round_seed(s.seed, server_round, c.index) for c in group],
                epochs=s.local_epochs, batch_size=s.batch_size, lr=s.lr, momentum=s.momentum,
            )
            for client, (state, result) in zip(group, trained, strict=True):
                out.append(FitOutcome(client.index, client.end_fit(state), result))
        return out

    def evaluate(self, shared: Mapping[str, torch.Tensor]) -> dict[int, EvalResult]:
        out = {}
        for index, client in self.clients.items():
            client.set_shared(shared)
            out[index] = client.evaluate()
        return out

    def close(self) -> None:
        """Nothing to stop: the clients live in this process."""


def make_runner(
    settings: Settings,
    strategy: Strategy,
    model: nn.Module,
    global_state: Mapping[str, torch.Tensor],
    options: EngineOptions,
    *,
    train_samples: int = 0,
) -> ClientRunner:
    """The runner ``options`` ask for (``train_samples``: the run's total, for ``auto``)."""
    device = resolve_device(settings.device)
    workers = (
        auto_workers(settings, train_samples, device)
        if options.workers == "auto"
        else options.workers
    )
    if options.backend == "ray" and is_spec(settings.dataset):  # untested on Ray: refused, not guessed
        raise ConfigError(
            f"--dataset {settings.dataset}: a custom dataset does not run on Ray yet "
            "(use --backend local, with --workers N)"
        )
    if options.backend == "ray":
        from fedchain.shared.fl.ray_runner import RayRunner

        return RayRunner(
            settings, global_state, actors=max(1, workers), vectorize=options.vectorize,
            address=options.ray_address,
        )
    if workers >= 2:
        if device.type != "cpu":
            raise ConfigError(
                f"--workers {workers} runs on the CPU only; with device {device} use --workers 0"
            )
        from fedchain.shared.fl.workers import ProcessRunner

        return ProcessRunner(settings, global_state, workers=workers, vectorize=options.vectorize)
    return LocalRunner(
        settings, strategy, model, global_state, vectorize=options.vectorize, device=device
    )
