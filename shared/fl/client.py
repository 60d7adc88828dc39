"""One federated client's logic, run by both the simulation and a networked edge node.

A ``LocalClient`` holds a data share, a model object (which may be shared between
clients of one process), its personal state (FedPer's head; empty for FedAvg) and the
last global shared state it was given. Before training or evaluating it loads
``global shared state + own head`` into the model, so its personal model is always
"the latest global base under my own head".

Memory per client is its data (a view into one pool, see ``data.ImageTensors``) and its
head tensors only (CPU copies of the personal keys; a FedAvg client holds none): the
model object and the global state are shared, so 1,000 clients cost 1,000 heads.

Device: the model and the data are moved to ``settings.device`` (``device.resolve_device``:
auto = CUDA, else MPS, else CPU); the update it returns and the head it keeps and saves
are CPU tensors.

Round protocol, the same in every engine::

    client.set_shared(global_shared)          # FedPer: base only; FedAvg: whole model
    update, result = client.fit(server_round) # update holds only the shared keys
    ... server aggregates the updates ...
    client.set_shared(new_global_shared)
    client.evaluate()                         # FedPer: personal model; FedAvg: global model
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fedchain.shared import tensors
from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.data import ClientData, ImageTensors
from fedchain.shared.fl.device import resolve_device
from fedchain.shared.fl.seeding import round_seed
from fedchain.shared.fl.strategy import Strategy, strategy_from_settings
from fedchain.shared.fl.training import EvalResult, TrainResult, evaluate, train_local


def _clone(state: Mapping[str, torch.Tensor], keys: list[str]) -> dict[str, torch.Tensor]:
    """CPU copies of ``keys`` (a clone on the CPU, a device-to-host copy elsewhere)."""
    return {k: state[k].detach().to("cpu", copy=True) for k in keys}


class LocalClient:
    """A client: trains on its share, sends only the shared keys, keeps its head."""

    def __init__(
        self,
        settings: Settings,
        data: ClientData,
        model: nn.Module,
        *,
        strategy: Strategy | None = None,
        device: torch.device | None = None,
        shared: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        self.settings = settings
        self.device = device if device is not None else resolve_device(settings.device)
        self.data = _on_device(data, self.device)
        self.model = model.to(self.device)
        self.strategy = strategy or strategy_from_settings(settings)
        if self.strategy.expected_keys is None:
            self.strategy.bind(model)
        elif self.strategy.expected_keys != self.strategy.shared_keys(model):
            raise ConfigError(
                "the strategy is bound to another model architecture than this client's"
            )
        state = model.state_dict()
        self.shared_keys: list[str] = list(self.strategy.expected_keys or [])
        shared_set = set(self.shared_keys)
        self.personal_keys: list[str] = [k for k in state if k not in shared_set]
        # ``shared``: the global shared state this client starts from, kept by reference
        # (the simulation passes one dict to all its clients); default: a copy of the model's
        if shared is not None:
            self.strategy.check_state(shared, "global state")
            self._shared = {k: shared[k].detach() for k in self.shared_keys}
        else:
            self._shared = _clone(state, self.shared_keys)
        self._personal = _clone(state, self.personal_keys)

    @property
    def index(self) -> int:
        """This client's partition index."""
        return self.data.index

    @property
    def train_samples(self) -> int:
        """Number of training samples (the weight of this client's update)."""
        return len(self.data.train)  # type: ignore[arg-type]

    def _load(self) -> None:
        self.model.load_state_dict({**self._shared, **self._personal}, strict=True)

    def set_shared(self, state: Mapping[str, torch.Tensor]) -> None:
        """Take the global shared state (FedPer: base; FedAvg: whole model) under own head.

        The strategy checks it (``Strategy.check_state``: the shared keys, shapes, dtypes);
        a mismatch raises ``UpdateRejected`` (a ValueError).
        """
        self.strategy.check_state(state, "global state")
        self._shared = {k: state[k].detach() for k in self.shared_keys}

    def start_state(self) -> dict[str, torch.Tensor]:
        """The state a fit starts from: the global shared state under this client's head."""
        return {**self._shared, **self._personal}

    def end_fit(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Keep the head of a trained ``state``; return its shared part (CPU copies).

        ``fit`` ends with it; an engine that trains several clients at once (``vectorized``)
        hands each client its trained state here.
        """
        self._personal = _clone(state, self.personal_keys)
        return _clone(state, self.shared_keys)

    def fit(self, server_round: int) -> tuple[dict[str, torch.Tensor], TrainResult]:
        """Train locally for ``local_epochs``; return (shared state to send, result).

        The training seed is ``round_seed(settings.seed, server_round, index)``. The head
        is kept here and is never part of the returned state.
        """
        self._load()
        result = train_local(
            self.model,
            self.data.train,
            epochs=self.settings.local_epochs,
            batch_size=self.settings.batch_size,
            lr=self.settings.lr,
            momentum=self.settings.momentum,
            seed=round_seed(self.settings.seed, server_round, self.index),
        )
        return self.end_fit(self.model.state_dict()), result

    def evaluate(self) -> EvalResult:
        """Evaluate the personal model (global shared state + own head) on the test split."""
        self._load()
        return evaluate(self.model, self.data.test)

    def personal_state(self) -> dict[str, torch.Tensor]:
        """A copy of the personal (head) tensors; empty for FedAvg."""
        return _clone(self._personal, self.personal_keys)

    def set_personal(self, state: Mapping[str, torch.Tensor]) -> None:
        """Take a head saved earlier (e.g. a simulation checkpoint's); its names, shapes and
        dtypes must be this client's (``TensorError`` names what does not match)."""
        expected = self._personal
        if set(state) != set(expected):
            raise tensors.TensorError(
                f"client {self.index}: head holds {sorted(state)}, expected {sorted(expected)}"
            )
        for key, value in state.items():
            if value.shape != expected[key].shape or value.dtype != expected[key].dtype:
                raise tensors.TensorError(
                    f"client {self.index}: head tensor {key} is {value.dtype} {tuple(value.shape)}, "
                    f"expected {expected[key].dtype} {tuple(expected[key].shape)}"
                )
        self._personal = _clone(state, self.personal_keys)

    def save_personal(self, path: Path | str) -> Path:
        """Write the head as safetensors (atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(
            tensors.encode(
                self._personal, {"algorithm": self.strategy.name, "client": str(self.index)}
            )
        )
        os.replace(tmp, path)
        return path

    def load_personal(self, path: Path | str) -> None:
        """Load a head saved by ``save_personal`` (checked: names, shapes, dtypes, finite)."""
        data = Path(path).read_bytes()
        state = tensors.decode(data, expected=self._personal)
        self._personal = {k: state[k] for k in self.personal_keys}


def _on_device(data: ClientData, device: torch.device) -> ClientData:
    """``data`` with its image splits on ``device`` (other datasets are left as they are)."""
    train, test = data.train, data.test
    if isinstance(train, ImageTensors):
        train = train.to(device)
    if isinstance(test, ImageTensors):
        test = test.to(device)
    if train is data.train and test is data.test:
        return data
    return ClientData(data.index, train, test, data.label_counts)
