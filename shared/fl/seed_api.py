"""The seed project's Python usage, on top of the shared core.

::

    from fedchain.shared.fl.seed_api import Client, Server

    server = Server(dataset="mnist-sample", clients=10)   # or Server(settings) / Server(config_file=...)
    for i in range(10):
        server.add_client(Client(i))                       # loads partition i
    for _ in range(server.settings.rounds):                # the seed's gobal_epoch
        server.start_train()                               # one global epoch
    print(server.result().final_accuracy)

``Server`` options are settings keys (seed aliases such as ``gobal_epoch`` work too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedchain.shared.config import Settings, load_settings
from fedchain.shared.fl.data import ClientData, load_client
from fedchain.shared.fl.simulation import RoundResult, Simulation, SimulationResult


class Client:
    """A seed client: partition ``index`` of the server's settings, or your own data."""

    def __init__(self, index: int | None = None, data: ClientData | None = None) -> None:
        if data is not None and index is not None and data.index != index:
            raise ValueError(f"index {index} differs from data.index {data.index}")
        self.index = data.index if data is not None else index
        self.data = data


class Server:
    """A seed server: register clients with ``add_client``, run rounds with ``start_train``."""

    def __init__(
        self, settings: Settings | None = None, *, config_file: Path | str | None = None, **options: Any
    ) -> None:
        if settings is not None and (options or config_file):
            raise ValueError("pass either a Settings object or options, not both")
        self.settings = settings or load_settings(config_file, **options)
        self._sim = Simulation(self.settings)

    @property
    def clients(self) -> list[Client]:
        """The registered clients, in the order they were added."""
        return [Client(data=c.data) for c in self._sim.clients]

    def add_client(self, client: Client) -> None:
        """Register ``client``; without data it gets the next (or its own) partition index."""
        if client.data is None:
            index = client.index if client.index is not None else len(self._sim.clients)
            client.data = load_client(self.settings, index)
            client.index = index
        self._sim.add_client(client.data)

    def start_train(self) -> RoundResult:
        """Run one global epoch: select, train locally, aggregate, evaluate (if ``eval``)."""
        return self._sim.run_round()

    @property
    def history(self) -> list[RoundResult]:
        """Every round run so far."""
        return list(self._sim.history)

    def result(self) -> SimulationResult:
        """The run so far, as ``fedchain simulate --out`` would write it."""
        return self._sim.result()
