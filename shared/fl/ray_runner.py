"""The simulation's clients as Ray actors (``fedchain simulate --backend ray``).

An optional extra: ``pip install fedchain[ray]``. Each actor is a ``workers.WorkerCore``
(the same code a worker process runs) owning the clients pinned to it, so the global
model is the serial loop's on the same seed (bitwise with the same threads per actor).

``address``: None starts a private Ray instance on this machine (bound to 127.0.0.1, no
dashboard) and shuts it down at ``close``; ``auto`` or ``HOST:PORT`` joins an existing
cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the
others; fedchain installed in the same environment on every node) and leaves it running.
If Ray is already initialised in this process (a test, a notebook), that instance is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from fedchain.shared.config import ConfigError, Settings
from fedchain.shared.fl.workers import ShardedRunner, WorkerCore


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "--backend ray needs Ray: pip install 'fedchain[ray]' (or pip install ray)"
        ) from exc
    return ray


class RayRunner(ShardedRunner):
    """``actors`` Ray actors, each a ``WorkerCore`` with ``threads`` torch threads."""

    def __init__(
        self, settings: Settings, global_state: Mapping[str, torch.Tensor], *, actors: int,
        vectorize: int = 1, address: str | None = None, threads: int | None = None,
    ) -> None:
        super().__init__(actors)
        self.ray = _ray()
        self.settings = settings
        self.global_state = {k: v.detach().cpu() for k, v in global_state.items()}
        self.vectorize = vectorize
        self.address = address
        self.threads = threads or max(1, settings.torch_threads or 1)
        self._actors: list[Any] = []
        self._owns_ray = False

    def _start(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            if self.address is None:
                ray.init(
                    address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                    log_to_driver=False, configure_logging=False,
                )
                self._owns_ray = True
            else:
                try:
                    ray.init(address=self.address, log_to_driver=False)
                except ConnectionError as exc:
                    raise ConfigError(
                        f"--ray-address {self.address}: no Ray cluster answers there ({exc})"
                    ) from exc
        actor = ray.remote(num_cpus=self.threads)(WorkerCore)
        self._actors = [
            actor.remote(self.settings, self.global_state, self.vectorize, self.threads)
            for _ in range(self.shards)
        ]

    def _call_all(self, calls: Mapping[int, tuple[str, tuple[Any, ...]]]) -> dict[int, Any]:
        refs = {s: getattr(self._actors[s], m).remote(*args) for s, (m, args) in calls.items()}
        try:
            values = self.ray.get(list(refs.values()))
        except self.ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            raise cause from None
        return dict(zip(refs, values, strict=True))

    def close(self) -> None:
        """Kill the actors; shut Ray down if this runner started it."""
        for actor in self._actors:
            self.ray.kill(actor)
        self._actors = []
        if self._owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns_ray = False
        self._started = False
